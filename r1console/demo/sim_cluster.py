"""A simulated SLURM cluster: job table, scheduler clock, per-job playback into real log files, GPUs.

``SimCluster`` answers the SLURM commands r1console runs (``sbatch``, ``squeue`` incl. ``--json``,
``scontrol show job``, ``sacct``, ``scancel``, ``srun --overlap … nvidia-smi``, ``sinfo``; one mixin per
command in demo/slurm/) with the
stdout, stderr and exit codes real SLURM prints (SLURM 22.05 captures, some kept in tests/data/slurm;
``squeue --json`` in the >= 23.02 shape: flag arrays, ``{set, infinite, number}``).
``SimTransport`` (demo/transport.py) routes those commands here and everything else (``test``, ``rm``,
``stat``, ``tail -F``…) to real subprocesses, so the real ``SlurmClient``, parsers, ``FileFollower`` and
``ClusterSession`` run unchanged on it.

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
import dataclasses
import datetime as _dt
import getopt
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from r1console.demo.sim_job import (
    FAULTS,
    Entry,
    GpuModel,
    JobContext,
    Phases,
    ScriptError,
    build_timeline,
    oom_rank,
    parse_sbatch_args,
    parse_script,
    profile_from_script,
    stepd_line,
    uvicorn_shutdown_lines,
)
from r1console.demo.slurm.common import ACTIVE, KILL_WAIT_S, _bound_socket, _duration, _plan
from r1console.demo.slurm.model import SimJob, SimNode, SimStep
from r1console.demo.slurm.sacct import SacctCommand
from r1console.demo.slurm.scancel import ScancelCommand
from r1console.demo.slurm.scontrol import ScontrolCommand
from r1console.demo.slurm.sinfo import SinfoCommand
from r1console.demo.slurm.squeue import SqueueCommand
from r1console.demo.slurm.srun import SrunCommand


class SimCluster(SqueueCommand, ScontrolCommand, SacctCommand, ScancelCommand, SrunCommand, SinfoCommand):
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

    # ---- sbatch ------------------------------------------------------------------------------
    async def _sbatch(self, args: list[str]) -> tuple[int, str, str]:
        try:
            cli, rest = parse_sbatch_args(args, stop_at_positional=True)
        except ScriptError as err:
            return 1, "", str(err) + "\n"
        parsable = "parsable" in cli
        cli = {k: v for k, v in cli.items() if k not in ("parsable", "quiet", "verbose")}
        if not rest:
            return 1, "", "sbatch: error: Batch script is empty!\n"
        path = rest[0]
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return 1, "", f"sbatch: error: Unable to open file {path}\n"
        try:
            script = parse_script(path, text, cli)
            num_nodes, gpn, mem_mb, limit = script.nodes, script.gpus_per_node, script.mem_mb, script.time_limit_s
        except ScriptError as err:
            return 1, "", f"{err}\n"
        failed = "sbatch: error: Batch job submission failed: "
        partition = script.options.get("partition") or self.partition
        if partition != self.partition:
            return 1, "", (f"sbatch: error: invalid partition specified: {partition}\n"
                           f"{failed}Invalid partition name specified\n")
        node = next(iter(self.nodes.values()))
        if num_nodes > len(self.nodes):
            return 1, "", f"{failed}Node count specification invalid\n"
        if gpn > node.gpus or (mem_mb or 0) > node.memory_mb \
                or script.cpus_per_task * script.ntasks_per_node > node.cpus:
            return 1, "", f"{failed}Requested node configuration is not available\n"
        constraint = script.options.get("constraint")
        if constraint and any(f.strip("[]()!") not in node.features for f in constraint.replace("|", "&").split("&")):
            return 1, "", f"{failed}Invalid feature specification\n"
        if self.max_time_s is not None and (limit is None or limit > self.max_time_s):
            if limit is not None:
                return 1, "", f"{failed}Requested time limit is invalid (missing or exceeds some limit)\n"
            limit = self.max_time_s
        workdir = script.options.get("chdir") or str(self.home)
        job_id = self._take_job_id()
        fault = self.fault_next or self.fault
        self.fault_next = None
        job = SimJob(job_id=job_id, name=script.job_name, user=self.user, uid=self.uid, partition=partition,
                     workdir=workdir.rstrip("/") or "/", command=str(Path(path)), stdout_pattern=script.output,
                     stderr_pattern=script.error, num_nodes=num_nodes, gpus_per_node=gpn,
                     cpus_per_task=script.cpus_per_task, ntasks_per_node=script.ntasks_per_node, mem_mb=mem_mb,
                     time_limit_s=limit, features=constraint or "", exclusive=script.exclusive,
                     comment=script.options.get("comment", ""), submit=self.now(), script=script, fault=fault,
                     api_pid=os.getpid())
        job.profile = profile_from_script(script)
        job.plan = _plan(job.profile, node.gpu_name)
        self.jobs[job_id] = job
        job.task = asyncio.create_task(self._job_main(job), name=f"sim-job-{job_id}")
        return 0, (f"{job_id}\n" if parsable else f"Submitted batch job {job_id}\n"), ""

    def _take_job_id(self) -> int:
        if not self._next_id:
            counter = self.slurm_dir / "next_job_id"
            stored = counter.read_text().strip() if counter.exists() else ""
            if stored.isdigit():
                self._next_id = int(stored)
            else:
                # a fresh root starts somewhere new, so ids do not repeat records of an earlier demo
                self._next_id = self._first_job_id or 100_000 + int(time.time()) % 900_000
        job_id = self._next_id
        self._next_id += 1
        with contextlib.suppress(OSError):
            (self.slurm_dir / "next_job_id").write_text(f"{self._next_id}\n")
        return job_id

    # ---- the job's life ----------------------------------------------------------------------
    async def _job_main(self, job: SimJob) -> None:
        await self.sleep_until(job.submit + self.pending_priority_s)
        job.reason = "Priority" if self._waiting_before(job) else "Resources"
        await self.sleep_until(job.submit + self.pending_priority_s + self.pending_resources_s)
        while not self._can_start(job):
            released = self._released
            await released.wait()
        self._allocate(job)
        entries = self._prepare(job)
        for entry in entries:
            await self.sleep_until(job.start + entry.t)  # type: ignore[operator]
            if job.state != "RUNNING":
                return
            if entry.action:
                if entry.action == "exit":
                    if job.out_fh is not None:
                        job.out_fh.flush()
                    await self._end(job, "FAILED" if entry.code else "COMPLETED",
                                    exit_code=f"{entry.code}:0", reason="NonZeroExitCode" if entry.code else "None",
                                    when=job.start + entry.t)  # type: ignore[operator]
                    return
                if entry.action == "timeout":
                    await self._kill(job, due="TIME LIMIT")
                    return
                if entry.action == "vllm_bind":
                    job.bound = _bound_socket()
                    job.local_port = job.bound.getsockname()[1]
                elif entry.action == "server_up":
                    await self._start_server(job)
                continue
            self._write(job, entry.stream, entry.render())
        await asyncio.Event().wait()  # serving until scancel (no time limit)

    def _waiting_before(self, job: SimJob) -> list[SimJob]:
        return [j for j in self.jobs.values() if j.state == "PENDING" and j.job_id < job.job_id and not j.purged]

    def _free_nodes(self) -> list[str]:
        busy = {n for j in self.jobs.values() if j.state in ("RUNNING", "COMPLETING") for n in j.nodes}
        return [n for n in self.nodes if n not in busy]

    def _can_start(self, job: SimJob) -> bool:
        if self._waiting_before(job):
            job.reason = "Priority"
            return False
        if len(self._free_nodes()) < job.num_nodes:
            job.reason = "Resources"
            return False
        return True

    def _release(self) -> None:
        released, self._released = self._released, asyncio.Event()
        released.set()

    def _allocate(self, job: SimJob) -> None:
        job.nodes = self._free_nodes()[:job.num_nodes]
        job.state, job.reason, job.start = "RUNNING", "None", self.now()
        for path in (job.out_path, job.err_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        job.out_fh = open(job.out_path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed at the end
        job.err_fh = job.out_fh if job.err_path == job.out_path else open(  # noqa: SIM115
            job.err_path, "a", encoding="utf-8", newline="")
        if job.script is not None and job.script.backend == "ray":
            for i, node in enumerate(job.nodes):
                job.steps.append(SimStep(step_id=i, name="ray", node=node, start=job.start + (0.5 if i == 0 else 9.0)))
            job.next_step = len(job.nodes)

    def _prepare(self, job: SimJob) -> list[Entry]:
        script = job.script
        assert script is not None and job.start is not None
        node = self.nodes[job.nodes[0]]
        key_ok = True
        if script.key_file:
            key_ok = os.access(script.key_file, os.R_OK)
        ctx = JobContext(job_id=job.job_id, script=script, profile=job.profile, nodes=list(job.nodes),
                         ips=[self.nodes[n].ip for n in job.nodes], gpus_per_node=job.gpus_per_node,
                         start=_dt.datetime.fromtimestamp(job.start), load_seconds=self.load_seconds,
                         fault=job.fault, nccl_timeout_s=self.nccl_timeout_s, api_pid=job.api_pid,
                         kv_cache_tokens=job.plan.kv_tokens_per_gpu if job.plan is not None else None,
                         key_readable=key_ok)
        graphs = job.profile is not None and not job.profile.vllm.enforce_eager
        model = GpuModel.from_plan(Phases(), ctx.world, job.plan, total_mib=node.gpu_memory_mib, graphs=graphs,
                                   fault=job.fault, oom_rank_=oom_rank(ctx), oom_fraction=ctx.oom_fraction)
        entries, phases = build_timeline(ctx, model)
        model.phases = phases
        job.phases, job.gpu_model = phases, model
        if job.time_limit_s is not None:
            entries = [e for e in entries if e.t < job.time_limit_s] + [Entry(float(job.time_limit_s),
                                                                              action="timeout")]
        return entries

    # ---- files -------------------------------------------------------------------------------
    def _write(self, job: SimJob, stream: str, text: str) -> None:
        fh = job.err_fh if stream == "err" else job.out_fh
        if fh is None or fh.closed:
            return
        fh.write(text)
        fh.flush()

    def _close_files(self, job: SimJob) -> None:
        for fh in {id(f): f for f in (job.out_fh, job.err_fh) if f is not None}.values():
            with contextlib.suppress(OSError):
                fh.close()

    # ---- the server --------------------------------------------------------------------------
    async def _start_server(self, job: SimJob) -> None:
        from r1console.demo.sim_server import SimServer, SimServerConfig

        script, profile = job.script, job.profile
        assert script is not None
        key = None
        if script.key_file:
            with contextlib.suppress(OSError):
                key = Path(script.key_file).read_text(encoding="utf-8").strip() or None
        v = profile.vllm if profile is not None else None
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": job.local_port or 0, "vllm_version": script.version,
            "model": profile.model.path if profile is not None else "/path/to/DeepSeek-R1",
            "served_model_name": profile.model.served_name if profile is not None else None,
            "api_key": key, "job_id": str(job.job_id), "max_num_seqs": (v.max_num_seqs if v else None) or 256,
            "max_num_batched_tokens": (v.max_num_batched_tokens if v else None) or 8192,
            "max_model_len": (v.max_model_len if v else None) or 163_840,
            "time_scale": self.time_scale, "seed": job.job_id, "stats_interval_s": 10.0 * self.time_scale,
        }
        if job.plan is not None:
            options["kv_cache_tokens"] = job.plan.kv_tokens_per_gpu
        known = {f.name for f in dataclasses.fields(SimServerConfig)}
        options = {k: val for k, val in options.items() if k in known}
        if job.bound is not None:
            job.bound.close()
            job.bound = None
        server = SimServer(**options)
        try:
            try:
                await server.start()
            except OSError:  # the port went to someone else between close and bind: any free port
                server = SimServer(**{**options, "port": 0})
                await server.start()
        except asyncio.CancelledError:  # scancel while the server was starting
            with contextlib.suppress(Exception):
                await server.stop()
            raise
        # Our playback writes the "server ready" lines with the profile's host:port; from now on the
        # server's own access and stats lines go to the job's files.
        server.config.log_stream = job.out_fh
        server.config.err_stream = job.err_fh
        job.server = server
        job.local_port = server.port

    async def _stop_server(self, job: SimJob) -> None:
        server, job.server = job.server, None
        if server is not None:
            server.config.log_stream = None
            server.config.err_stream = None
            with contextlib.suppress(Exception):
                await server.stop()
        if job.bound is not None:
            job.bound.close()
            job.bound = None

    async def forward(self, host: str, port: int) -> tuple[str, int]:
        """Where ``host:port`` (as seen from the login node) answers on this machine: the job's server,
        or a bound-but-not-listening port that refuses connections, as a real node does while vLLM
        loads (vLLM binds its port before the engine starts; uvicorn listens only at the end)."""
        short = host.split(".")[0]
        node = self.nodes.get(short) or next((n for n in self.nodes.values() if n.ip == host), None)
        if node is None:
            raise LookupError(f"{host}: Name or service not known")
        for job in self.jobs.values():
            if job.state == "RUNNING" and job.batch_host == node.name and job.script is not None \
                    and job.script.port == int(port):
                if job.server is not None:
                    return "127.0.0.1", int(job.server.port)
                if job.bound is not None and job.local_port:
                    return "127.0.0.1", job.local_port
        assert self._refuser is not None
        return "127.0.0.1", self._refuser.getsockname()[1]

    # ---- ending ------------------------------------------------------------------------------
    async def _end(self, job: SimJob, state: str, *, exit_code: str, reason: str, when: float | None = None,
                   cancelled_by: int | None = None) -> None:
        if job.state not in ACTIVE:
            return
        me = asyncio.current_task()
        job.state, job.reason, job.exit_code = state, reason, exit_code
        job.end = self.now() if when is None else min(when, self.now())
        job.cancelled_by = cancelled_by
        for step in job.steps:  # the script's EXIT trap (or slurmstepd) stops the `ray start` steps
            if step.end is None:
                step.end, step.state, step.exit_code = job.end, "CANCELLED", "0:15"
        if job.nodes:
            rc = exit_code.split(":")[0]
            job.steps.append(SimStep(step_id=-1, name="batch", node=job.batch_host, start=job.start, end=job.end,
                                     state={"COMPLETED": "COMPLETED", "FAILED": "FAILED"}.get(state, "CANCELLED"),
                                     exit_code=f"{rc}:0" if state in ("COMPLETED", "FAILED") else "0:15"))
        await self._stop_server(job)
        self._close_files(job)
        self._record(job)
        self._release()
        if job.task is not None and job.task is not me and not job.task.done():
            job.task.cancel()

    async def _kill(self, job: SimJob, *, due: str | None = None, by: int | None = None) -> None:
        """slurmctld signals every step (scancel, or the time limit); what the job's .err/.out show."""
        when = self.now()
        stamp = _dt.datetime.fromtimestamp(when)
        if job.state == "RUNNING":
            running = [s for s in job.steps if s.end is None]
            lines = [f"srun: Job step aborted: Waiting up to {KILL_WAIT_S + 2} seconds for job step to finish."
                     for _ in running]
            lines += [stepd_line(s.node, "STEP", f"{job.job_id}.{s.step_id}", stamp, due) for s in reversed(running)]
            lines.append(stepd_line(job.batch_host, "JOB", str(job.job_id), stamp, due))
            lines += [f"srun: error: {s.node}: task 0: Terminated" for s in reversed(running)]
            if job.server is not None:
                lines += uvicorn_shutdown_lines(job.api_pid)
            for text in lines:
                self._write(job, "err", text + "\n")
            if job.script is not None and job.script.markers:
                self._write(job, "out", "[r1console] signal=TERM\n")
            if due:
                await self._end(job, "TIMEOUT", exit_code="0:15", reason="TimeLimit", when=when)
            else:
                await self._end(job, "CANCELLED", exit_code="0:15", reason="None", when=when, cancelled_by=by)
        elif job.state == "PENDING":
            job.start = when
            await self._end(job, "CANCELLED", exit_code="0:0", reason=job.reason, when=when, cancelled_by=by)

    async def _cancel(self, job: SimJob) -> None:
        await self._kill(job, by=self.uid)

    # ---- accounting --------------------------------------------------------------------------
    def _record(self, job: SimJob) -> None:
        with contextlib.suppress(OSError):
            with open(self.slurm_dir / "accounting.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(job.to_record(), sort_keys=True) + "\n")

    def _load_accounting(self) -> None:
        path = self.slurm_dir / "accounting.jsonl"
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                job = SimJob.from_record(json.loads(line))
            except (ValueError, TypeError):
                continue
            self.jobs.setdefault(job.job_id, job)


__all__ = ["SimCluster", "SimJob", "SimNode"]
