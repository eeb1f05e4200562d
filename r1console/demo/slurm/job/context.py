"""What a simulated job's timeline is made of and depends on: its entries (:class:`Entry`), its phases
(:class:`Phases`), its context (:class:`JobContext`), and the builder the timeline and fault writers share.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from typing import Any

from r1console.demo.slurm.job.script import JobScript

SITE = "/opt/conda/envs/vllm-inference/lib/python3.10/site-packages"


@dataclass(frozen=True)
class Entry:
    """One thing the job does at ``t`` simulated seconds after it started."""

    t: float
    stream: str = ""       # "out" / "err" for a line; "" for an action
    text: str = ""
    cr: bool = False       # a tqdm redraw: "\r" + text + "\n"
    action: str = ""       # "vllm_bind" (vLLM bound its port), "server_up", "exit"
    code: int = 0          # exit code of the batch script for "exit"

    def render(self) -> str:
        return ("\r" if self.cr else "") + self.text + "\n"


@dataclass
class Phases:
    """When things happen, in simulated seconds after the job started (None: never)."""

    vllm: float | None = None       # `vllm serve` starts
    cuda: float | None = None       # CUDA/NCCL initialised on every rank
    load0: float | None = None      # first shard bar
    load1: float | None = None      # last shard bar
    kv: float | None = None         # KV cache allocated
    ready: float | None = None      # API server up
    hang: float | None = None       # nccl fault: the stuck collective starts
    oom: float | None = None        # oom fault: the failing allocation
    end: float | None = None        # the batch script exits (fault)


@dataclass
class JobContext:
    """What the timeline of one job depends on."""

    job_id: int
    script: JobScript
    profile: Any                    # Profile or None
    nodes: list[str]
    ips: list[str]
    gpus_per_node: int
    start: _dt.datetime             # the job's StartTime (simulated clock, local time)
    load_seconds: float = 60.0
    fault: str | None = None
    nccl_timeout_s: float = 60.0
    api_pid: int = 4242
    kv_cache_tokens: int | None = None
    key_readable: bool = True
    oom_fraction: float = 0.6       # how far through the shards the OOM hits

    @property
    def head(self) -> str:
        return self.nodes[0]

    @property
    def head_ip(self) -> str:
        return self.ips[0]

    @property
    def ray_port(self) -> int:
        fixed = self.script.settings.get("R1C_RAY_HEAD_PORT", "")
        if fixed.isdigit():
            return int(fixed)
        return 15000 + int(hashlib.sha256(str(self.job_id).encode()).hexdigest()[:6], 16) % 5001

    @property
    def world(self) -> int:
        p = self.profile
        if p is None:
            return max(1, len(self.nodes) * self.gpus_per_node)
        return max(1, p.tensor_parallel_size * p.vllm.pipeline_parallel_size)


def _ray_ts(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S,") + f"{when.microsecond // 1000:03d}"


def _iso(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


class _Builder:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.entries: list[Entry] = []

    def at(self, t: float) -> _dt.datetime:
        return self.ctx.start + _dt.timedelta(seconds=t)

    def line(self, t: float, stream: str, text: str, cr: bool = False) -> None:
        self.entries.append(Entry(t, stream, text, cr))

    def out(self, t: float, text: str) -> None:
        self.line(t, "out", text)

    def err(self, t: float, text: str) -> None:
        self.line(t, "err", text)

    def action(self, t: float, name: str, code: int = 0) -> None:
        self.entries.append(Entry(t, action=name, code=code))

    def ray(self, t: float, level: str, where: str, msg: str, stream: str = "err") -> None:
        """Ray's logging format (non-tty): ``2026-12-03 13:15:50,183\\tINFO x.py:N -- msg``; the driver's
        (vLLM connecting) goes to stderr, ``ray start``'s CLI output to stdout (see _ray_start_block)."""
        self.line(t, stream, f"{_ray_ts(self.at(t))}\t{level} {where} -- {msg}")


def _worker_prefix(ctx: JobContext, rank: int) -> str:
    """Ray's prefix for the rank's worker, as sim_logs numbers them (head-node workers carry no ip)."""
    node = rank // max(1, ctx.gpus_per_node)
    pid = 927 + rank * 7
    return f"RayWorkerWrapper pid={pid}" + (f", ip={ctx.ips[node]}" if 0 < node < len(ctx.ips) else "")


def oom_rank(ctx: JobContext) -> int:
    """The rank that runs out of memory: a GPU on the last node (its Ray lines carry ``ip=``)."""
    world = ctx.world
    gpn = max(1, ctx.gpus_per_node)
    rank = (len(ctx.nodes) - 1) * gpn + min(2, gpn - 1)
    return min(rank, world - 1)
