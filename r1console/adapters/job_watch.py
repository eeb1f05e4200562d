"""Watching one job: SLURM state, both logs, GPUs and the server, folded into one lifecycle.

A :class:`JobWatch` holds the live state the job screen shows — a :class:`JobLifecycle`, a bounded
:class:`LogBuffer` per log, the last GPU report and server metrics — and offers one coroutine per
source. The TUI runs each in a worker and re-renders when a coroutine reports a change; the
headless ``wait`` command can drive the same loops. Costs on the cluster: one ``squeue`` per state
tick, one long-lived ``tail -F`` channel per log (no polling), one ``srun nvidia-smi`` per GPU
tick while the job runs, and HTTP over the one SSH forward once the server is up.

Huge logs: when a log is larger than ``head_bytes + tail_bytes`` only its head (where vLLM prints
the version, the shard total and the engine set-up) and its tail (the current state) are read;
the middle — access lines and periodic stats — is skipped, and the pane says so.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from r1console.adapters.session import ClusterSession
from r1console.adapters.slurm_client import GpuReport, JobStateError
from r1console.adapters.vllm_client import VllmClient
from r1console.core.errors import R1Error
from r1console.core.lifecycle import JobLifecycle, LifecycleState, Stage
from r1console.core.logbuffer import LogBuffer
from r1console.core.logparse import LogParser
from r1console.core.prometheus import ServerMetrics, rates
from r1console.core.slurm_parse import JobInfo


class WatchEvent(str, Enum):
    """What changed, as a watch loop tells its ``notify`` callback (read the watch for the new value)."""

    STATE = "state"      # the lifecycle (SLURM state, server checks)
    LOG_OUT = "log-out"  # bytes appended to the .out buffer
    LOG_ERR = "log-err"  # bytes appended to the .err buffer
    GPUS = "gpus"        # a new GPU sample (or its error)
    METRICS = "metrics"  # a new /metrics snapshot

    @classmethod
    def log(cls, stream: str) -> WatchEvent:
        return cls.LOG_OUT if stream == "out" else cls.LOG_ERR

    @property
    def stream(self) -> str | None:
        """``"out"`` / ``"err"`` for a log event, else None."""
        return {WatchEvent.LOG_OUT: "out", WatchEvent.LOG_ERR: "err"}.get(self)


Notify = Callable[[WatchEvent], None]

STREAMS = ("out", "err")


class JobWatch:
    def __init__(self, session: ClusterSession, job_id: str, *, clock: Callable[[], float] = time.monotonic,
                 max_lines: int = 20_000, head_bytes: int = 4 << 20, tail_bytes: int = 8 << 20) -> None:
        self.session = session
        self.job_id = str(job_id)
        self.clock = clock
        self.lifecycle = JobLifecycle(live=True)
        self.buffers = {s: LogBuffer(max_lines) for s in STREAMS}
        self.parsers = {s: LogParser(s) for s in STREAMS}
        self.head_bytes = head_bytes
        self.tail_bytes = tail_bytes
        self.info: JobInfo | None = None
        self.gpus: GpuReport | None = None
        self.gpu_error: str | None = None
        self.metrics: ServerMetrics | None = None
        self.tok_s: deque[float] = deque(maxlen=120)  # generation tokens/s, one point per scrape
        self.server_error: str | None = None
        self.log_paths: dict[str, str | None] = {s: None for s in STREAMS}
        self.resets: dict[str, int] = {s: 0 for s in STREAMS}  # times a log started over (requeue)

    # ---- state -----------------------------------------------------------------------------
    def snapshot(self) -> LifecycleState:
        return self.lifecycle.snapshot(self.clock())

    @property
    def stage(self) -> Stage:
        return self.snapshot().stage

    async def poll_state(self) -> JobInfo:
        info = await self.session.job_state(self.job_id)
        self.info = info
        self.lifecycle.on_slurm_state(info.state, info.reason, self.clock())
        return info

    async def state_loop(self, notify: Notify, interval: float = 5.0) -> None:
        """One ``squeue`` per tick until the job has ended (then one last tick)."""
        while True:
            try:
                info = await self.poll_state()
            except R1Error:
                await asyncio.sleep(interval)
                continue
            notify(WatchEvent.STATE)
            if info.is_finished:
                return
            await asyncio.sleep(interval if info.is_active else interval * 2)

    # ---- logs ------------------------------------------------------------------------------
    def _feed(self, stream: str, data: bytes, *, show: bytes | None = None) -> None:
        self.buffers[stream].feed_bytes(data if show is None else show)
        events = self.parsers[stream].feed(data)
        if events:
            self.lifecycle.on_events(events, self.clock())
        self.lifecycle.on_log_seen()

    async def _wait_for_path(self, stream: str, poll: float) -> str:
        while True:
            path = None
            try:
                path = await self.session.log_path(self.job_id, stream)
            except R1Error:
                pass
            if path and await self.session.slurm.file_size(path) is not None:
                self.log_paths[stream] = path
                return path
            await asyncio.sleep(poll)

    async def follow_log(self, stream: str, notify: Notify, *, poll: float = 3.0) -> None:
        """Follow ``.out`` or ``.err`` from its start (or head + tail of a huge file) for ever."""
        path = await self._wait_for_path(stream, poll)
        size = await self.session.slurm.file_size(path) or 0
        offset = 0
        skip_to_newline = False
        if size > self.head_bytes + self.tail_bytes:
            head = await self.session.transport.read_file(path, max_bytes=self.head_bytes)
            cut = head.rfind(b"\n") + 1
            self._feed(stream, head[:cut])
            offset = size - self.tail_bytes
            self.parsers[stream].skip_to(offset)  # offsets stay right; it drops the partial first line
            skipped = offset - cut
            self.buffers[stream].feed(f"[r1console] … {skipped / 2**20:.0f} MiB of this log skipped "
                                      f"(head and tail shown) …\n")
            skip_to_newline = True
            notify(WatchEvent.log(stream))
        def restarted(event) -> None:
            # a requeue truncated the log (or it was replaced): mark it and parse the new run afresh
            nonlocal skip_to_newline
            self.buffers[stream].feed(f"\n[r1console] ── {event.describe()} ──\n")
            self.parsers[stream] = LogParser(stream)
            skip_to_newline = False
            self.resets[stream] += 1

        follower = self.session.follow(path, offset, on_reset=restarted)
        try:
            async for chunk in follower:
                shown = None
                if skip_to_newline:  # the pane starts at the first whole line of the tail
                    nl = chunk.find(b"\n")
                    shown = b"" if nl < 0 else chunk[nl + 1:]
                    skip_to_newline = nl < 0
                self._feed(stream, chunk, show=shown)
                notify(WatchEvent.log(stream))
        finally:
            await follower.aclose()

    # ---- GPUs ------------------------------------------------------------------------------
    async def gpu_loop(self, notify: Notify, interval: float = 5.0) -> None:
        """One ``srun nvidia-smi`` per tick while the job runs."""
        while True:
            info = self.info
            if info is not None and info.is_finished:
                return
            if info is not None and info.is_running:
                try:
                    self.gpus = await self.session.gpus(self.job_id)
                    self.gpu_error = None
                except JobStateError as err:
                    self.gpu_error = str(err)
                except R1Error as err:
                    self.gpu_error = str(err)
                notify(WatchEvent.GPUS)
            await asyncio.sleep(interval)

    # ---- the server ------------------------------------------------------------------------
    async def server_loop(self, notify: Notify, interval: float = 2.0) -> None:
        """Once the log says the server is up: /health, one probe completion, then /metrics."""
        while True:
            state = self.snapshot()
            if state.stage.terminal:
                return
            if state.log_ready or state.stage is Stage.READY:
                try:
                    async with self.session.open_server(self.job_id) as (url, key):
                        async with VllmClient(url, key, timeout=10.0) as client:
                            await self._serve(client, notify, interval)
                except R1Error as err:
                    self.server_error = str(err)
                    self.lifecycle.on_health(False, self.clock())
                    notify(WatchEvent.STATE)
            await asyncio.sleep(interval)

    async def _serve(self, client: VllmClient, notify: Notify, interval: float) -> None:
        probed = False
        while not self.snapshot().stage.terminal:
            healthy = await client.is_healthy()
            self.lifecycle.on_health(healthy, self.clock())
            if healthy and not probed:
                try:
                    await client.probe(timeout=60)
                    probed = True
                    self.lifecycle.on_probe(True, self.clock())
                except R1Error as err:
                    self.server_error = f"the server is healthy but failed a test completion: {err}"
                    self.lifecycle.on_probe(False, self.clock())
            if healthy:
                self.server_error = None
                try:
                    current = await client.metrics()
                    if self.metrics is not None and current.at > self.metrics.at:
                        gen = rates(self.metrics, current).generation_tok_s
                        if gen is not None:
                            self.tok_s.append(gen)
                    self.metrics = current
                    notify(WatchEvent.METRICS)
                except R1Error:
                    pass
            else:
                probed = False
            notify(WatchEvent.STATE)
            await asyncio.sleep(interval)
