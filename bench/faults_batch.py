"""Fault rows for `r1console batch` (issue 14 item 8; the audit's plan rows 7, 8, 9 and "server
dies mid-batch"), against the simulated vLLM server (`r1console sim-server`, its own process).

    python3 bench/faults_batch.py [--runs N] [--only WORD]

Each row is an object with ``name``, ``area = "batch"`` and ``async run(runs) -> dict`` (keys
fault, runs, lost, duplicated, recovery_s, passed, detail); ``bench/faults.py`` imports every
``bench/faults_*.py`` and prints one table. Everything is real processes and real HTTP on
127.0.0.1: the sim server is SIGKILLed and restarted on the same port, the batch client is
SIGKILLed and resumed, results are counted from the output file the client wrote.

Rows
* **storm** — 1,000 requests; the server answers 10 % with 500, resets 5 % mid-stream, stalls 2 %
  (longer than the client's ``--timeout``), is SIGKILLed and restarted 3 times; the batch process
  is SIGKILLed once and ``--resume``d. Pass: exactly 1,000 results in the output, each id once,
  all answered, no id with two ok records in the journal, and the answers (temperature 0) equal
  those of a clean run against a server without faults. recovery_s: the longest time from a
  restart (server listening again, or the resumed client process started) to the next new result.
* **c256** — concurrency 256, every stream held 2-8 s by the server (a stall after the first
  token, uniform spread), 768 requests. Pass: 0 retries and 0 failures (no pool timeout, no other error), and
  ≥ 250 requests in flight: at the server (sampled ``/_sim/state`` ``in_flight`` while requests
  were still unsent: mean and peak) and at the client (the engine's time-integral while work
  was waiting).
* **client-kills** — the client SIGKILLed at 10 random moments and resumed each time (temperature
  0, so answers are reproducible). Pass: the output equals a clean run's, every id once, at most
  ``concurrency`` extra sends per kill, and no request sent again after it was recorded (the
  server's own request log against the journal's times).
* **disk-full** — the kernel refuses the journal's writes part-way through the run
  (``RLIMIT_FSIZE`` on the client: a short write, then EFBIG — the code path of ENOSPC on a full
  disk, without needing a tiny filesystem). Pass: exit 1 with "cannot write the journal" and
  the resume command, no traceback, the journal parses with no torn line; the printed command,
  run without the limit, completes with every id once.
* **server-dies** — the server dies for good mid-batch; the client gives up (``--give-up-after
  2``) and prints its resume command; the server comes back; that exact command completes.
  Pass: every id once in the output, none lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from batch_faults.counting import Row
from batch_faults.load import c256
from batch_faults.resume import client_kills, disk_full, server_dies
from batch_faults.storm import storm

ROWS = [
    Row("1,000-request batch: 10% 5xx, 5% resets, 2% stalls, 3 server kills, client SIGKILL + --resume",
        storm),
    Row("batch at concurrency 256 (streams held 2-8 s): pool timeouts, requests in flight", c256),
    Row("server dies mid-batch for good: client stops, printed resume command completes", server_dies),
    Row("batch client SIGKILLed at 10 random points, resumed each time: output == clean run",
        client_kills, cheap=False),   # ~45 s: bench only
    Row("journal write refused part-way (file size limit, as a full disk): clear error, resume loses 0",
        disk_full),
]


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'fault':100s} {'runs':>4s} {'lost':>5s} {'dup':>5s} {'recovery s':>10s}  result")
    for r in results:
        rec = "-" if not r["recovery_s"] else f"{r['recovery_s']:.2f}"
        print(f"{r['fault'][:100]:100s} {r['runs']:4d} {str(r['lost']):>5s} {str(r['duplicated']):>5s} "
              f"{rec:>10s}  {'PASS' if r['passed'] else 'FAIL'}")
        print(f"    {r['detail']}")


async def _main(runs: int, only: str | None) -> int:
    results = []
    for row in ROWS:
        if only and only.lower() not in row.name.lower():
            continue
        t0 = time.monotonic()
        res = await row.run(runs)
        print(f"[{time.monotonic() - t0:.1f} s] {row.name}: {'PASS' if res['passed'] else 'FAIL'}",
              file=sys.stderr, flush=True)
        results.append(res)
    print_table(results)
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="batch fault rows against the sim server")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", help="run only the rows whose name contains this")
    a = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(asyncio.run(_main(a.runs, a.only)))
