"""JobWatch on a huge log: only the head and the tail are read, and the stage is still right."""

from __future__ import annotations

import asyncio
import contextlib

from r1console.adapters.job_watch import JobWatch
from r1console.adapters.local_transport import LocalTransport
from r1console.core.lifecycle import Stage


class LocalLogSession:
    """The three things follow_log needs, over the real local transport (tail -F of real files)."""

    name = "local"

    def __init__(self, paths: dict[str, str]) -> None:
        self.transport = LocalTransport()
        self.paths = paths

        class Slurm:
            @staticmethod
            async def file_size(path):
                import os

                return os.path.getsize(path) if os.path.exists(path) else None

        self.slurm = Slurm()

    async def log_path(self, job_id, stream):
        return self.paths[stream]

    def follow(self, path, offset=0, *, on_reset=None):
        return self.transport.follow(path, offset, on_reset=on_reset)


async def test_huge_log_reads_head_and_tail_only(tmp_path):
    out = tmp_path / "job.node1.7.out"
    err = tmp_path / "job.node1.7.err"
    head = (b"INFO 06-03 21:40:00 [api_server.py:1043] vLLM API server version 0.8.5.post1\n"
            b"INFO 06-03 21:42:15 [api_server.py:1090] Starting vLLM API server on http://0.0.0.0:8000\n")
    filler = b'INFO:     10.0.0.5:51234 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n' * 60_000  # ~4 MB
    tail = b"slurmstepd: error: *** JOB 7 ON node1 CANCELLED AT 2025-06-04T21:42:15 DUE TO TIME LIMIT ***\n"
    out.write_bytes(head + filler + tail)
    err.write_bytes(b"")
    session = LocalLogSession({"out": str(out), "err": str(err)})
    watch = JobWatch(session, "7", head_bytes=64 * 1024, tail_bytes=64 * 1024)
    changes: list[str] = []
    task = asyncio.create_task(watch.follow_log("out", changes.append))
    try:
        for _ in range(200):
            await asyncio.sleep(0.02)
            if watch.snapshot().stage is Stage.FAILED:
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # the tail process is stopped before the loop closes
    state = watch.snapshot()
    assert state.vllm_version == "0.8.5.post1"  # from the head
    assert state.stage is Stage.FAILED and state.primary_error.kind.startswith("slurm")  # from the tail
    lines = watch.buffers["out"].lines()
    skipped = [line for line in lines if "of this log skipped" in line]
    assert len(skipped) == 1
    after = lines[lines.index(skipped[0]) + 1]
    assert after.startswith('INFO:     10.0.0.5') and after.endswith("200 OK")  # a whole line, not a fragment
    assert sum(len(line) + 1 for line in lines) < 200 * 1024  # far less than the 4 MB file


async def test_requeue_truncating_the_log_is_marked_in_the_pane_and_parsed_afresh(tmp_path):
    out = tmp_path / "job.node1.8.out"
    err = tmp_path / "job.node1.8.err"
    run1 = b"INFO 06-03 21:40:00 [api_server.py:1043] vLLM API server version 0.8.5.post1\nrun 1 line\n"
    out.write_bytes(run1)
    err.write_bytes(b"")
    session = LocalLogSession({"out": str(out), "err": str(err)})
    watch = JobWatch(session, "8")
    task = asyncio.create_task(watch.follow_log("out", lambda _: None))
    try:
        for _ in range(250):
            await asyncio.sleep(0.02)
            if "run 1 line" in watch.buffers["out"].lines():
                break
        out.write_bytes(b"")                             # SLURM requeue: the .out starts over
        await asyncio.sleep(1.2)
        with open(out, "ab") as fh:
            fh.write(b"run 2 line\n")
        for _ in range(250):
            await asyncio.sleep(0.02)
            if "run 2 line" in watch.buffers["out"].lines():
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = [line for line in watch.buffers["out"].lines() if line]
    assert len(lines) == 4 and lines[1] == "run 1 line" and lines[3] == "run 2 line"  # each run once
    assert lines[2].startswith("[r1console] ──") and "was truncated (after byte 88)" in lines[2]
    assert watch.resets["out"] == 1
