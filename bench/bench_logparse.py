"""Log parser throughput, and time to stage on a 2 KB vs a 2 GB log.

1. Throughput: each fixture style of tests/data/logs (a job's .out + .err, repeated to ~16 MB)
   and a "serving" log (uvicorn access lines, vLLM request logs and periodic stats: what fills
   a server's log after days) fed to LogParser in 1 MiB chunks. MB/s and events/MB.
2. Time to stage: ``r1console log-status`` on a 2 KB log and on a generated 2 GB log that
   starts the same way, then has ~2 GB of serving lines, then a SLURM time-limit line at the
   very end (so the right answer, "failed: slurm_time_limit", needs the last line). Measured
   in-process (``log_status()``) and as the CLI in a fresh interpreter (what a user waits for),
   median of 9 (in-process) / 11 interleaved (CLI) runs, all files in the page cache (the 2 GB file was just written). Then the
   same 2 GB with ``--full`` once, for the full-read throughput.

The 2 GB file goes to a temporary directory (``--tmp``, default the system temp dir) after
checking free space, and is deleted at the end.

Run: python bench/bench_logparse.py [--big-gb 2] [--tmp DIR]   (about 1-2 minutes). Prints tables.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1console.commands.log_status import log_status  # noqa: E402
from r1console.core.logparse import LogParser  # noqa: E402

LOGS = ROOT / "tests" / "data" / "logs"
STYLES = ["0.7.3/ready", "0.8.5-ray/ready", "0.11-ansi/ready", "0.18/ready", "0.33/ready",
          "harmless/ready", "0.32-cpu/research_cold_sigterm", "0.32-cpu/own_healthy"]
CHUNK = 1 << 20

ACCESS = b'INFO:     10.0.0.%d:%d - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
REQUEST = (b"INFO 06-03 22:01:10 [logger.py:39] Received request chatcmpl-%d: prompt: '<|begin|>Explain "
           b"the result of experiment %d in two sentences.<|Assistant|>', params: SamplingParams(n=1, "
           b"temperature=0.6, top_p=0.95, max_tokens=4096), prompt_token_ids: None.\n")
ADDED = b"INFO 06-03 22:01:10 [async_llm.py:252] Added request chatcmpl-%d.\n"
STATS = (b"INFO 06-03 22:01:20 [loggers.py:111] Engine 000: Avg prompt throughput: 31.0 tokens/s, Avg "
         b"generation throughput: 402.5 tokens/s, Running: 40 reqs, Waiting: 0 reqs, GPU KV cache "
         b"usage: 3.2%, Prefix cache hit rate: 0.0%\n")
TIME_LIMIT = b"slurmstepd: error: *** JOB 4242 ON holygpu8a11301 CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n"


def serving_block(target: int) -> bytes:
    parts = []
    size = 0
    i = 0
    while size < target:
        for line in (REQUEST % (i, i), ADDED % i, ACCESS % (i % 200, 40000 + i % 20000)):
            parts.append(line)
            size += len(line)
        if i % 50 == 0:
            parts.append(STATS)
            size += len(STATS)
        i += 1
    return b"".join(parts)


def throughput(data: bytes, target: int = 16_000_000) -> tuple[float, float]:
    buf = data * max(1, target // len(data))
    best = 0.0
    events = 0
    for _ in range(3):
        parser = LogParser("bench")
        t0 = time.perf_counter()
        n = 0
        for i in range(0, len(buf), CHUNK):
            n += len(parser.feed(buf[i:i + CHUNK]))
        n += len(parser.flush())
        dt = time.perf_counter() - t0
        best = max(best, len(buf) / dt / 1e6)
        events = n
    return best, events / (len(buf) / 1e6)


def small_log() -> bytes:
    head = (b"Head node: holygpu8a11301\n"
            b"INFO 06-03 21:40:05 [api_server.py:1043] vLLM API server version 0.8.5.post1\n"
            b"INFO 06-03 21:40:15 [core.py:58] Initializing a V1 LLM engine (v0.8.5.post1) with config: "
            b"model='/models/DeepSeek-R1', tensor_parallel_size=16\n"
            b"INFO 06-03 22:00:02 [gpu_model_runner.py:1347] Model loading took 40.2291 GiB and 1140.51 seconds\n"
            b"INFO 06-03 22:00:40 [kv_cache_utils.py:634] GPU KV cache size: 1,234,560 tokens\n"
            b"INFO 06-03 22:00:40 [kv_cache_utils.py:637] Maximum concurrency for 163,840 tokens per request: 7.54x\n"
            b"INFO 06-03 22:00:42 [api_server.py:1090] Starting vLLM API server on http://0.0.0.0:8000\n")
    room = 2048 - len(head) - len(TIME_LIMIT)
    body = b"".join(ACCESS % (i, 40000 + i) for i in range(40))
    body = body[:body.rfind(b"\n", 0, room) + 1]
    body += b"#" * (room - len(body) - 1) + b"\n"  # pad to exactly 2048 bytes
    return head + body + TIME_LIMIT


def median_time(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cli(path: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "r1console", "log-status", str(path), "--json", *extra],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def write_big(path: Path, size: int, head: bytes) -> None:
    block = serving_block(4 << 20)
    block = block[:block.rfind(b"\n") + 1]
    with open(path, "wb") as f:
        f.write(head)
        written = len(head)
        while written + len(block) + len(TIME_LIMIT) <= size:
            f.write(block)
            written += len(block)
        f.write(TIME_LIMIT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big-gb", type=float, default=2.0, help="size of the big log (default 2 GB)")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="where to write the big log")
    ap.add_argument("--no-big", action="store_true", help="only the throughput table")
    args = ap.parse_args()

    print("Parse throughput (LogParser.feed, 1 MiB chunks, best of 3, ~16 MB each)")
    print(f"{'style':34s} {'MB/s':>8s} {'events/MB':>10s}")
    for style in STYLES:
        data = b"".join(p.read_bytes() for p in sorted((LOGS / style).iterdir()))
        mbs, epm = throughput(data)
        print(f"{style:34s} {mbs:8.1f} {epm:10.0f}")
    mbs, epm = throughput(serving_block(4 << 20))
    print(f"{'serving (access+request+stats)':34s} {mbs:8.1f} {epm:10.0f}")
    if args.no_big:
        return 0

    size = int(args.big_gb * 1e9)
    free = shutil.disk_usage(args.tmp).free
    if free < size * 1.2 + 1e9:
        print(f"\nskipping the big log: {args.tmp} has {free / 1e9:.1f} GB free, needs {size * 1.2 / 1e9 + 1:.1f} GB")
        return 0
    with tempfile.TemporaryDirectory(prefix="r1c-bench-logs-", dir=args.tmp) as tmp:
        small = Path(tmp) / "small.out"
        small.write_bytes(small_log())
        big = Path(tmp) / "big.out"
        head = small_log()[:-len(TIME_LIMIT)]
        t0 = time.perf_counter()
        write_big(big, size, head)
        gen = time.perf_counter() - t0
        big_size = big.stat().st_size
        print(f"\nTime to stage (log-status; {small.stat().st_size} B vs {big_size / 1e9:.2f} GB written in {gen:.1f} s)")
        mid = Path(tmp) / "mid.out"
        with open(big, "rb") as src, open(mid, "wb") as dst:
            dst.write(src.read(size // 10))
            dst.write(b"\n" + TIME_LIMIT)
        files = {"small": small, "mid": mid, "big": big}
        results = {}
        for name, path in files.items():
            state, scans = log_status([str(path)])
            assert state.stage.value == "failed" and state.errors[0].kind == "slurm_time_limit", state
            results[name] = [median_time(lambda p=path: log_status([str(p)]), runs=9), 0.0, scans[0].bytes_read]
        # CLI runs interleaved (small, mid, big, small, ...) so that load from other processes on
        # the machine spreads evenly over the three; median of 11 each.
        cli_times: dict[str, list[float]] = {name: [] for name in files}
        for _ in range(11):
            for name, path in files.items():
                t0 = time.perf_counter()
                cli(path)
                cli_times[name].append(time.perf_counter() - t0)
        for name in files:
            results[name][1] = statistics.median(cli_times[name])
        mid_label = f"{mid.stat().st_size / 1e6:.0f} MB log"
        print(f"{'':24s} {'2 KB log':>12s} {mid_label:>12s} {'2 GB log':>12s} {'2GB/2KB':>8s}")
        for i, label in enumerate(("in-process log_status()", "CLI, fresh interpreter")):
            a, m, b = results["small"][i], results["mid"][i], results["big"][i]
            print(f"{label:24s} {a * 1000:10.1f}ms {m * 1000:10.1f}ms {b * 1000:10.1f}ms {b / a:8.2f}")
        print(f"{'bytes parsed':24s} {results['small'][2]:12d} {results['mid'][2]:12d} {results['big'][2]:12d}")
        t0 = time.perf_counter()
        state, scans = log_status([str(big)], full=True)
        dt = time.perf_counter() - t0
        assert state.stage.value == "failed"
        print(f"\n--full on the 2 GB log: {dt:.1f} s, {big_size / dt / 1e6:.0f} MB/s (page cache warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
