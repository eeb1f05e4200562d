"""The rows where a batch stops and is resumed: the server dies for good (the printed resume command
completes), the client is SIGKILLed at random moments, the journal's writes are refused (a full disk)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path
from typing import Any

from .counting import (
    answers,
    clean_run,
    count_output,
    fingerprint,
    journal_ok,
    next_result_after,
    until,
    write_input,
    write_openai_input,
)
from .procs import BatchProcess, SimProcess, free_port, http_get


async def server_dies(k: int, tmp: Path, n: int = 300) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.05"], tmp / "sim.log")
    await sim.start()
    try:
        b1 = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "32",
                           "--max-tokens", "24", "--give-up-after", "2"], tmp / "batch1.log")
        await b1.start()
        await until(lambda: journal_ok(journal) >= n * 0.4, "40 % done", b1)
        await sim.kill()                                     # and it stays dead
        rc1 = await b1.wait(60)
        text = b1.text()
        m = re.search(r"resume with: (.+)", text)
        if rc1 != 1 or m is None or out.exists():
            return {"lost": None, "duplicated": None, "recovery_s": None, "passed": False,
                    "detail": f"the first run did not stop resumably (rc {rc1}): {text[-300:]}"}
        resume = shlex.split(m.group(1))
        assert resume[0] == "r1console" and "--resume" in resume
        done_before = journal_ok(journal)
        await sim.start()
        b2 = BatchProcess(resume[1:], tmp / "batch2.log")
        await b2.start()
        recovery = await next_result_after(journal, done_before, sim.ready_at[-1], b2)
        rc2 = await b2.wait(120)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    passed = rc2 == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["in_order"]
    detail = (f"{done_before}/{n} done when the server died; the client stopped (rc {rc1}) and printed its "
              f"resume command; after the restart that command finished (rc {rc2}) with {c['results']} results")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": recovery, "passed": passed,
            "detail": detail}


async def client_kills(k: int, tmp: Path, n: int = 400, kills: int = 10, concurrency: int = 16) -> dict[str, Any]:
    """The batch client SIGKILLed at ``kills`` random moments (mid-stream, mid-journal-write, at
    start-up) and resumed each time. Pass: the output equals a clean run's (temperature 0), every
    id once; at most ``concurrency`` extra sends per kill; no recorded request sent again."""
    import random

    rng = random.Random(f"kills|{k}")
    inp = tmp / "in.jsonl"
    ids = write_openai_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.02"], tmp / "sim.log")
    await sim.start()
    try:
        clean_out = tmp / "clean.jsonl"
        await clean_run(inp, clean_out, sim.url, concurrency, tmp / "clean.log")
        st0 = await sim.state()
        out = tmp / "out.jsonl"
        journal = tmp / "out.jsonl.journal.jsonl"
        argv = ["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", str(concurrency),
                "--max-tokens", "24"]
        recoveries = []
        for kill in range(kills):
            b = BatchProcess(argv + (["--resume"] if kill else []), tmp / f"run{kill}.log")
            before = journal_ok(journal)
            await b.start()
            if kill and rng.random() < 0.8:   # mostly once results flow; sometimes during start-up
                recoveries.append(await next_result_after(journal, before, b.started_at, b))
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            if b.proc is not None and b.proc.returncode is None:
                await b.sigkill()
        final = BatchProcess(argv + ["--resume"], tmp / "final.log")
        await final.start()
        rc = await final.wait(120)
        st1 = await sim.state()
        status, body = await http_get(sim.port, "/_sim/requests")
        server_records = json.loads(body)["requests"] if status == 200 else []
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    same = answers(out) == answers(clean_out) if out.exists() else False
    sends = st1["requests_seen"] - st0["requests_seen"]
    extra = sends - n
    from r1console.core.batch_journal import read_journal

    recorded_at = {r.id: r.finished_at for r in read_journal(journal).records if r.ok}
    fp = {i: fingerprint([{"role": "user", "content": f"Request {i}: why?"}]) for i in ids}
    by_fp = {v: i for i, v in fp.items()}
    t_chaos = min((r["wall_time"] for r in server_records[-sends:]), default=0) if sends > 0 else 0
    late = [r for r in server_records[-sends:] if r.get("fingerprint") in by_fp
            and r["wall_time"] > (recorded_at.get(by_fp[r["fingerprint"]]) or float("inf"))
            and r["wall_time"] >= t_chaos]
    passed = (rc == 0 and same and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0
              and extra <= kills * concurrency and not late)
    detail = (f"{kills} SIGKILLs + resumes, c={concurrency}: output {'==' if same else '!='} clean run, "
              f"{c['results']} results; {extra} extra sends ({extra / kills:.1f} per kill, bound {concurrency}); "
              f"{len(late)} recorded requests sent again")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": max(recoveries, default=None),
            "passed": passed, "detail": detail}


async def disk_full(k: int, tmp: Path, n: int = 400) -> dict[str, Any]:
    """The kernel refuses the journal's writes part-way (RLIMIT_FSIZE: a short write, then EFBIG,
    the same path as ENOSPC on a full disk): a clear error with the resume command, a journal
    that still parses (the half record cut off), and after "freeing space" that command loses 0."""
    from r1console.core.batch_journal import read_journal

    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.02"], tmp / "sim.log")
    await sim.start()
    try:
        b1 = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "32",
                           "--max-tokens", "24"], tmp / "batch1.log", max_file_bytes=48 * 1024)
        await b1.start()
        rc1 = await b1.wait(120)
        text = b1.text()
        kept = read_journal(journal)                 # raises if a damaged line was left behind
        m = re.search(r"resume with: (.+)", text)
        clear = ("cannot write the journal" in text and "Traceback" not in text and m is not None
                 and not kept.torn_tail and 0 < len(kept.records) < n and not out.exists())
        if rc1 != 1 or not clear:
            return {"lost": None, "duplicated": None, "recovery_s": None, "passed": False,
                    "detail": f"first run rc {rc1}, {len(kept.records)} records: {text[-400:]}"}
        resume = shlex.split(m.group(1))
        b2 = BatchProcess(resume[1:], tmp / "batch2.log")       # space freed: no limit
        await b2.start()
        recovery = await next_result_after(journal, len(kept.records), b2.started_at, b2)
        rc2 = await b2.wait(120)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    passed = rc2 == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["in_order"]
    err_line = next((x for x in text.splitlines() if "cannot write the journal" in x), "")
    detail = (f"{len(kept.records)}/{n} recorded before the journal write failed (rc {rc1}: "
              f"{err_line.strip()[:90]}); journal parses, no torn line; the printed resume command "
              f"finished (rc {rc2}) with {c['results']} results")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": recovery, "passed": passed,
            "detail": detail}
