"""`r1console logs JOBID [--err] [--follow]`: print or follow a job's .out / .err on the batch host.

``--follow`` streams the file over one SSH channel (``tail -F`` from a byte offset, not polling),
survives a dropped connection (reconnect with backoff, resume at the exact byte), polls the job
state once per ``--interval`` and stops, after printing the rest, once the job has ended. A file
that starts over (requeue truncates the .out; ``mv`` + recreate) is marked — a ``==> … <==`` line
on stderr, or a JSON record with ``"event": "reset"`` — and followed again from its byte 0: no
byte is printed twice or skipped. A slurmctld that stops answering does not end the follow.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys

from r1console.adapters.slurm_client import JobStateError, SlurmClient, remember_batch_host
from r1console.commands._jobs import add_cluster_flags, clean_errors, resolve_cluster, slurm_session, stderr
from r1console.core.errors import R1Error
from r1console.core.slurm_parse import JobInfo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="print or follow a job's log (.out, or .err with --err)",
                       description="The job's SLURM output file on its batch host (job.<head>.<id>.out/.err). "
                       "--follow streams new bytes as they are written and ends when the job ends. "
                       "--json prints JSON lines {stream, offset, text} (text base64 in 'data_b64' when not UTF-8).")
    p.add_argument("job_id", metavar="JOBID")
    p.add_argument("--err", action="store_true", help="the .err file (vLLM's progress bars, tracebacks)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the job ends")
    p.add_argument("--offset", type=int, default=0, metavar="BYTES", help="start at this byte (default 0)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="with --follow: how often to check whether the job ended (one squeue; default 2)")
    add_cluster_flags(p)
    p.set_defaults(func=run)


class _Out:
    def __init__(self, args: argparse.Namespace, stream: str, offset: int) -> None:
        self.json = args.json
        self.stream = stream
        self.offset = offset

    def reset(self, event) -> None:
        """The file started over (FollowReset): offsets count from 0 again."""
        if self.json:
            sys.stdout.write(json.dumps({"stream": self.stream, "event": "reset", "reason": event.reason,
                                         "old_offset": event.old_offset, "offset": 0,
                                         "generation": event.generation}) + "\n")
            sys.stdout.flush()
        else:
            sys.stdout.flush()
            stderr(f"==> {event.describe()} <==")
        self.offset = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.json:
            record: dict = {"stream": self.stream, "offset": self.offset}
            try:
                record["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                record["data_b64"] = base64.b64encode(data).decode()
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        self.offset += len(data)


async def _path_when_known(client: SlurmClient, job_id: str, stream: str, dep, info: JobInfo, follow: bool,
                           interval: float) -> tuple[str, JobInfo, object]:
    while True:
        dep = remember_batch_host(dep, info) or dep
        path = client.log_path(info, stream, dep)
        if path:
            return path, info, dep
        if info.is_finished:
            raise JobStateError(f"job {job_id} ended ({info.state}) without ever starting: it has no log")
        if not follow:
            raise JobStateError(f"job {job_id} is {info.state}" + (f" ({info.reason})" if info.reason else "")
                                + ": no log yet", hint=f"r1console logs {job_id} --follow waits for it")
        await asyncio.sleep(interval)
        info = await client.job_state_patiently(job_id, on_wait=lambda text: stderr(f"r1console: {text}"))


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec, dep = resolve_cluster(args, args.job_id)
    stream = "err" if args.err else "out"
    async with slurm_session(spec, args) as (transport, client):
        # our own jobs: the record knows the pattern, one squeue gives the head node;
        # other jobs: scontrol knows StdOut/StdErr/WorkDir
        info = await (client.job_state(args.job_id) if dep is not None else client.job(args.job_id))
        path, info, dep = await _path_when_known(client, args.job_id, stream, dep, info, args.follow, args.interval)
        out = _Out(args, stream, args.offset)
        if not args.follow:
            if await client.file_size(path) is None:
                raise R1Error(f"{path}: no such log file on {client.cluster_name}")
            async with contextlib.aclosing(transport.stream(["tail", "-c", f"+{args.offset + 1}", "--", path])) as chunks:
                async for chunk in chunks:
                    out.write(chunk)
            return 0
        if not args.json:
            stderr(f"==> {path} <==")
        follower = client.follow(path, args.offset, on_reset=out.reset)

        async def pump() -> None:
            async for chunk in follower:
                out.write(chunk)

        def waiting(text: str) -> None:
            stderr(f"r1console: {text} (the follow goes on)")

        async def until_ended() -> JobInfo:
            state = info
            while not state.is_finished:
                await asyncio.sleep(args.interval)
                state = await client.job_state_patiently(args.job_id, on_wait=waiting)
            return state

        pump_task = asyncio.create_task(pump())
        end_task = asyncio.create_task(until_ended())
        try:
            done, _ = await asyncio.wait({pump_task, end_task}, return_when=asyncio.FIRST_COMPLETED)
            if pump_task in done:
                pump_task.result()  # raises the follow's error
            final = end_task.result()
        finally:
            for task in (pump_task, end_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await follower.aclose()
        # the job ended: print whatever the follow had not delivered yet, from the exact byte
        # (same file checks as the follow: a file that started over is marked, not mixed)
        if await client.file_size(path) is not None:
            async with contextlib.aclosing(follower.rest()) as rest:
                async for chunk in rest:
                    out.write(chunk)
        if not args.json:
            stderr(f"==> job {args.job_id} ended: {final.state} <==")
    return 0
