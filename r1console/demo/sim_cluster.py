"""A simulated SLURM cluster: job table, scheduler clock, per-job playback into real log files, GPUs.

``SimCluster`` answers the SLURM commands r1console runs (``sbatch``, ``squeue`` incl. ``--json``,
``scontrol show job``, ``sacct``, ``scancel``, ``srun --overlap … nvidia-smi``, ``sinfo``) with the
stdout, stderr and exit codes real SLURM prints (SLURM 22.05 captures, some kept in tests/data/slurm;
``squeue --json`` in the >= 23.02 shape: flag arrays, ``{set, infinite, number}``).
``SimTransport`` (sim_transport.py) routes those commands here and everything else (``test``, ``rm``,
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from r1console.core.slurm_filenames import expand_filename
from r1console.core.slurm_parse import expand_hostlist, format_duration
from r1console.demo.sim_job import (
    FAULTS,
    Entry,
    GpuModel,
    JobContext,
    JobScript,
    Phases,
    ScriptError,
    build_timeline,
    compress_hostlist,
    gpu_uuid,
    oom_rank,
    parse_sbatch_args,
    parse_script,
    profile_from_script,
    stepd_line,
    uvicorn_shutdown_lines,
)

INVALID_JOB_ID = "slurm_load_jobs error: Invalid job id specified\n"
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")
ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
COMPACT = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "CANCELLED": "CA", "FAILED": "F",
           "TIMEOUT": "TO", "COMPLETING": "CG", "CONFIGURING": "CF", "NODE_FAIL": "NF", "SUSPENDED": "S",
           "OUT_OF_MEMORY": "OOM"}
KILL_WAIT_S = 30  # slurm.conf KillWait (srun prints "Waiting up to KillWait+2 seconds")


def _ts(epoch: float | None, empty: str = "Unknown") -> str:
    if epoch is None:
        return empty
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%dT%H:%M:%S")


def _hms(seconds: float | None) -> str:
    """scontrol RunTime / sacct Elapsed: ``00:01:27``, ``1-00:00:00``."""
    s = max(0, int(seconds or 0))
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{sec:02d}"


def _limit_hms(seconds: int | None) -> str:
    return "UNLIMITED" if seconds is None else _hms(seconds)


def _limit_squeue(seconds: int | None) -> str:
    return "UNLIMITED" if seconds is None else format_duration(seconds)


def _num(value: int | float | None, *, infinite: bool = False) -> dict:
    """>= 23.02 JSON number: ``{"set": bool, "infinite": bool, "number": int}``."""
    return {"set": value is not None or infinite, "infinite": infinite, "number": int(value or 0)}


def _mem_text(mb: int | None) -> str:
    if not mb:
        return "0"
    if mb % (1024 * 1024) == 0:
        return f"{mb // (1024 * 1024)}T"
    if mb % 1024 == 0:
        return f"{mb // 1024}G"
    return f"{mb}M"


# ================================================================================================
# Nodes and jobs
# ================================================================================================
@dataclass(frozen=True)
class SimNode:
    name: str
    ip: str
    gpus: int = 4
    gpu_name: str = "NVIDIA H200"
    gpu_memory_mib: int = 143771
    gpu_power_limit_w: float = 700.0
    cpus: int = 96
    sockets: int = 2
    memory_mb: int = 1_474_560
    features: tuple[str, ...] = ("h200",)


@dataclass
class SimStep:
    step_id: int
    name: str
    node: str
    start: float
    end: float | None = None
    state: str = "RUNNING"
    exit_code: str = "0:0"


@dataclass
class SimJob:
    job_id: int
    name: str
    user: str
    uid: int
    partition: str
    workdir: str
    command: str
    stdout_pattern: str
    stderr_pattern: str
    num_nodes: int
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    ntasks_per_node: int = 1
    mem_mb: int | None = None
    time_limit_s: int | None = None
    features: str = ""
    exclusive: bool = False
    submit: float = 0.0
    state: str = "PENDING"
    reason: str = "Priority"
    start: float | None = None
    end: float | None = None
    exit_code: str = "0:0"
    nodes: list[str] = field(default_factory=list)
    cancelled_by: int | None = None
    steps: list[SimStep] = field(default_factory=list)
    # ---- runtime only (not kept in the accounting file) ----
    script: JobScript | None = None
    profile: Any = None
    plan: Any = None
    fault: str | None = None
    phases: Phases = field(default_factory=Phases)
    gpu_model: GpuModel | None = None
    task: asyncio.Task | None = None
    out_fh: TextIO | None = None
    err_fh: TextIO | None = None
    server: Any = None                     # sim_server.SimServer once the log says the server is up
    bound: socket.socket | None = None     # vLLM's port, bound but not listening yet (connects refused)
    local_port: int | None = None
    next_step: int = 0
    api_pid: int = 0
    purged: bool = False                   # loaded from accounting only: slurmctld forgot it

    # ---- derived ----------------------------------------------------------------------------
    @property
    def batch_host(self) -> str:
        return self.nodes[0] if self.nodes else ""

    @property
    def nodelist(self) -> str:
        return compress_hostlist(self.nodes) if self.nodes else ""

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    @property
    def cpus(self) -> int:
        return self.cpus_per_task * self.ntasks_per_node * self.num_nodes

    def tres(self, *, alloc: bool) -> str:
        parts = [f"cpu={self.cpus}"]
        if self.mem_mb:
            parts.append(f"mem={_mem_text(self.mem_mb * self.num_nodes)}")
        parts += [f"node={self.num_nodes}", f"billing={self.cpus}"]
        if self.gpus_per_node:
            parts.append(f"gres/gpu={self.gpus_per_node * self.num_nodes}")
        return ",".join(parts)

    def pattern_path(self, pattern: str, *, expand_node: bool) -> str:
        """The job's ``--output``/``--error`` path; ``%N`` stays until the job has a node (or unexpanded)."""
        path = expand_filename(pattern, job_id=str(self.job_id), name=self.name, user=self.user,
                               host=self.batch_host if expand_node else None, workdir=None, keep_unknown_host=True)
        path = path or ""
        return path if path.startswith("/") else f"{self.workdir.rstrip('/')}/{path}"

    def raw_pattern(self, pattern: str) -> str:
        return pattern if pattern.startswith("/") else f"{self.workdir.rstrip('/')}/{pattern}"

    @property
    def out_path(self) -> str:
        return self.pattern_path(self.stdout_pattern, expand_node=True)

    @property
    def err_path(self) -> str:
        return self.pattern_path(self.stderr_pattern, expand_node=True)

    def elapsed(self, now: float) -> float:
        if self.start is None:
            return 0.0
        return max(0.0, (self.end if self.end is not None else now) - self.start)

    def to_record(self) -> dict:
        keep = ("job_id", "name", "user", "uid", "partition", "workdir", "command", "stdout_pattern",
                "stderr_pattern", "num_nodes", "gpus_per_node", "cpus_per_task", "ntasks_per_node", "mem_mb",
                "time_limit_s", "features", "exclusive", "submit", "state", "reason", "start", "end",
                "exit_code", "nodes", "cancelled_by")
        data = {k: getattr(self, k) for k in keep}
        data["steps"] = [dataclasses.asdict(s) for s in self.steps]
        return data

    @classmethod
    def from_record(cls, data: dict) -> "SimJob":
        known = {f.name for f in dataclasses.fields(cls)}
        steps = [SimStep(**s) for s in data.get("steps") or []]
        job = cls(**{k: v for k, v in data.items() if k in known and k != "steps"})
        job.steps = steps
        job.purged = True
        return job


# ================================================================================================
# The cluster
# ================================================================================================
class SimCluster:
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
                     submit=self.now(), script=script, fault=fault, api_pid=os.getpid())
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
            "api_key": key, "max_num_seqs": (v.max_num_seqs if v else None) or 256,
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

    # ---- squeue ------------------------------------------------------------------------------
    async def _squeue(self, args: list[str]) -> tuple[int, str, str]:
        opts, _ = getopt.gnu_getopt(args, "hj:o:t:u:p:lavrO:S:i:M:w:n:q:A:s", [
            "noheader", "jobs=", "format=", "states=", "user=", "partition=", "long", "all", "json", "me",
            "array", "Format=", "sort=", "iterate=", "clusters=", "nodelist=", "name=", "qos=", "account=",
            "steps", "verbose", "yaml"])
        header, fmt, states, users, ids, parts = True, None, None, None, None, None
        want_json = False
        for key, value in opts:
            if key in ("-h", "--noheader"):
                header = False
            elif key in ("-o", "--format"):
                fmt = value
            elif key in ("-t", "--states"):
                states = {s.strip().upper() for s in value.split(",") if s.strip()}
            elif key in ("-u", "--user"):
                users = {u.strip() for u in value.split(",") if u.strip()}
            elif key == "--me":
                users = {self.user}
            elif key in ("-j", "--jobs"):
                ids = [i.strip() for i in value.split(",") if i.strip()]
            elif key in ("-p", "--partition"):
                parts = {p.strip() for p in value.split(",")}
            elif key == "--json":
                want_json = True
            elif key in ("-O", "--Format", "--yaml", "-s", "--steps", "-i", "--iterate"):
                return 1, "", f"squeue: error: {key} is not supported on the demo cluster\n"
        jobs = [j for j in self.jobs.values() if self.visible(j)]
        if ids is not None:
            wanted = set()
            for text in ids:
                job = self.job(text)
                if job is not None and self.visible(job):
                    wanted.add(job.job_id)
            if not wanted:
                return 1, "", INVALID_JOB_ID
            jobs = [j for j in jobs if j.job_id in wanted]
        if users is not None:
            jobs = [j for j in jobs if j.user in users]
        if parts is not None:
            jobs = [j for j in jobs if j.partition in parts]
        if want_json:
            return 0, self._squeue_json(jobs), ""
        if states is None:
            jobs = [j for j in jobs if j.state in ACTIVE]
        elif "ALL" not in states:
            names = {s if s not in _FROM_COMPACT else _FROM_COMPACT[s] for s in states}
            jobs = [j for j in jobs if j.state in names]
        order = {"PENDING": 0, "RUNNING": 1}
        jobs.sort(key=lambda j: (order.get(j.state, 2), j.job_id))
        fmt = fmt or "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
        try:
            spec = _parse_format(fmt)
        except ValueError as err:
            return 1, "", f"squeue: error: Invalid job format specification: {err}\n"
        now = self.now()
        lines = []
        if header:
            lines.append(_render_format(spec, lambda code: _SQUEUE_HEADERS.get(code, code.upper())))
        for job in jobs:
            lines.append(_render_format(spec, lambda code, job=job: self._squeue_value(job, code, now)))
        return 0, "".join(line + "\n" for line in lines), ""

    def _squeue_value(self, job: SimJob, code: str, now: float) -> str:
        pending = job.state == "PENDING"
        reason_style = pending or job.state in ("TIMEOUT", "FAILED", "OUT_OF_MEMORY", "DEADLINE")
        values = {
            "i": str(job.job_id), "A": str(job.job_id), "j": job.name, "T": job.state,
            "t": COMPACT.get(job.state, job.state[:2]), "r": job.reason or "None",
            "R": f"({job.reason or 'None'})" if reason_style or not job.nodes else job.nodelist,
            "B": job.batch_host if not pending and job.batch_host else "n/a",
            "D": str(job.num_nodes), "M": format_duration(int(job.elapsed(now))),
            "l": _limit_squeue(job.time_limit_s),
            "L": ("UNLIMITED" if job.time_limit_s is None else
                  format_duration(max(0, int(job.time_limit_s - job.elapsed(now))))),
            "S": _ts(job.start, "N/A") if not pending else "N/A", "e": _ts(job.end, "N/A"),
            "V": _ts(job.submit), "P": job.partition, "u": job.user, "N": job.nodelist,
            "Z": job.workdir, "C": str(job.cpus), "o": job.command, "a": "(null)", "q": "normal",
            "b": f"gres/gpu:{job.gpus_per_node}" if job.gpus_per_node else "N/A",
            "f": job.features or "(null)", "m": _mem_text(job.mem_mb), "Q": str(4294901759 - job.job_id % 1000),
            "k": "(null)", "U": str(job.uid), "g": job.user, "x": "", "n": "",
        }
        if code not in values:
            raise ValueError(code)
        return values[code]

    def _squeue_json(self, jobs: list[SimJob]) -> str:
        now = self.now()
        payload = {
            "jobs": [self._job_json(j, now) for j in sorted(jobs, key=lambda j: j.job_id)],
            "last_backfill": _num(int(now) - 17), "last_update": _num(int(now) - 1),
            "meta": {"plugin": {"type": "openapi/slurmctld", "name": "Slurm OpenAPI slurmctld",
                                "data_parser": "data_parser/v0.0.40", "accounting_storage": "slurmdbd"},
                     "client": {"source": "/dev/pts/0", "user": self.user, "group": self.user},
                     "command": ["squeue", "--json"],
                     "slurm": {"version": {"major": "23", "micro": "1", "minor": "11"}, "release": "23.11.1",
                               "cluster": self.cluster_name}},
            "errors": [], "warnings": [],
        }
        return json.dumps(payload, indent=2) + "\n"

    def _job_json(self, job: SimJob, now: float) -> dict:
        pending = job.state == "PENDING"
        rc, _, sig = job.exit_code.partition(":")
        signal_id = int(sig or 0)
        status = ["SUCCESS"] if rc == "0" and not signal_id else (["SIGNALED"] if signal_id else ["ERROR"])
        expected_end = (job.start + job.time_limit_s) if job.start is not None and job.time_limit_s else None
        end = job.end if job.end is not None else (expected_end if not pending else None)
        flags = [job.state] if job.state else ["PENDING"]
        return {
            "account": "", "accrue_time": _num(int(job.submit)), "admin_comment": "",
            "array_job_id": _num(0), "array_task_id": {"set": False, "infinite": False, "number": 0},
            "array_max_tasks": 0, "array_task_string": "", "association_id": 0, "batch_features": "",
            "batch_flag": True, "batch_host": job.batch_host if not pending else "",
            "flags": ["TRES_STR_CALC"], "burst_buffer": "", "burst_buffer_state": "",
            "cluster": self.cluster_name, "cluster_features": "", "command": job.command, "comment": "",
            "container": "", "contiguous": False, "core_spec": None, "thread_spec": None,
            "cores_per_socket": None, "billable_tres": float(job.cpus), "cpus_per_task": job.cpus_per_task,
            "cpu_frequency_minimum": None, "cpu_frequency_maximum": None, "cpu_frequency_governor": None,
            "cpus_per_tres": "", "deadline": {"set": False, "infinite": False, "number": 0}, "delay_boot": 0,
            "dependency": "", "derived_exit_code": 0, "eligible_time": _num(int(job.submit)),
            "end_time": _num(int(end) if end else 0),
            "excluded_nodes": "",
            "exit_code": {"status": status, "return_code": _num(int(rc or 0)),
                          "signal": {"id": {"set": bool(signal_id), "infinite": False, "number": signal_id},
                                     "name": "SIGTERM" if signal_id == 15 else ""}},
            "features": job.features, "federation_origin": "", "federation_siblings_active": "",
            "federation_siblings_viable": "",
            "gres_detail": [f"gpu:{job.gpus_per_node}(IDX:0-{job.gpus_per_node - 1})"]
            if job.gpus_per_node and job.state == "RUNNING" else [],
            "group_id": job.uid, "group_name": job.user, "job_id": job.job_id,
            "job_resources": {} if pending or not job.nodes else {
                "nodes": job.nodelist, "allocated_cores": job.cpus, "allocated_hosts": len(job.nodes),
                "allocated_nodes": [{"sockets": {"0": {"cores": {"0": "allocated"}}}, "nodename": n,
                                     "cpus_used": job.cpus_per_task, "memory_used": 0,
                                     "memory_allocated": job.mem_mb or 0} for n in job.nodes]},
            "job_state": flags, "last_sched_evaluation": _num(int(job.start or job.submit)),
            "licenses": "", "max_cpus": 0, "max_nodes": 0, "mcs_label": "", "memory_per_tres": "",
            "name": job.name, "nodes": job.nodelist if not pending else "", "nice": None,
            "tasks_per_core": None, "tasks_per_node": job.ntasks_per_node, "tasks_per_socket": None,
            "tasks_per_board": 0, "cpus": job.cpus, "node_count": _num(job.num_nodes),
            "tasks": job.num_nodes * job.ntasks_per_node, "het_job_id": 0, "het_job_id_set": "",
            "het_job_offset": 0, "partition": job.partition, "prefer": "",
            "memory_per_node": _num(job.mem_mb) if job.mem_mb else None, "memory_per_cpu": None,
            "minimum_cpus_per_node": job.cpus_per_task, "minimum_tmp_disk_per_node": 0,
            "preempt_time": {"set": False, "infinite": False, "number": 0},
            "pre_sus_time": {"set": False, "infinite": False, "number": 0},
            "priority": _num(4294901759 - job.job_id % 1000), "profile": None, "qos": "normal",
            "reboot": False, "required_nodes": "", "requeue": True,
            "resize_time": {"set": False, "infinite": False, "number": 0}, "restart_cnt": 0, "resv_name": "",
            "shared": None if not job.exclusive else "none",
            "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0,
            "sockets_per_node": None, "start_time": _num(int(job.start) if job.start else 0),
            "state_description": "", "state_reason": job.reason or "None",
            "standard_error": job.raw_pattern(job.stderr_pattern), "standard_input": "/dev/null",
            "standard_output": job.raw_pattern(job.stdout_pattern), "submit_time": _num(int(job.submit)),
            "suspend_time": {"set": False, "infinite": False, "number": 0}, "system_comment": "",
            "time_limit": _num(job.time_limit_s // 60 if job.time_limit_s is not None else 0,
                               infinite=job.time_limit_s is None),
            "time_minimum": 0, "threads_per_core": None, "tres_bind": "", "tres_freq": "", "tres_per_job": "",
            "tres_per_node": f"gres/gpu:{job.gpus_per_node}" if job.gpus_per_node else "",
            "tres_per_socket": "", "tres_per_task": "", "tres_req_str": job.tres(alloc=False),
            "tres_alloc_str": job.tres(alloc=True) if not pending else "", "user_id": job.uid,
            "user_name": job.user, "wckey": "", "current_working_directory": job.workdir,
        }

    # ---- scontrol ----------------------------------------------------------------------------
    async def _scontrol(self, args: list[str]) -> tuple[int, str, str]:
        oneliner = False
        words = []
        for arg in args:
            if arg in ("-o", "--oneliner"):
                oneliner = True
            elif arg in ("-d", "--details", "-a", "--all"):
                continue
            elif arg.startswith("-"):
                return 1, "", f"scontrol: unrecognized option '{arg}'\nTry \"scontrol --help\" for more information\n"
            else:
                words.append(arg)
        if len(words) >= 2 and words[0] == "show" and words[1] in ("hostnames", "hostname"):
            expr = words[2] if len(words) > 2 else ""
            return 0, "".join(h + "\n" for h in expand_hostlist(expr)), ""
        if len(words) >= 2 and words[0] == "show" and words[1] in ("job", "jobs"):
            now = self.now()
            if len(words) > 2:
                job = self.job(words[2])
                if job is None or not self.visible(job):
                    return 1, "", INVALID_JOB_ID
                jobs = [job]
            else:
                jobs = sorted((j for j in self.jobs.values() if self.visible(j)), key=lambda j: j.job_id)
                if not jobs:
                    return 0, "No jobs in the system\n", ""
            text = "".join(self._scontrol_text(j, now, oneliner) for j in jobs)
            return 0, text, ""
        return 1, "", f"invalid entity:{words[1] if len(words) > 1 else ''} for keyword:show\n"

    def _scontrol_text(self, job: SimJob, now: float, oneliner: bool) -> str:
        pending = job.state == "PENDING"
        limit = job.time_limit_s
        if pending:
            start, end = "Unknown", "Unknown"
        else:
            start = _ts(job.start)
            if job.end is not None:
                end = _ts(job.end)
            else:
                end = _ts(job.start + limit) if job.start is not None and limit is not None else "Unknown"
        nodes = job.nodelist
        num_nodes = f"{job.num_nodes}-{job.num_nodes}" if pending else str(job.num_nodes)
        rows: list[list[str]] = [
            [f"JobId={job.job_id}", f"JobName={job.name}"],
            [f"UserId={job.user}({job.uid})", f"GroupId={job.user}({job.uid})", "MCS_label=N/A"],
            [f"Priority={4294901759 - job.job_id % 1000}", "Nice=0", "Account=(null)", "QOS=normal"],
            [f"JobState={job.state}", f"Reason={job.reason or 'None'}", "Dependency=(null)"],
            ["Requeue=1", "Restarts=0", "BatchFlag=1", "Reboot=0", f"ExitCode={job.exit_code}"],
            [f"RunTime={_hms(job.elapsed(now))}", f"TimeLimit={_limit_hms(limit)}", "TimeMin=N/A"],
            [f"SubmitTime={_ts(job.submit)}", f"EligibleTime={_ts(job.submit)}"],
            [f"AccrueTime={_ts(job.submit)}"],
            [f"StartTime={start}", f"EndTime={end}", "Deadline=N/A"],
            ["SuspendTime=None", "SecsPreSuspend=0", f"LastSchedEval={_ts(job.start or job.submit)}",
             "Scheduler=Main"],
            [f"Partition={job.partition}", "AllocNode:Sid=login01:4242"],
            ["ReqNodeList=(null)", "ExcNodeList=(null)"],
            [f"NodeList={nodes}"],
        ]
        if job.nodes and not pending:
            rows.append([f"BatchHost={job.batch_host}"])
        rows += [
            [f"NumNodes={num_nodes}", f"NumCPUs={job.cpus}", f"NumTasks={job.num_nodes * job.ntasks_per_node}",
             f"CPUs/Task={job.cpus_per_task}", "ReqB:S:C:T=0:0:*:*"],
            [f"TRES={job.tres(alloc=not pending)}"],
            ["Socks/Node=*", f"NtasksPerN:B:S:C={job.ntasks_per_node}:0:*:*", "CoreSpec=*"],
            [f"MinCPUsNode={job.cpus_per_task}", f"MinMemoryNode={_mem_text(job.mem_mb)}", "MinTmpDiskNode=0"],
            [f"Features={job.features or '(null)'}", "DelayBoot=00:00:00"],
            [f"OverSubscribe={'NO' if job.exclusive else 'OK'}", "Contiguous=0", "Licenses=(null)",
             "Network=(null)"],
            [f"Command={job.command}"],
            [f"WorkDir={job.workdir}"],
            [f"StdErr={job.pattern_path(job.stderr_pattern, expand_node=False)}"],
            ["StdIn=/dev/null"],
            [f"StdOut={job.pattern_path(job.stdout_pattern, expand_node=False)}"],
            ["Power="],
        ]
        if job.gpus_per_node:
            rows.append([f"TresPerNode=gres/gpu:{job.gpus_per_node}"])
        if oneliner:
            return " ".join(" ".join(r) for r in rows) + " \n"
        first, *rest = rows
        return " ".join(first) + "\n" + "".join("   " + " ".join(r) + "\n" for r in rest) + "   \n\n"

    # ---- sacct -------------------------------------------------------------------------------
    async def _sacct(self, args: list[str]) -> tuple[int, str, str]:
        opts, _ = getopt.gnu_getopt(args, "XPpno:j:S:E:u:acs:LD", [
            "allocations", "parsable2", "parsable", "noheader", "format=", "jobs=", "starttime=", "endtime=",
            "user=", "allusers", "completion", "state=", "allclusters", "duplicates", "delimiter="])
        steps, parsable, header, fields = True, 0, True, None
        ids, start, end, users, all_users, states, delim = None, None, None, None, False, None, "|"
        for key, value in opts:
            if key in ("-X", "--allocations"):
                steps = False
            elif key in ("-P", "--parsable2"):
                parsable = 2
            elif key in ("-p", "--parsable"):
                parsable = 1
            elif key in ("-n", "--noheader"):
                header = False
            elif key in ("-o", "--format"):
                fields = [f.strip() for f in value.split(",") if f.strip()]
            elif key in ("-j", "--jobs"):
                ids = [i.strip() for i in value.split(",") if i.strip()]
            elif key in ("-S", "--starttime"):
                start = _parse_sacct_time(value)
                if start is None:
                    return 1, "", f"sacct: error: Invalid time specification (pos=0): {value}\n"
            elif key in ("-E", "--endtime"):
                end = _parse_sacct_time(value)
            elif key in ("-u", "--user"):
                users = {u.strip() for u in value.split(",")}
            elif key in ("-a", "--allusers"):
                all_users = True
            elif key in ("-s", "--state"):
                states = {_FROM_COMPACT.get(s.strip().upper(), s.strip().upper()) for s in value.split(",")}
            elif key == "--delimiter":
                delim = value
        fields = fields or ["JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode"]
        for name in fields:
            if name.split("%")[0].lower() not in _SACCT_FIELDS:
                return 1, "", f'sacct: error: Invalid field requested: "{name}"\n'
        now = self.now()
        jobs = sorted(self.jobs.values(), key=lambda j: j.job_id)
        if ids is not None:
            wanted = {i.split(".")[0].split("_")[0] for i in ids}
            jobs = [j for j in jobs if str(j.job_id) in wanted]
        else:
            since = start if start is not None else _dt.datetime.combine(_dt.date.fromtimestamp(now),
                                                                          _dt.time()).timestamp()
            until = end if end is not None else now
            if not all_users:
                users = users or {self.user}
            jobs = [j for j in jobs if (j.end if j.end is not None else now) >= since and j.submit <= until]
        if users is not None and not all_users:
            jobs = [j for j in jobs if j.user in users]
        if states is not None:
            jobs = [j for j in jobs if j.state in states]
        rows: list[tuple[SimJob, SimStep | None]] = []
        for job in jobs:
            rows.append((job, None))
            if steps:
                ordered = sorted(job.steps, key=lambda s: (s.step_id >= 0, s.step_id))
                rows += [(job, s) for s in ordered]
        names = [f.split("%")[0] for f in fields]
        out: list[str] = []
        if parsable:
            sep = delim
            tail = sep if parsable == 1 else ""
            if header:
                out.append(sep.join(_SACCT_FIELDS[n.lower()] for n in names) + tail)
            for job, step in rows:
                out.append(sep.join(self._sacct_value(job, step, n.lower(), now) for n in names) + tail)
        else:
            widths = [int(f.split("%")[1]) if "%" in f and f.split("%")[1].isdigit()
                      else _SACCT_WIDTH.get(n.lower(), 10) for f, n in zip(fields, names)]
            if header:
                out.append(" ".join(_SACCT_FIELDS[n.lower()][:w].rjust(w) if n.lower() != "jobid"
                                    else _SACCT_FIELDS[n.lower()][:w].ljust(w) for n, w in zip(names, widths)) + " ")
                out.append(" ".join("-" * w for w in widths) + " ")
            for job, step in rows:
                cells = []
                for n, w in zip(names, widths):
                    value = self._sacct_value(job, step, n.lower(), now)
                    value = value if len(value) <= w else value[:w - 1] + "+"
                    cells.append(value.ljust(w) if n.lower() == "jobid" else value.rjust(w))
                out.append(" ".join(cells) + " ")
        return 0, "".join(line + "\n" for line in out), ""

    def _sacct_value(self, job: SimJob, step: SimStep | None, name: str, now: float) -> str:
        if step is not None:
            sid = "batch" if step.step_id < 0 else str(step.step_id)
            elapsed = max(0.0, (step.end if step.end is not None else now) - step.start)
            values = {"jobid": f"{job.job_id}.{sid}", "jobidraw": f"{job.job_id}.{sid}", "jobname": step.name,
                      "state": step.state, "exitcode": step.exit_code, "partition": "", "nnodes": "1",
                      "nodelist": step.node, "elapsed": _hms(elapsed), "elapsedraw": str(int(elapsed)),
                      "start": _ts(step.start), "end": _ts(step.end), "submit": _ts(step.start),
                      "timelimit": "", "user": "", "reason": "", "workdir": "", "account": "",
                      "alloccpus": str(job.cpus_per_task), "ncpus": str(job.cpus_per_task)}
            return values.get(name, "")
        pending = job.state == "PENDING"
        state = job.state + (f" by {job.cancelled_by}" if job.state == "CANCELLED" and job.cancelled_by is not None
                             else "")
        exit_code = job.exit_code if job.state not in ("CANCELLED", "TIMEOUT") else "0:0"
        elapsed = job.elapsed(now)
        values = {
            "jobid": str(job.job_id), "jobidraw": str(job.job_id), "jobname": job.name, "state": state,
            "exitcode": exit_code, "derivedexitcode": "0:0", "reason": job.reason or "None",
            "partition": job.partition, "nnodes": str(job.num_nodes),
            "nodelist": "None assigned" if not job.nodes else job.nodelist,
            "elapsed": _hms(elapsed), "elapsedraw": str(int(elapsed)), "timelimit": _limit_hms(job.time_limit_s),
            "timelimitraw": "UNLIMITED" if job.time_limit_s is None else str(job.time_limit_s // 60),
            "submit": _ts(job.submit), "eligible": _ts(job.submit),
            "start": "Unknown" if pending or job.start is None else _ts(job.start), "end": _ts(job.end),
            "workdir": job.workdir, "user": job.user, "uid": str(job.uid), "group": job.user, "gid": str(job.uid),
            "account": "", "alloccpus": "0" if pending else str(job.cpus), "ncpus": str(job.cpus),
            "alloctres": "" if pending else job.tres(alloc=True), "reqtres": job.tres(alloc=False),
            "cluster": self.cluster_name, "qos": "normal", "comment": "", "priority": "1",
            "reqmem": _mem_text(job.mem_mb), "reqnodes": str(job.num_nodes), "constraints": job.features,
        }
        return values.get(name, "")

    # ---- scancel -----------------------------------------------------------------------------
    async def _scancel(self, args: list[str]) -> tuple[int, str, str]:
        opts, rest = getopt.gnu_getopt(args, "u:vfbs:n:p:t:", [
            "user=", "verbose", "full", "batch", "signal=", "name=", "partition=", "state=", "me", "quiet"])
        verbose = any(k in ("-v", "--verbose") for k, _ in opts)
        users = {v for k, v in opts if k in ("-u", "--user")} | ({self.user} if ("--me", "") in opts else set())
        targets: list[SimJob] = []
        err = ""
        for text in rest:
            job = self.job(text)
            if verbose:
                err += f"scancel: Terminating job {text}\n"
            if job is None or not self.visible(job):
                if verbose:
                    err += f"scancel: error: Kill job error on job id {text}: Invalid job id specified\n"
                continue
            if not job.is_active:
                if verbose:
                    err += (f"scancel: error: Kill job error on job id {text}: "
                            "Job/step already completing or completed\n")
                continue
            targets.append(job)
        if users and not rest:
            targets = [j for j in self.jobs.values() if j.user in users and j.is_active and not j.purged]
        for job in targets:
            await self._cancel(job)
        return 0, "", err  # scancel exits 0 even for unknown or finished jobs (captures 43, 50, 51)

    # ---- srun --------------------------------------------------------------------------------
    async def _srun(self, args: list[str]) -> tuple[int, str, str]:
        opts, command = getopt.getopt(args, "N:n:w:lo:e:J:t:c:u", [
            "jobid=", "overlap", "nodes=", "ntasks=", "ntasks-per-node=", "nodelist=", "label", "exact",
            "output=", "error=", "job-name=", "time=", "cpus-per-task=", "unbuffered", "gpus=", "gpus-per-node=",
            "mem=", "overcommit", "quiet"])
        job_text, label, count, nodelist = None, False, None, None
        for key, value in opts:
            if key == "--jobid":
                job_text = value
            elif key in ("-l", "--label"):
                label = True
            elif key in ("-N", "--nodes"):
                count = int(value) if value.isdigit() else None
            elif key in ("-w", "--nodelist"):
                nodelist = expand_hostlist(value)
        if not command:
            return 1, "", "srun: fatal: No command given to execute.\n"
        if job_text is None:
            return 1, "", "srun: error: Unable to allocate resources: the demo cluster runs only --jobid steps\n"
        job = self.job(job_text)
        expired = f"srun: Check SLURM_JOB_ID environment variable. Expired or invalid job {job_text}\n"
        if job is None or (job.purged and job.state not in ACTIVE):
            return 1, "", (f"srun: error: Unable to confirm allocation for job {job_text}: Invalid job id "
                           f"specified\n{expired}")
        if job.state == "PENDING":
            return 1, "", (f"srun: error: Unable to confirm allocation for job {job_text}: Job is pending "
                           f"execution\n{expired}")
        if job.state != "RUNNING":
            return 1, "", f"srun: error: Slurm job {job_text} has expired\n{expired}"
        targets = nodelist or job.nodes[:count or len(job.nodes)]
        if (count and count > len(job.nodes)) or any(n not in job.nodes for n in targets):
            return 1, "", (f"srun: error: Unable to create step for job {job_text}: Requested node configuration "
                           "is not available\n")
        job.next_step += 1
        program = command[0].rsplit("/", 1)[-1]
        out: list[str] = []
        err: list[str] = []
        rc = 0
        for task, node in enumerate(targets):
            prefix = f"{task}: " if label else ""
            if program == "hostname":
                lines, code = [node], 0
            elif program == "nvidia-smi":
                lines, code = self._nvidia_smi(job, node, command[1:])
            else:
                err.append(f"slurmstepd-{node}: error: execve(): {command[0]}: No such file or directory")
                lines, code = [], 2
            out += [prefix + line for line in lines]
            if code:
                err.append(f"srun: error: {node}: task {task}: Exited with exit code {code}")
                rc = max(rc, code)
        return rc, "".join(line + "\n" for line in out), "".join(line + "\n" for line in err)

    def _nvidia_smi(self, job: SimJob, node_name: str, args: list[str]) -> tuple[list[str], int]:
        node = self.nodes[node_name]
        query, fmt = None, ""
        for arg in args:
            if arg.startswith("--query-gpu="):
                query = [f.strip() for f in arg.split("=", 1)[1].split(",") if f.strip()]
            elif arg.startswith("--format="):
                fmt = arg.split("=", 1)[1]
        gpus = node.gpus if job.gpus_per_node else 0
        if not gpus:
            return ["No devices were found"], 6
        if query is None:
            return self._nvidia_smi_table(job, node), 0
        for name in query:
            if name not in _SMI_FIELDS:
                return [f'Field "{name}" is not a valid field to query.', ""], 2
        units = "nounits" not in fmt
        lines = []
        if "noheader" not in fmt:
            lines.append(", ".join(f"{n} [{_SMI_FIELDS[n]}]" if _SMI_FIELDS[n] and units else n for n in query))
        for index in range(gpus):
            values = self._gpu_values(job, node, index)
            cells = []
            for name in query:
                value = values[name]
                unit = _SMI_FIELDS[name]
                cells.append(f"{value} {unit}" if units and unit else str(value))
            lines.append(", ".join(cells))
        return lines, 0

    def _gpu_values(self, job: SimJob, node: SimNode, index: int) -> dict[str, Any]:
        pos = job.nodes.index(node.name) if node.name in job.nodes else 0
        rank = pos * node.gpus + index
        t = self.now() - (job.start or self.now())
        busy = False
        if job.server is not None:
            with contextlib.suppress(Exception):
                busy = job.server.engine.num_running > 0
        if job.gpu_model is not None and job.state == "RUNNING":
            s = job.gpu_model.sample(node.name, index, rank, t, busy)
        else:
            s = {"memory_used": 0, "utilization": 0, "power": 115.0, "temperature": 33}
        used = int(s["memory_used"])
        total = node.gpu_memory_mib
        return {
            "index": index, "name": node.gpu_name, "uuid": gpu_uuid(self.cluster_name, node.name, index),
            "pci.bus_id": f"00000000:{0x18 + index * 0x10:02X}:00.0", "memory.used": used, "memory.total": total,
            "memory.free": max(0, total - used - 615), "utilization.gpu": s["utilization"],
            "utilization.memory": min(100, int(s["utilization"] * 0.3)), "temperature.gpu": s["temperature"],
            "power.draw": f"{s['power']:.2f}", "power.limit": f"{node.gpu_power_limit_w:.2f}",
            "driver_version": "580.159.04", "count": node.gpus, "persistence_mode": "Enabled",
            "pstate": "P0", "serial": "1652024" + str(int(gpu_uuid(self.cluster_name, node.name, index)[4:12], 16)
                                                      % 10**6).zfill(6),
        }

    def _nvidia_smi_table(self, job: SimJob, node: SimNode) -> list[str]:
        bar = "+-----------------------------------------+------------------------+----------------------+"
        lines = [self.now_dt().strftime("%a %b %d %H:%M:%S %Y") + "       ",
                 "+-----------------------------------------------------------------------------------------+",
                 "| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |",
                 bar,
                 "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
                 "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
                 "|                                         |                        |               MIG M. |",
                 "|=========================================+========================+======================|"]
        for index in range(node.gpus):
            v = self._gpu_values(job, node, index)
            lines.append(f"| {index:>3}  {v['name']:<26}On  |   {v['pci.bus_id']} Off |                    0 |")
            usage = f"{v['memory.used']}MiB / {v['memory.total']}MiB"
            power = f"{float(v['power.draw']):.0f}W / {float(v['power.limit']):.0f}W"
            lines.append(f"| N/A   {v['temperature.gpu']:>2}C    P0 {power:>20} | {usage:>22} |"
                         f" {str(v['utilization.gpu']) + '%':>6}      Default |")
            lines.append("|                                         |                        |             Disabled |")
            lines.append(bar)
        return lines

    # ---- sinfo -------------------------------------------------------------------------------
    async def _sinfo(self, args: list[str]) -> tuple[int, str, str]:
        header = not any(a in ("-h", "--noheader") for a in args)
        busy = {n for j in self.jobs.values() if j.state == "RUNNING" for n in j.nodes}
        limit = _limit_squeue(self.max_time_s)
        groups = [("alloc", [n for n in self.nodes if n in busy]), ("idle", [n for n in self.nodes if n not in busy])]
        lines = ["PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"] if header else []
        for state, names in groups:
            if names:
                lines.append(f"{self.partition + '*':<9} {'up':>5} {limit:>10} {len(names):>6} {state:>6} "
                             f"{compress_hostlist(names)}")
        return 0, "".join(line + "\n" for line in lines), ""

    # ---- config ------------------------------------------------------------------------------
    def _slurm_conf_text(self) -> str:
        node = next(iter(self.nodes.values()))
        names = compress_hostlist(list(self.nodes))
        return "\n".join([
            "# The r1console demo's simulated cluster. No daemon reads this file: SimCluster answers the",
            "# SLURM commands itself (r1console/demo/sim_cluster.py).",
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=login01",
            "SelectType=select/cons_tres",
            "GresTypes=gpu",
            "EnforcePartLimits=ALL",
            f"MinJobAge={int(self.min_job_age_s)}",
            f"KillWait={KILL_WAIT_S}",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageTRES=gres/gpu",
            f"NodeName={names} CPUs={node.cpus} Sockets={node.sockets} CoresPerSocket={node.cpus // node.sockets} "
            f"ThreadsPerCore=1 RealMemory={node.memory_mb} Gres=gpu:{node.gpus} Features={','.join(node.features)} "
            "State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={names} Default=YES MaxTime={_limit_hms(self.max_time_s)} State=UP",
            "",
        ])


# ================================================================================================
# Helpers
# ================================================================================================
def _bound_socket() -> socket.socket:
    """A TCP port on 127.0.0.1 that is bound but never listens: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _duration(text: str) -> int | None:
    from r1console.core.slurm_parse import parse_duration

    return parse_duration(text)


def _plan(profile: Any, gpu_name: str) -> Any:
    """The planner's numbers for the profile on the cluster's GPU (None: no GPUs, or a model or GPU
    the planner does not know; GpuModel then falls back to fractions of the GPU)."""
    if profile is None or not profile.slurm.gpus_per_node:
        return None
    from r1console.core.planner import builtin_model_for, make_plan

    model = builtin_model_for(profile.model.path)
    if model is None:
        return None
    for gpu in [w.lower() for w in gpu_name.split() if w.upper() != "NVIDIA"] + [None]:
        try:
            return make_plan(profile, model, gpu=gpu)
        except Exception:  # R1Error: unknown GPU word; try the next one, then the profile's constraint
            continue
    return None


def _parse_sacct_time(text: str) -> float | None:
    text = text.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%m/%d/%y", "%m/%d"):
        try:
            when = _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt in ("%m/%d",):
            when = when.replace(year=_dt.date.today().year)
        return when.timestamp()
    if text.lower() == "now":
        return time.time()
    return None


_FROM_COMPACT = {v: k for k, v in COMPACT.items()}
_SQUEUE_HEADERS = {
    "i": "JOBID", "A": "JOBID", "j": "NAME", "T": "STATE", "t": "ST", "r": "REASON", "R": "NODELIST(REASON)",
    "B": "EXEC_HOST", "D": "NODES", "M": "TIME", "l": "TIME_LIMIT", "L": "TIME_LEFT", "S": "START_TIME",
    "e": "END_TIME", "V": "SUBMIT_TIME", "P": "PARTITION", "u": "USER", "N": "NODELIST", "Z": "WORK_DIR",
    "C": "CPUS", "o": "COMMAND", "a": "ACCOUNT", "q": "QOS", "b": "TRES_PER_NODE", "f": "FEATURES",
    "m": "MIN_MEMORY", "Q": "PRIORITY", "k": "COMMENT", "U": "UID", "g": "GROUP",
}
_SACCT_FIELDS = {n.lower(): n for n in (
    "JobID", "JobIDRaw", "JobName", "State", "ExitCode", "DerivedExitCode", "Reason", "Partition", "NNodes",
    "NodeList", "Elapsed", "ElapsedRaw", "Timelimit", "TimelimitRaw", "Submit", "Eligible", "Start", "End",
    "WorkDir", "User", "UID", "Group", "GID", "Account", "AllocCPUS", "NCPUS", "AllocTRES", "ReqTRES", "Cluster",
    "QOS", "Comment", "Priority", "ReqMem", "ReqNodes", "Constraints")}
_SACCT_WIDTH = {"jobid": 12, "jobidraw": 12, "exitcode": 8, "submit": 19, "start": 19, "end": 19, "eligible": 19,
                "nodelist": 15, "workdir": 20, "alloctres": 30, "reqtres": 30}
_SMI_FIELDS = {  # query field -> unit printed without "nounits"
    "index": "", "name": "", "uuid": "", "pci.bus_id": "", "memory.used": "MiB", "memory.total": "MiB",
    "memory.free": "MiB", "utilization.gpu": "%", "utilization.memory": "%", "temperature.gpu": "",
    "power.draw": "W", "power.limit": "W", "driver_version": "", "count": "", "persistence_mode": "",
    "pstate": "", "serial": "",
}


def _parse_format(fmt: str) -> list[tuple[str, str, bool, int | None]]:
    """squeue ``-o``: [(literal, code, right_justify, width)], the literal printed before the field."""
    import re

    spec: list[tuple[str, str, bool, int | None]] = []
    pos = 0
    literal = ""
    for m in re.finditer(r"%(%|(\.)?(\d+)?([A-Za-z]))", fmt):
        literal += fmt[pos:m.start()]
        pos = m.end()
        if m.group(1) == "%":
            literal += "%"
            continue
        if m.group(4) not in _SQUEUE_HEADERS and m.group(4) not in "xn":
            raise ValueError(m.group(0))
        spec.append((literal, m.group(4), bool(m.group(2)), int(m.group(3)) if m.group(3) else None))
        literal = ""
    spec.append((literal + fmt[pos:], "", False, None))
    return spec


def _render_format(spec: list[tuple[str, str, bool, int | None]], value) -> str:
    out = []
    for literal, code, right, width in spec:
        out.append(literal)
        if not code:
            continue
        text = value(code)
        if width is not None:
            text = text[:width]
            text = text.rjust(width) if right else text.ljust(width)
        out.append(text)
    return "".join(out)


__all__ = ["SimCluster", "SimJob", "SimNode"]
