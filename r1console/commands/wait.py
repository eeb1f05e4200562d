"""`r1console wait JOBID --for running|ready|end [--timeout S]`: block until the job gets there.

Costs one ``squeue`` per ``--interval`` tick. ``ready`` also follows both logs (streamed, no
polling) through the lifecycle stage machine and, once the job runs, asks the server itself over
the SSH forward: ``/health`` and one tiny completion (vLLM can pass /health and die on its first
request). It fails early, with the reason, when the job ends or a known fatal error is logged.

A slurmctld that stops answering (or an SSH drop) is waited out until ``--timeout``.

Exit codes: 0 reached; 1 the job cannot get there any more (ended, failed, unknown); 3 timeout;
5 the cluster (SSH or slurmctld) stayed unreachable until the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import time

from r1console.adapters.reach import open_server
from r1console.adapters.slurm_client import JobStateError, SlurmClient, is_transient, remember_batch_host
from r1console.commands._jobs import (
    add_cluster_flags,
    clean_errors,
    emit,
    job_dict,
    resolve_cluster,
    slurm_session,
    stderr,
)
from r1console.core.api_errors import ServerUnreachable
from r1console.core.errors import EXIT_CLUSTER, R1Error
from r1console.core.slurm_parse import JobInfo

GOALS = ("running", "ready", "end")


class WaitTimeout(R1Error):
    exit_code = 3


class ClusterUnreachable(R1Error):
    exit_code = EXIT_CLUSTER


async def _state(client: SlurmClient, job_id: str, deadline: float | None, progress) -> JobInfo:
    """One state check that rides out transient failures until the deadline (M10)."""
    try:
        return await client.job_state_patiently(job_id, give_up_at=deadline, on_wait=progress.show)
    except R1Error as err:
        if is_transient(err):
            raise ClusterUnreachable(f"job {job_id}: the cluster did not answer until the timeout: "
                                     f"{str(err).splitlines()[0]}", hint=err.hint) from None
        raise


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wait", help="wait until a job is running, ready (server answers) or ended",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("job_id", metavar="JOBID")
    p.add_argument("--for", dest="goal", choices=GOALS, default="running", help="what to wait for (default running)")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after S seconds (exit 3)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between checks (default 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    add_cluster_flags(p)
    p.set_defaults(func=run)


def _describe(info: JobInfo) -> str:
    return info.state + (f" ({info.reason})" if info.reason else "")


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = ""

    def show(self, text: str) -> None:
        if not self.quiet and text != self.last:
            stderr(f"r1console: {text}")
            self.last = text


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec, dep = resolve_cluster(args, args.job_id)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    progress = _Progress(args.quiet or args.json)

    def remaining() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    async with slurm_session(spec, args) as (transport, client):
        info = await _state(client, args.job_id, deadline, progress)
        while True:
            progress.show(f"job {args.job_id}: {_describe(info)}")
            if args.goal == "end" and info.is_finished:
                break
            if args.goal in ("running", "ready") and info.is_finished:
                why = await _explain_end(client, info, dep)
                raise JobStateError(f"job {args.job_id} ended ({_describe(info)}) before it was {args.goal}"
                                    + (f": {why[0]}" if why else ""), hint=why[1] if why else None)
            if args.goal == "running" and info.is_running:
                break
            if args.goal == "ready" and info.is_running:
                dep = remember_batch_host(dep, info) or dep
                if dep is None:
                    raise R1Error(f"--for ready needs a job submitted by r1console (its port and API key); "
                                  f"job {args.job_id} has no deployment record",
                                  hint=f"r1console wait {args.job_id} --for running")
                state = await _wait_ready(client, transport, dep, info, args, remaining, progress)
                emit(args, {**job_dict(state[0], dep), "lifecycle": state[1]},
                     f"job {args.job_id} is ready: {state[2]}")
                return 0
            left = remaining()
            if left is not None and left <= 0:
                raise WaitTimeout(f"job {args.job_id} is still {_describe(info)} after {args.timeout:g} s "
                                  f"(waiting for {args.goal})")
            await asyncio.sleep(args.interval if left is None else max(0.0, min(args.interval, left)))
            info = await _state(client, args.job_id, deadline, progress)
    emit(args, job_dict(info, dep), f"job {args.job_id}: {_describe(info)}")
    return 0


async def _explain_end(client: SlurmClient, info: JobInfo, dep, tail_bytes: int = 64 * 1024):
    """(reason, what to try) from the end of the job's logs, or None: the lifecycle's first fatal
    error, else the last line of the .err. Best effort: a log that cannot be read explains nothing."""
    try:
        from r1console.core.lifecycle import JobLifecycle
        from r1console.core.logparse import LogParser

        if dep is None or not (info.batch_host or dep.batch_host):
            # no record, or a job that ended before anyone saw it run (its record has no batch host yet,
            # so %N in the log paths is unknown): the full details name the batch host
            info = await client.job(info.job_id)
            if not (info.batch_host or (dep and dep.batch_host)) and info.node_list:
                # slurmctld has forgotten the job (MinJobAge) and accounting keeps no BatchHost: SLURM runs
                # the batch script on the allocation's first node (the script's head node too)
                info = dataclasses.replace(info, batch_host=info.node_list[0])
        lifecycle = JobLifecycle(live=False)
        last_err = ""
        for stream in ("out", "err"):
            path = client.log_path(info, stream, dep)
            size = await client.file_size(path) if path else None
            if not size:
                continue
            data = await client.read_from(path, max(0, size - tail_bytes))
            lifecycle.on_events(LogParser(stream).feed(data))
            if stream == "err":
                lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
                last_err = lines[-1] if lines else ""
        lifecycle.on_slurm_state(info.state, info.reason or None)
        err = lifecycle.snapshot().primary_error
        if err is not None and not err.kind.startswith("slurm_"):
            return f"{err.explanation} ({err.line.strip()[:200]})", err.what_to_try
        if last_err:
            return f"last line of the .err: {last_err[:300]}", f"r1console logs {info.job_id} --err"
    except R1Error:
        return None
    return None


async def _wait_ready(client: SlurmClient, transport, dep, info: JobInfo, args, remaining, progress):
    """Follow both logs into the lifecycle and ask the server until it is ready; (info, lifecycle, url)."""
    try:
        from r1console.core.lifecycle import Stage
    except ImportError as err:  # pragma: no cover - the lifecycle, its parser and the client ship with r1console
        raise R1Error(f"--for ready is not available in this build ({err})") from None

    watch = _ReadyWatch(client, transport, dep, progress)
    watch.follow_logs(info)
    try:
        while True:
            snap = await watch.observe(info)
            if snap.stage is Stage.READY:
                return info, snap.to_dict(), watch.url
            if info.is_finished:   # its last lines (the fatal error, often) may still be on the way
                await watch.catch_up()
                snap = watch.lifecycle.snapshot(watch.clock())
            if snap.stage.terminal or info.is_finished:
                err = snap.primary_error
                why = f"{err.kind}: {err.explanation} ({err.line.strip()[:200]})" if err else _describe(info)
                raise JobStateError(f"job {dep.job_id} will not become ready: {why}",
                                    hint=err.what_to_try if err else None)
            left = remaining()
            if left is not None and left <= 0:
                raise WaitTimeout(f"job {dep.job_id} is not ready after {args.timeout:g} s "
                                  f"(stage {snap.stage.value}{': ' + snap.detail if snap.detail else ''})")
            await asyncio.sleep(args.interval if left is None else max(0.0, min(args.interval, left)))
            info = await _state(client, dep.job_id, None if remaining() is None else time.monotonic() + remaining(),
                                progress)
    finally:
        await watch.aclose()


class _ReadyWatch:
    """The live side of ``--for ready``: both logs followed (streamed) into a live lifecycle, and the
    server asked over the SSH forward once the job runs: ``/health``, then one tiny completion."""

    def __init__(self, client: SlurmClient, transport, dep, progress) -> None:
        from r1console.core.lifecycle import JobLifecycle

        self.client, self.transport, self.dep, self.progress = client, transport, dep, progress
        self.lifecycle = JobLifecycle(live=True)
        self.clock = time.monotonic
        self.followers: dict = {}
        self.parsers: dict = {}
        self.tasks: list[asyncio.Task] = []
        self.server = None  # the open_server context, entered once the server answers the identity check
        self.vllm = None

    @property
    def url(self) -> str:
        return self.vllm.base_url if self.vllm is not None else ""

    def follow_logs(self, info: JobInfo) -> None:
        for stream in ("out", "err"):
            self.tasks.append(asyncio.create_task(self._follow(info, stream)))

    async def _follow(self, info: JobInfo, stream: str) -> None:
        from r1console.core.logparse import LogParser

        path = self.client.log_path(info, stream, self.dep)
        if not path:
            return
        self.parsers[stream] = LogParser(stream)

        def restarted(event) -> None:  # a requeue truncated the log: a new run's log from byte 0
            self.parsers[stream] = LogParser(stream)

        follower = self.followers[stream] = self.client.follow(path, 0, on_reset=restarted)
        async for chunk in follower:
            self._feed(stream, chunk)

    def _feed(self, stream: str, chunk: bytes) -> None:
        self.lifecycle.on_log_seen()
        self.lifecycle.on_events(self.parsers[stream].feed(chunk), self.clock())

    async def catch_up(self) -> None:
        """The job ended: stop following and read each log from where its follower got to, to the
        end, so the verdict is the logged reason (an OOM) and not only SLURM's state (FAILED), which
        can arrive before the follower has streamed the last lines. Best effort, like the follow."""
        await self._stop_following()
        for stream, follower in self.followers.items():
            with contextlib.suppress(R1Error):
                async for chunk in follower.rest():
                    self._feed(stream, chunk)

    async def observe(self, info: JobInfo):
        """One round: a follower's failure raised, SLURM's state fed, the server asked; the snapshot."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
        lifecycle, clock = self.lifecycle, self.clock
        lifecycle.on_slurm_state(info.state, info.reason or None, clock())
        if info.is_running and self.server is None:
            await self._connect()
        if self.vllm is not None and info.is_running:
            await self._ask_server()
        snap = lifecycle.snapshot(clock())
        self.progress.show(f"job {self.dep.job_id}: {snap.stage.value}" + (f" - {snap.detail}" if snap.detail else ""))
        return snap

    async def _connect(self) -> None:
        from r1console.adapters.vllm_client import VllmClient

        server = open_server(self.dep.job_id, self.dep.cluster, transport=self.transport, prompt=None)
        try:
            url, key = await server.__aenter__()
        except (ServerUnreachable, JobStateError):
            # not listening yet: the identity check runs again next round; or the job ended since the
            # last squeue: the next round's state check sees it, and the verdict reads the logs' end
            self.lifecycle.on_health(False, self.clock())
        else:
            self.server = server
            self.vllm = VllmClient(url, key)

    async def _ask_server(self) -> None:
        lifecycle, clock = self.lifecycle, self.clock
        healthy = await self.vllm.is_healthy()
        lifecycle.on_health(healthy, clock())
        if not healthy:
            return
        try:
            await self.vllm.probe()
            lifecycle.on_probe(True, clock())
        except R1Error as err:
            lifecycle.on_probe(False, clock())
            self.progress.show(f"job {self.dep.job_id}: /health answers but a test completion failed: "
                               f"{str(err).splitlines()[0]}")

    async def _stop_following(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []

    async def aclose(self) -> None:
        await self._stop_following()
        for follower in self.followers.values():
            await follower.aclose()
        if self.vllm is not None:
            with contextlib.suppress(Exception):
                await self.vllm.aclose()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.__aexit__(None, None, None)
