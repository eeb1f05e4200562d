"""How much the simulated vLLM server sustains when decoding costs nothing (``--time-scale 0``).

The server runs as ``r1console sim-server`` in its own process (one core); the client runs here.
Each of C workers sends streaming chat completions back to back on a keep-alive connection
(``max_tokens`` tokens each, ``ignore_eos``, usage included) for a few seconds. Two clients:
  raw    a minimal asyncio HTTP/1.1 + SSE client: close to what the server alone can do;
  httpx  one httpx.AsyncClient streaming for all workers: the client-overhead baseline for the batch
         benchmarks (anything slower than this is not the server's fault). httpcore's pool scans
         every connection for every request, so one client gets slower as concurrency grows;
  httpx8 the same with one AsyncClient per 8 workers (the pool-scan cost stays small).
Columns: requests/s, streamed tokens/s (usage.completion_tokens), server and client CPU %.

Run: python bench/bench_sim_server.py [--seconds 4] [--max-tokens 64]   (about 30 s). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

USAGE = re.compile(rb'"completion_tokens":(\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload(max_tokens: int, i: int) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": f"Benchmark prompt number {i}?"}],
                       "max_tokens": max_tokens, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()


async def raw_worker(port: int, max_tokens: int, stop_at: float, counts: list[int], wid: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < stop_at:
            body = payload(max_tokens, wid * 1_000_000 + i)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await reader.readuntil(b"\r\n\r\n")
            data = bytearray()
            while not data.endswith(b"0\r\n\r\n"):  # the chunked body's last chunk
                data += await reader.read(65536)
            m = USAGE.search(data)
            counts[0] += 1
            counts[1] += int(m.group(1)) if m else 0
            i += 1
    finally:
        writer.close()


async def httpx_worker(client: httpx.AsyncClient, max_tokens: int, stop_at: float, counts: list[int],
                       wid: int) -> None:
    i = 0
    while time.perf_counter() < stop_at:
        tokens = 0
        async with client.stream("POST", "/v1/chat/completions", content=payload(max_tokens, wid * 1_000_000 + i),
                                 headers={"Content-Type": "application/json"}) as r:
            async for line in r.aiter_lines():
                if line.startswith('data: {"id"') and '"usage"' in line:
                    tokens = json.loads(line[6:])["usage"]["completion_tokens"]
        counts[0] += 1
        counts[1] += tokens
        i += 1


async def run_cell(port: int, client_kind: str, concurrency: int, seconds: float, max_tokens: int,
                   server: psutil.Process) -> tuple[float, float, float, float]:
    counts = [0, 0]
    me = psutil.Process()
    server.cpu_percent(None)
    me.cpu_percent(None)
    start = time.perf_counter()
    stop_at = start + seconds
    if client_kind == "raw":
        await asyncio.gather(*(raw_worker(port, max_tokens, stop_at, counts, w) for w in range(concurrency)))
    else:
        per = concurrency if client_kind == "httpx" else 8
        n = -(-concurrency // per)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60)
                   for _ in range(n)]
        try:
            await asyncio.gather(*(httpx_worker(clients[w // per], max_tokens, stop_at, counts, w)
                                   for w in range(concurrency)))
        finally:
            for client in clients:
                await client.aclose()
    elapsed = time.perf_counter() - start
    return counts[0] / elapsed, counts[1] / elapsed, server.cpu_percent(None), me.cpu_percent(None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--vllm-version", default="0.32.0")
    args = ap.parse_args()

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "r1console", "sim-server", "--port", str(port), "--time-scale", "0",
                             "--quiet", "--vllm-version", args.vllm_version, "--max-num-seqs", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                print("sim-server did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        server = psutil.Process(proc.pid)
        print(f"sim-server (vLLM {args.vllm_version} shapes), time_scale 0, {args.max_tokens} tokens/request, "
              f"{args.seconds:g} s per cell, {os.cpu_count()} CPUs")
        print(f"{'concurrency':>11}  {'client':<6} {'req/s':>9} {'tok/s':>10} {'server CPU':>10} {'client CPU':>10}")
        for concurrency in args.concurrency:
            for kind in ("raw", "httpx", "httpx8") if concurrency > 8 else ("raw", "httpx"):
                rps, tps, scpu, ccpu = asyncio.run(run_cell(port, kind, concurrency, args.seconds,
                                                            args.max_tokens, server))
                print(f"{concurrency:>11}  {kind:<6} {rps:>9.1f} {tps:>10.0f} {scpu:>9.0f}% {ccpu:>9.0f}%")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
