"""The typed events a :class:`~r1console.core.logparse.LogParser` yields (frozen dataclasses, all with
the :class:`Event` base fields), and the two time helpers they use."""

from __future__ import annotations

from dataclasses import dataclass

TEXT_MAX = 500  # characters of the cleaned line kept in Event.text


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    stream: str = ""  # the LogParser's stream name (e.g. the file name)
    lineno: int | None = None  # physical line, 1-based; None after LogParser.skip_to()
    offset: int = 0  # byte offset of the segment in the stream
    text: str = ""  # the cleaned message (ANSI, prefixes, level header removed), <= TEXT_MAX
    ts: float | None = None  # the line's own timestamp (see timestamp_key), if it has one
    origin: str = ""  # innermost process prefix, e.g. "RayWorkerWrapper pid=233, ip=10.0.0.2"
    repeat: int = 1  # Ray's "[repeated Nx across cluster]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardProgress(Event):
    """One tqdm redraw of the checkpoint-shard bar (any ``desc``)."""

    desc: str
    n: int
    total: int
    percent: int
    elapsed_s: float
    remaining_s: float | None  # tqdm's own estimate; None when it shows "?"
    rate_per_s: float | None  # shards per second from tqdm's rate ("6.90s/it", "2.1it/s")
    eager: bool = False  # 0.33 "(eager)" suffix


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightsLoaded(Event):
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoaded(Event):
    """``Model loading took X GiB [memory] and Y seconds`` (per rank)."""

    gib: float
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KvCacheMemory(Event):
    gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KvCache(Event):
    """KV cache capacity: V1 ``GPU KV cache size: N tokens`` and/or ``Maximum concurrency for M
    tokens per request: X.XXx`` (one line in 0.33, two before), or V0 ``# CUDA blocks: B``."""

    tokens: int | None = None
    max_concurrency: float | None = None
    tokens_per_request: int | None = None
    gpu_blocks: int | None = None
    cpu_blocks: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphsCaptured(Event):
    seconds: float
    gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineInitDone(Event):
    """``init engine (profile, create kv cache, warmup model) took X seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VllmVersion(Event):
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerReady(Event):
    """The API server is about to serve. ``wording``: ``api_server`` (0.7-0.8
    ``Starting vLLM API server on URL``), ``api_server_n`` (0.9-0.17 ``… server 0 on URL``),
    ``server`` (0.18+ ``Starting vLLM server on URL``) or ``uvicorn`` (``Application startup
    complete.``, no URL)."""

    url: str | None
    wording: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadNode(Event):
    host: str
    source: str  # "seed" ("Head node: X") or "r1console" ("[r1console] head_node=X")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptMarker(Event):
    """A ``[r1console] <name> key=value …`` line of our SLURM script (also ``seed_head_ip`` /
    ``seed_head_port`` for the seed's ``Head node IP:`` / ``Head port:`` lines)."""

    name: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.fields:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True, kw_only=True)
class RayWaiting(Event):
    """``[r1console] ray_waiting nodes=x/N gpus=y/M``."""

    nodes: int
    nodes_total: int
    gpus: int | None = None
    gpus_total: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RayReady(Event):
    """``[r1console] ray_ready nodes=N gpus=M``."""

    nodes: int
    gpus: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RayPlacementWait(Event):
    """vLLM: ``Waiting for creating a placement group of specs for N seconds``."""

    seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Milestone(Event):
    """A minor positive step. ``name``: ``engine_init``, ``load_start``, ``graphs``,
    ``ray_head_start``, ``ray_worker_start``, ``ray_connected``, ``vllm_starting``."""

    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Event):
    """A deliberate stop: vLLM's ``[shutdown] … signal=SIGTERM`` or uvicorn's ``Shutting down``."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled(Event):
    """``*** JOB N ON host CANCELLED AT time ***`` without a ``DUE TO`` (i.e. scancel)."""

    job_id: str
    host: str
    when: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FatalError(Event):
    """A known fatal signature (``core/fatal.py``) or ``[r1console] FATAL kind message``."""

    kind: str
    explanation: str
    what_to_try: str
    root_cause: bool = True
    consequence: bool = False
    detail: str | None = None
    context: str | None = None  # for generic kinds: the last exception line before it


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """A notable line that is not fatal (e.g. a job step exited non-zero)."""

    kind: str
    explanation: str
    what_to_try: str
    consequence: bool = False
    detail: str | None = None


def timestamp_key(month: int, day: int, hour: int, minute: int, second: int) -> float:
    """Seconds since an arbitrary start of year; orders vLLM's ``MM-DD HH:MM:SS`` against
    SLURM's ``YYYY-MM-DDTHH:MM:SS`` (both local time; the year is not logged by vLLM)."""
    return float((((month * 31 + day) * 24 + hour) * 60 + minute) * 60 + second)


def parse_duration(text: str) -> float | None:
    """tqdm's ``[H:]MM:SS`` -> seconds; None for ``?``."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)


__all__ = ["EngineInitDone", "Event", "FatalError", "GraphsCaptured", "HeadNode", "JobCancelled", "KvCache",
           "KvCacheMemory", "Milestone", "ModelLoaded", "Notice", "RayPlacementWait", "RayReady", "RayWaiting",
           "ScriptMarker", "ServerReady", "ShardProgress", "Shutdown", "TEXT_MAX", "VllmVersion", "WeightsLoaded",
           "parse_duration", "timestamp_key"]
