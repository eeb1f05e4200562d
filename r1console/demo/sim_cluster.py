"""A simulated SLURM cluster: job table, scheduler clock, per-job playback into real log files, GPUs.

``SimCluster`` answers the SLURM commands r1console runs (``sbatch``, ``squeue`` incl. ``--json``,
``scontrol show job``, ``sacct``, ``scancel``, ``srun --overlap … nvidia-smi``, ``sinfo``; one mixin per
command in demo/slurm/) with the stdout, stderr and exit codes real SLURM prints (SLURM 22.05 captures,
some kept in tests/data/slurm; ``squeue --json`` in the >= 23.02 shape: flag arrays, ``{set, infinite,
number}``).
``SimTransport`` (demo/transport.py) routes those commands here and everything else (``test``, ``rm``,
``stat``, ``tail -F``…) to real subprocesses, so the real ``SlurmClient``, parsers, ``FileFollower`` and
``ClusterSession`` run unchanged on it. This module keeps the cluster's state, clock and controls; the
job's life is in demo/slurm/ too (``playback``: scheduler and log playback, ``serving``: the job's
server and port forwards, ``ending``: how jobs end, and the accounting).

A job: PENDING (reason ``Priority``, then ``Resources`` until enough nodes are idle) -> RUNNING on whole
nodes (``gpu01``, ``gpu02``… 4 H200 each by default) -> COMPLETED / CANCELLED / FAILED / TIMEOUT.
While it runs a playback task writes ``<workdir>/job.<batchhost>.<id>.out/.err`` line by line at the
right (scaled) time (see sim_job.build_timeline); when the log says the server is up an in-process
``SimServer`` (sim_server.py) answers on a free 127.0.0.1 port with the job's API key, and its access
and stats lines go to the job's ``.out`` / ``.err``. GPU samples follow the job's phases (sim_job.GpuModel).

Time: ``time_scale`` is wall seconds per simulated second, as in SimServer (1 = real time; 0.02 = 50x
faster). Every timestamp SLURM or a log line shows is on the simulated clock, so tqdm's elapsed
time, vLLM's own timestamps, ``RunTime`` and ``Elapsed`` agree with each other (and with the wall
clock at ``time_scale=1``). ``load_seconds`` is how long loading the 163 shards takes (simulated).

Faults (``fault`` for every job, ``fault_next`` for the next submitted one): ``oom`` — a rank runs out
of GPU memory while loading (a leftover process holds part of its GPU; the traceback names it);
``nccl`` — the first collective after loading never completes between the nodes and the NCCL
watchdog kills every rank. Both end with the script's ``vllm_exited code=1``: FAILED, NonZeroExitCode.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import getopt
import os
import socket
import time
from pathlib import Path
from typing import Any

from r1console.demo.sim_job import FAULTS, uvicorn_shutdown_lines
from r1console.demo.slurm.common import _bound_socket, _duration
from r1console.demo.slurm.ending import JobEnding
from r1console.demo.slurm.model import SimJob, SimNode
from r1console.demo.slurm.playback import JobPlayback
from r1console.demo.slurm.sacct import SacctCommand
from r1console.demo.slurm.sbatch import SbatchCommand
from r1console.demo.slurm.scancel import ScancelCommand
from r1console.demo.slurm.scontrol import ScontrolCommand
from r1console.demo.slurm.serving import JobServing
from r1console.demo.slurm.sinfo import SinfoCommand
from r1console.demo.slurm.squeue import SqueueCommand
from r1console.demo.slurm.srun import SrunCommand


class SimCluster(SbatchCommand, SqueueCommand, ScontrolCommand, SacctCommand, ScancelCommand, SrunCommand, SinfoCommand,
                 JobPlayback, JobServing, JobEnding):
    """See the module docstring. ``await start()`` (or ``async with``), then hand it to SimTransport."""

    def __init__(self, root: str | Path, *, nodes: int | list[str] = 2, gpus_per_node: int = 4,
                 gpu_name: str = "NVIDIA H200", gpu_memory_mib: int = 143771, node_cpus: int = 96,
                 node_memory_mb: int = 1_474_560, features: tuple[str, ...] = ("h200",),
                 partition: str = "gpu", max_time: str = "7-00:00:00", cluster_name: str = "demo",
                 user: str = "demo", time_scale: float = 1.0, load_seconds: float = 60.0,
                 pending_priority_s: float = 4.0, pending_resources_s: float = 4.0,
                 fault: str | None = None, fault_next: str | None = None, nccl_timeout_s: float = 60.0,
                 min_job_age_s: float = 300.0, first_job_id: int | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0 (wall seconds per simulated second)")
        for kind in (fault, fault_next):
            if kind is not None and kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        self.root = Path(root).resolve()
        self.cluster_name = cluster_name
        self.user = user
        self.uid = os.getuid()
        self.home = self.root / "home" / user
        self.slurm_dir = self.root / "slurm"
        self.slurm_conf = self.slurm_dir / "slurm.conf"
        self.partition = partition
        self.max_time_s = None if max_time.upper() == "UNLIMITED" else _duration(max_time)
        self.time_scale = float(time_scale)
        self.load_seconds = float(load_seconds)
        self.pending_priority_s = float(pending_priority_s)
        self.pending_resources_s = float(pending_resources_s)
        self.fault = fault
        self.fault_next = fault_next
        self.nccl_timeout_s = float(nccl_timeout_s)
        self.min_job_age_s = float(min_job_age_s)
        names = nodes if isinstance(nodes, list) else [f"gpu{i:02d}" for i in range(1, int(nodes) + 1)]
        self.nodes: dict[str, SimNode] = {
            name: SimNode(name=name, ip=f"10.31.0.{11 + i}", gpus=gpus_per_node, gpu_name=gpu_name,
                          gpu_memory_mib=gpu_memory_mib, cpus=node_cpus, memory_mb=node_memory_mb,
                          features=tuple(features))
            for i, name in enumerate(names)}
        self.jobs: dict[int, SimJob] = {}
        self._first_job_id = first_job_id
        self._next_id = 0
        self._epoch0 = time.time()
        self._mono0 = time.monotonic()
        self._released = asyncio.Event()
        self._refuser: socket.socket | None = None
        self._started = False
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> "SimCluster":
        if self._started:
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        self.slurm_dir.mkdir(parents=True, exist_ok=True)
        self.slurm_conf.write_text(self._slurm_conf_text(), encoding="utf-8")
        self._load_accounting()
        self._refuser = _bound_socket()
        self._started = True
        return self

    async def close(self) -> None:
        """End every job still pending or running (as scancel would), stop servers and playback."""
        if self._closed:
            return
        self._closed = True
        for job in sorted(self.jobs.values(), key=lambda j: j.job_id):
            if job.is_active and not job.purged:
                with contextlib.suppress(Exception):
                    await self._cancel(job)
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for job in self.jobs.values():
            await self._stop_server(job)
            self._close_files(job)
        if self._refuser is not None:
            self._refuser.close()
            self._refuser = None

    async def __aenter__(self) -> "SimCluster":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- clock -------------------------------------------------------------------------------
    def now(self) -> float:
        """The simulated clock (epoch seconds)."""
        return self._epoch0 + (time.monotonic() - self._mono0) / self.time_scale

    def now_dt(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.now())

    async def sleep_until(self, when: float) -> None:
        delay = (when - self.now()) * self.time_scale
        if delay > 0:
            await asyncio.sleep(delay)

    # ---- controls (for the demo and tests) ---------------------------------------------------
    def set_fault(self, kind: str | None, *, every_job: bool = False) -> None:
        """Make the next submitted job (or, ``every_job``, all later ones) fail: ``oom``, ``nccl``, None."""
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        if every_job:
            self.fault = kind
        else:
            self.fault_next = kind

    def job(self, job_id: str | int) -> SimJob | None:
        try:
            return self.jobs.get(int(str(job_id).split("_")[0]))
        except ValueError:
            return None

    def server(self, job_id: str | int) -> Any:
        """The job's SimServer (None until the log says it is up)."""
        job = self.job(job_id)
        return job.server if job else None

    async def complete(self, job_id: str | int) -> None:
        """The job's vLLM stops cleanly (SIGINT) and the script exits 0: COMPLETED."""
        job = self.job(job_id)
        if job is None or job.state != "RUNNING":
            return
        when = self.now()
        if job.server is not None:
            for text in uvicorn_shutdown_lines(job.api_pid):
                self._write(job, "err", text + "\n")
        if job.script is not None and job.script.markers:
            self._write(job, "out", "[r1console] vllm_exited code=0\n")
        await self._end(job, "COMPLETED", exit_code="0:0", reason="None", when=when)

    def visible(self, job: SimJob) -> bool:
        """slurmctld still holds the job (it leaves squeue/scontrol MinJobAge after it ended)."""
        if job.purged:
            return False
        return job.end is None or self.now() - job.end < self.min_job_age_s

    # ---- commands ----------------------------------------------------------------------------
    async def command(self, argv: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run one SLURM client command: (exit code, stdout, stderr) as SLURM prints them."""
        if not self._started:
            await self.start()
        name, args = argv[0].rsplit("/", 1)[-1], list(argv[1:])
        handler = {"sbatch": self._sbatch, "squeue": self._squeue, "scontrol": self._scontrol,
                   "sacct": self._sacct, "scancel": self._scancel, "srun": self._srun,
                   "sinfo": self._sinfo}.get(name)
        if handler is None:
            return 1, "", f"{name}: error: not available on the demo cluster\n"
        try:
            return await handler(args)
        except getopt.GetoptError as err:
            return 1, "", f"{name}: {err.msg}\nTry \"{name} --help\" for more information\n"


__all__ = ["SimCluster", "SimJob", "SimNode"]
