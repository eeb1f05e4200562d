"""The simulated cluster's nodes, job steps and jobs (what squeue, scontrol and sacct report)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from dataclasses import dataclass, field
from typing import Any, TextIO

from r1console.core.slurm_filenames import expand_filename
from r1console.demo.sim_job import GpuModel, JobScript, Phases, compress_hostlist
from r1console.demo.slurm.common import ACTIVE, _mem_text


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
    comment: str = ""                      # sbatch --comment (r1console tags jobs r1c:<deployment id>)
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
                "time_limit_s", "features", "exclusive", "comment", "submit", "state", "reason", "start", "end",
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
