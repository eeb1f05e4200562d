"""The storm row: 1,000 requests through 5xx, resets, stalls, three server kills and a client
SIGKILL + --resume, against a clean run's answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .counting import answers, clean_run, count_output, journal_ok, next_result_after, until, write_openai_input
from .procs import BatchProcess, SimProcess, free_port

STORM_FAULTS = ["--status-5xx-rate", "0.10",
                "--drop-after-tokens", "3", "--drop-rate", f"{0.05 / 0.90:.4f}",
                "--stall-s", "6", "--stall-after-tokens", "2", "--stall-rate", f"{0.02 / (0.90 * (1 - 0.05 / 0.90)):.4f}"]


async def storm(k: int, tmp: Path, n: int = 1000) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_openai_input(inp, n)            # temperature 0: answers comparable with a clean run
    clean_out = tmp / "clean.jsonl"
    clean_sim = SimProcess(free_port(), ["--max-num-seqs", "256", "--time-scale", "0"], tmp / "clean-sim.log",
                           seed=k)
    await clean_sim.start()
    try:
        await clean_run(inp, clean_out, clean_sim.url, 64, tmp / "clean.log")
    finally:
        await clean_sim.kill()
    sim = SimProcess(free_port(), ["--max-num-seqs", "256", "--time-scale", "0.05", *STORM_FAULTS],
                     tmp / "sim.log", seed=k)
    argv = ["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "64", "--max-tokens", "24",
            "--timeout", "1.5", "--max-attempts", "10", "--give-up-after", "60"]
    recoveries: list[float] = []
    faults = {"status_5xx": 0, "dropped": 0, "stalled": 0}

    async def kill_server_and_restart(batch: BatchProcess) -> None:
        st = await sim.state()
        _count_faults(faults, st)
        await sim.kill()
        await asyncio.sleep(0.3)
        before = journal_ok(journal)
        await sim.start()
        recoveries.append(await next_result_after(journal, before, sim.ready_at[-1], batch))

    await sim.start()
    try:
        b1 = BatchProcess(argv, tmp / "batch1.log")
        await b1.start()
        await until(lambda: journal_ok(journal) >= n * 0.15, "15 % done", b1)
        await kill_server_and_restart(b1)
        await until(lambda: journal_ok(journal) >= n * 0.35, "35 % done", b1)
        await kill_server_and_restart(b1)
        await until(lambda: journal_ok(journal) >= n * 0.50, "50 % done", b1)
        await b1.sigkill()                                   # the client crashes
        b2 = BatchProcess(argv + ["--resume"], tmp / "batch2.log")
        before = journal_ok(journal)
        await b2.start()
        recoveries.append(await next_result_after(journal, before, b2.started_at, b2))
        await until(lambda: journal_ok(journal) >= n * 0.75, "75 % done", b2)
        await kill_server_and_restart(b2)
        rc = await b2.wait(300)
        st = await sim.state()
        _count_faults(faults, st)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    same = out.exists() and answers(out) == answers(clean_out)
    passed = (rc == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0
              and c["failed"] == 0 and c["in_order"] and sim.starts == 4 and same)
    detail = (f"{c['results']} results ({c['failed']} failed), answers {'==' if same else '!='} a clean "
              f"run's, rc {rc}; injected {faults['status_5xx']} 5xx, "
              f"{faults['dropped']} resets, {faults['stalled']} stalls; {sim.starts - 1} server kills, "
              f"1 client SIGKILL + resume")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": max(recoveries),
            "passed": passed, "detail": detail}


def _count_faults(faults: dict[str, int], state: dict[str, Any]) -> None:
    """Add what one server process injected (its /_sim/state) to ``faults``, before it is killed."""
    for key in faults:
        faults[key] += state.get("faults_injected", {}).get(key, 0)
