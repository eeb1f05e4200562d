"""The c256 row: concurrency 256 with every stream held 2-8 s -- no pool timeouts, no retries, and
≥ 250 requests in flight at the server and at the client."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from .counting import count_output, write_input
from .procs import BatchProcess, SimProcess, free_port


async def c256(k: int, tmp: Path, n: int = 768, concurrency: int = 256) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "1024", "--time-scale", "0", "--stall-s", "2",
                                   "--stall-spread-s", "6", "--stall-after-tokens", "1"], tmp / "sim.log")
    await sim.start()
    samples: list[tuple[int, int]] = []      # (in_flight, requests_seen) at the server
    try:
        batch = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency",
                              str(concurrency), "--max-tokens", "8", "--json"], tmp / "batch.log")
        await batch.start()
        while batch.proc is not None and batch.proc.returncode is None:
            try:
                st = await sim.state()
                samples.append((st["in_flight"], st["requests_seen"]))
            except (OSError, asyncio.TimeoutError, KeyError, ValueError):
                pass
            await asyncio.sleep(0.05)
        rc = await batch.wait(120)
    finally:
        await sim.kill()
    text = batch.text()
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1]) if "{" in text else {}
    c = count_output(out, ids, journal)
    # "While work was waiting": the server had not yet seen every request; from the first full sample.
    backlog = [f for f, seen in samples if seen < n]
    first_full = next((i for i, f in enumerate(backlog) if f >= concurrency * 0.9), len(backlog))
    backlog = backlog[first_full:]
    server_mean = sum(backlog) / len(backlog) if backlog else 0.0
    server_peak = max((f for f, _ in samples), default=0)
    occ = summary.get("occupancy_backlogged") or 0.0
    client_mean = occ * concurrency
    retries = summary.get("requests", {}).get("retries")
    pool_timeouts = len(re.findall(r"PoolTimeout|pool timeout|waiting for a connection", text))
    passed = (rc == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["failed"] == 0
              and retries == 0 and pool_timeouts == 0 and server_peak >= 250 and server_mean >= 250
              and client_mean >= 250)
    detail = (f"c={concurrency}, {n} requests held 2-8 s: {pool_timeouts} pool timeouts, {retries} retries, "
              f"{c['failed']} failed; in flight at the server mean {server_mean:.1f} / peak {server_peak} "
              f"({len(backlog)} samples while work waited), at the client {client_mean:.1f} "
              f"(occupancy {occ:.3f})")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": None, "passed": passed,
            "detail": detail}
