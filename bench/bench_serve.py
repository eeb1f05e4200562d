"""`r1console serve`'s endpoint: throughput of one vs two sim replicas, and the proxy's added latency.

Part 1 — throughput: simulated vLLM servers, each its own process with ``--max-num-seqs S``
paced at ``--time-scale`` (so a replica's capacity is its slots, not this machine's CPU), behind
the endpoint (aiohttp proxy, least outstanding requests). The same batch of prompts (fixed
``max_tokens``) is sent with the batch engine at a window of S per replica. Output tok/s with one
replica and with two; goal ratio >= 1.9. The default time scale (0.5) keeps a replica slot-bound,
as a GPU replica is: at 0.02-0.2 on this 2-core machine the client, the proxy and both sims share
two CPUs and the ratio measures the CPU instead (1.6-1.74x measured at a load average of 8).

Part 2 — added latency per request on loopback: one sim server at time scale 0 (answers at once),
N sequential requests straight to it and through the endpoint; p50/p90 of each and the
difference, for GET /v1/models and a short non-streaming chat completion. Goal: p50 added <= 2 ms.

Run: python bench/bench_serve.py [--prompts 128] [--slots 16] [--max-tokens 60] [--time-scale 0.5]
                                 [--latency-n 300]                  (about a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from r1console.adapters.serve_proxy import ServeProxy  # noqa: E402
from r1console.core.replicas import Replica, ReplicaSet  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_sim(slots: int, time_scale: float, seed: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "r1console", "sim-server", "--port", str(port), "--quiet",
                             "--max-num-seqs", str(slots), "--time-scale", str(time_scale), "--seed", str(seed),
                             "--vllm-version", "0.32.0"], cwd=REPO,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url + "/health") as r:
                    if r.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("sim server did not start")
            await asyncio.sleep(0.1)


def stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


async def throughput(n_replicas: int, args) -> dict:
    from r1console.adapters.batch_runner import BatchPlan, run_batch
    from r1console.core.batch_engine import RetryPolicy
    from r1console.core.batch_input import load_batch_input

    sims = [await start_sim(args.slots, args.time_scale, i + 1) for i in range(n_replicas)]
    rs = ReplicaSet()
    for i, (_p, url) in enumerate(sims):
        rs.add(Replica(str(i + 1), url))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            inp = Path(tmp) / "in.jsonl"
            inp.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"prompt {i}"}) + "\n"
                                   for i in range(args.prompts)), encoding="utf-8")
            plan = BatchPlan(batch=load_batch_input(str(inp)), output=Path(tmp) / "out.jsonl",
                             output_format="openai", concurrency=args.slots * n_replicas, resume=False,
                             max_tokens=args.max_tokens, model=None,
                             policy=RetryPolicy(max_attempts=4, give_up_after=60), stream_timeout=60)
            async with ServeProxy(rs, api_key="bench", port=0) as proxy:
                t0 = time.monotonic()
                outcome = await run_batch(plan, proxy.url, "bench")
                wall = time.monotonic() - t0
            s = outcome.summary.to_json()
            per = [r.started for r in rs.all()]
            return {"replicas": n_replicas, "wall": wall, "tokens": s["output_tokens"],
                    "tok_s": s["output_tokens"] / wall, "steady": s["steady_tok_s"] or 0.0,
                    "ok": s["requests"]["ok"], "per_replica": per}
    finally:
        stop([p for p, _ in sims])


async def latency(args) -> list[tuple]:
    proc, url = await start_sim(256, 0.0, 7)
    rs = ReplicaSet()
    rs.add(Replica("1", url))
    body = {"model": "deepseek-ai/DeepSeek-R1", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1}
    rows = []
    try:
        async with ServeProxy(rs, api_key="bench", port=0) as proxy, aiohttp.ClientSession() as s:
            async def timed(base: str, method: str, path: str, headers) -> list[float]:
                out = []
                for i in range(args.latency_n + 20):
                    t0 = time.perf_counter()
                    async with s.request(method, base + path, json=body if method == "POST" else None,
                                         headers=headers) as r:
                        await r.read()
                        assert r.status == 200, r.status
                    if i >= 20:  # warm-up
                        out.append((time.perf_counter() - t0) * 1000)
                return out

            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
                direct = await timed(url, method, path, {})
                via = await timed(proxy.url, method, path, {"Authorization": "Bearer bench"})
                p50d, p50v = statistics.median(direct), statistics.median(via)
                q = lambda xs: statistics.quantiles(xs, n=10)[-1]  # noqa: E731
                rows.append((f"{method} {path}", p50d, q(direct), p50v, q(via), p50v - p50d))
    finally:
        stop([proc])
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--time-scale", type=float, default=0.5)
    ap.add_argument("--latency-n", type=int, default=300)
    args = ap.parse_args()
    one = await throughput(1, args)
    two = await throughput(2, args)
    print(f"\nthroughput: {args.prompts} prompts x max_tokens {args.max_tokens}, {args.slots} slots per sim "
          f"replica, time scale {args.time_scale}")
    print(f"{'replicas':>8}  {'wall s':>7}  {'out tokens':>10}  {'tok/s':>8}  {'steady tok/s':>12}  {'ok':>5}  "
          "requests per replica")
    for r in (one, two):
        print(f"{r['replicas']:>8}  {r['wall']:>7.1f}  {r['tokens']:>10}  {r['tok_s']:>8.0f}  {r['steady']:>12.0f}  "
              f"{r['ok']!s:>5}  {r['per_replica']}")
    print(f"ratio two/one: {two['tok_s'] / one['tok_s']:.2f}x whole run, "
          f"{two['steady'] / max(one['steady'], 1e-9):.2f}x steady (goal >= 1.9x)")
    rows = await latency(args)
    print(f"\nadded latency on loopback, {args.latency_n} sequential requests each (ms)")
    print(f"{'request':<28} {'direct p50':>10} {'direct p90':>10} {'proxy p50':>10} {'proxy p90':>10} "
          f"{'added p50':>10}")
    for name, p50d, p90d, p50v, p90v, added in rows:
        print(f"{name:<28} {p50d:>10.2f} {p90d:>10.2f} {p50v:>10.2f} {p90v:>10.2f} {added:>10.2f}")
    print("goal: added p50 <= 2 ms")


if __name__ == "__main__":
    asyncio.run(main())
