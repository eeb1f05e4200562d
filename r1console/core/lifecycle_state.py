"""The stage machine's output types: :class:`Stage`, :class:`ErrorInfo`, :class:`LifecycleState`.

Kept apart from the machine (``core/lifecycle.py``, which re-exports them) so that screens and
commands that only show a state do not need the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from r1console.core.fmt import short_duration


class Stage(str, Enum):
    QUEUED = "queued"
    STARTING = "starting"
    LOADING = "loading"
    INITIALISING = "initialising"
    READY = "ready"
    ENDED = "ended"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Stage.ENDED, Stage.FAILED, Stage.CANCELLED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    line: str  # the cleaned log line (or a synthetic description for SLURM states)
    explanation: str
    what_to_try: str
    stream: str = ""
    lineno: int | None = None
    offset: int | None = None
    count: int = 1
    root_cause: bool = True
    context: str | None = None  # for generic kinds: the exception line just before

    def to_dict(self) -> dict:
        return {"kind": self.kind, "line": self.line, "explanation": self.explanation,
                "what_to_try": self.what_to_try, "file": self.stream, "lineno": self.lineno,
                "offset": self.offset, "count": self.count, "root_cause": self.root_cause,
                "context": self.context}


@dataclass(frozen=True)
class LifecycleState:
    stage: Stage
    detail: str = ""
    shards_loaded: int | None = None
    shards_total: int | None = None
    shard_rate: float | None = None  # shards per second, recent
    eta_s: float | None = None  # loading only
    server_url: str | None = None  # as logged (may be http://0.0.0.0:PORT)
    reachable_url: str | None = None  # 0.0.0.0 / [::] replaced by the head node
    vllm_version: str | None = None
    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    kv_cache_gib: float | None = None
    model_load_gib: float | None = None
    model_load_s: float | None = None
    weights_load_s: float | None = None
    init_engine_s: float | None = None
    graphs_s: float | None = None
    head_node: str | None = None
    head_ip: str | None = None
    port: int | None = None
    profile: str | None = None
    rendered_by: str | None = None
    ray_nodes: int | None = None
    ray_nodes_total: int | None = None
    ray_gpus: int | None = None
    ray_gpus_total: int | None = None
    slurm_state: str | None = None
    slurm_reason: str | None = None
    log_ready: bool = False  # the server-ready line was seen
    health_ok: bool | None = None
    probe_ok: bool | None = None
    errors: tuple[ErrorInfo, ...] = ()  # fatal; root causes first
    notices: tuple[ErrorInfo, ...] = ()  # notable, not fatal
    suppressed: tuple[ErrorInfo, ...] = ()  # teardown noise after a deliberate stop

    @property
    def primary_error(self) -> ErrorInfo | None:
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict:
        return {
            "stage": self.stage.value, "detail": self.detail,
            "shards_loaded": self.shards_loaded, "shards_total": self.shards_total,
            "shard_rate": self.shard_rate, "eta_s": self.eta_s,
            "server_url": self.server_url, "reachable_url": self.reachable_url,
            "vllm_version": self.vllm_version, "kv_cache_tokens": self.kv_cache_tokens,
            "max_concurrency": self.max_concurrency, "kv_cache_gib": self.kv_cache_gib,
            "model_load_gib": self.model_load_gib, "model_load_s": self.model_load_s,
            "weights_load_s": self.weights_load_s, "init_engine_s": self.init_engine_s,
            "graphs_s": self.graphs_s, "head_node": self.head_node, "head_ip": self.head_ip,
            "port": self.port, "profile": self.profile, "rendered_by": self.rendered_by,
            "ray_nodes": self.ray_nodes, "ray_nodes_total": self.ray_nodes_total,
            "ray_gpus": self.ray_gpus, "ray_gpus_total": self.ray_gpus_total,
            "slurm_state": self.slurm_state, "slurm_reason": self.slurm_reason,
            "log_ready": self.log_ready, "health_ok": self.health_ok, "probe_ok": self.probe_ok,
            "errors": [e.to_dict() for e in self.errors],
            "notices": [e.to_dict() for e in self.notices],
            "suppressed": [e.to_dict() for e in self.suppressed],
        }


format_duration = short_duration  # the one ETA/load-time format lives in core/fmt.py


__all__ = ["ErrorInfo", "LifecycleState", "Stage", "format_duration"]
