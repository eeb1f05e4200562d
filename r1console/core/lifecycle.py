"""The job's stage machine: SLURM state + log events + /health + a test completion -> stage.

    queued -> starting (Ray / engine) -> loading (x/N, ETA) -> initialising (KV cache, graphs)
           -> ready -> ended | failed | cancelled

Pure: no I/O and no clock; every method that needs the time takes ``now`` (seconds, any
monotonic origin). Typical use (the job screen / live follower)::

    lc = JobLifecycle(live=True)
    lc.on_slurm_state("RUNNING")
    for ev in parser.feed(chunk): lc.on_event(ev, now)
    lc.on_health(True, now); lc.on_probe(True, now)
    state = lc.snapshot(now)          # frozen LifecycleState

Rules:

* The stage comes from *positive milestones* (the furthest one seen). Nothing is ``failed``
  because a line contains "error": only a known fatal signature (``core/fatal.py``, already
  level-gated by the parser) or a SLURM end state such as TIMEOUT/FAILED/NODE_FAIL.
* Live (``live=True``) it is ``ready`` only while ``/health`` answers 200 *and* a tiny completion
  succeeded since (vLLM can pass /health and still die on its first request). Offline (logs
  only) ``ready`` means the server-ready line was seen.
* Errors that a teardown prints (engine dead, Ray actor died, NCCL; ``Signature.consequence``)
  after a deliberate stop -- vLLM's ``[shutdown] … signal=SIGTERM``, uvicorn's ``Shutting down``
  (same stream, later) or SLURM's ``CANCELLED AT`` (any stream, same second or later by the
  lines' own timestamps) -- do not make the job failed; they are listed as ``suppressed``.
* Precedence at the end: a fatal error -> ``failed``; else cancelled (scancel, SLURM
  CANCELLED) -> ``cancelled``; else shutdown / COMPLETED -> ``ended``.
* ETA while loading: remaining shards / the rate over the last ``eta_window`` progress updates
  (on tqdm's own elapsed clock, so it is right offline too); live, the time since the last
  update is subtracted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from r1console.core import logparse as lp
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


_MILESTONE_RANK = {Stage.QUEUED: 0, Stage.STARTING: 1, Stage.LOADING: 2, Stage.INITIALISING: 3,
                   Stage.READY: 4}

# SLURM job states (long names; compact codes are mapped first).
_COMPACT = {"PD": "PENDING", "R": "RUNNING", "CG": "COMPLETING", "CD": "COMPLETED",
            "CA": "CANCELLED", "F": "FAILED", "TO": "TIMEOUT", "NF": "NODE_FAIL",
            "OOM": "OUT_OF_MEMORY", "PR": "PREEMPTED", "BF": "BOOT_FAIL", "DL": "DEADLINE",
            "CF": "CONFIGURING", "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "S": "SUSPENDED",
            "ST": "STOPPED", "RS": "RESIZING", "SI": "SIGNALING", "SO": "STAGE_OUT",
            "SE": "SPECIAL_EXIT", "RD": "RESV_DEL_HOLD", "RF": "REQUEUE_FED", "RV": "REVOKED"}
_SLURM_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                  "RESV_DEL_HOLD", "SUSPENDED", "STOPPED", "RESIZING"}
_SLURM_RUNNING = {"RUNNING", "SIGNALING", "STAGE_OUT"}
_SLURM_ENDED = {"COMPLETING", "COMPLETED"}
# state -> (error kind, explanation, what to try)
_SLURM_FAILED = {
    "FAILED": ("slurm_failed", "The job exited with a non-zero code.",
               "Read the last lines of .err and .out (log-status lists the errors it knows)."),
    "TIMEOUT": ("slurm_time_limit", "SLURM stopped the job at its --time limit.",
                "Resubmit with a longer --time (the partition's MaxTime permitting)."),
    "NODE_FAIL": ("slurm_node_failure", "A node of the allocation failed.",
                  "Resubmit, excluding the failed node (--exclude), and tell the admins."),
    "OUT_OF_MEMORY": ("oom_kill", "A job step ran out of host memory (SLURM OUT_OF_MEMORY).",
                      "Request more --mem (or --mem=0 with --exclusive)."),
    "PREEMPTED": ("slurm_preempted", "A higher-priority job preempted this one.",
                  "Resubmit, ideally to a partition or QOS without preemption."),
    "BOOT_FAIL": ("slurm_boot_fail", "A node failed to boot for the job.",
                  "Resubmit; tell the admins if it repeats."),
    "DEADLINE": ("slurm_deadline", "The job reached its --deadline.",
                 "Resubmit with a later --deadline or none."),
    "SPECIAL_EXIT": ("slurm_failed", "The job ended in SPECIAL_EXIT.",
                     "Read the end of .err/.out; resubmit."),
    "REVOKED": ("slurm_revoked", "The job was revoked (federation).", "Resubmit."),
}


# Fatal kinds that are SLURM stopping the job (the teardown errors after them are consequences).
_SLURM_STOPS = frozenset({"slurm_time_limit", "slurm_preempted", "slurm_node_failure",
                          "slurm_task_failure", "slurm_signal"})


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


@dataclass
class _Stop:
    stream: str
    seq: int
    ts: float | None
    cancel: bool


@dataclass
class _Fatal:
    event: lp.FatalError
    seq: int


@dataclass
class _Progress:
    total: int = 0
    n: int = 0
    desc: str = ""
    samples: deque = field(default_factory=deque)  # (tqdm elapsed_s, n)
    tqdm_rate: float | None = None
    tqdm_remaining: float | None = None
    seen_at: float | None = None  # caller's clock at the last accepted update


format_duration = short_duration  # the one ETA/load-time format lives in core/fmt.py


def _block_size(gpu_blocks: int, concurrency: float, tokens_per_request: int) -> int | None:
    """V0 logs blocks and concurrency = blocks*block_size/max_len; recover the block size."""
    if gpu_blocks <= 0 or concurrency <= 0:
        return None
    estimate = concurrency * tokens_per_request / gpu_blocks
    return min((1, 8, 16, 32, 64, 128, 256), key=lambda b: abs(b - estimate))


class JobLifecycle:
    """Stage machine for one job. See the module docstring."""

    def __init__(self, *, live: bool = False, eta_window: int = 10) -> None:
        self.live = live
        self.eta_window = max(2, eta_window)
        self._seq = 0
        self._milestone = Stage.QUEUED
        self._detail_by_stage: dict[Stage, str] = {}
        self._log_seen = False
        self._slurm_state: str | None = None
        self._slurm_reason: str | None = None
        self._health: bool | None = None
        self._probe: bool | None = None
        self._was_ready = False
        self._progress = _Progress()
        self._fatal_list: list[_Fatal] = []  # every occurrence (suppression is decided late)
        self._notices: dict[str, ErrorInfo] = {}
        self._stops: list[_Stop] = []
        self._log_ready = False
        self._server_url: str | None = None
        self._info: dict[str, object] = {}
        self._kv_blocks: tuple[int, float, int] | None = None

    # ---- inputs --------------------------------------------------------------------------------
    def on_log_seen(self) -> None:
        """The job's log file exists (SLURM creates it when the job starts): at least starting."""
        self._log_seen = True

    def on_slurm_state(self, state: str, reason: str | None = None, now: float | None = None) -> None:
        """A SLURM job state (``RUNNING``, ``R``, ``CANCELLED by 1000``, …) and its reason."""
        word = (state or "").strip().split()[0].upper() if (state or "").strip() else ""
        word = word.rstrip("+")
        self._slurm_state = _COMPACT.get(word, word) or None
        self._slurm_reason = reason or None

    def on_event(self, event: lp.Event, now: float | None = None) -> None:
        self._seq += 1
        seq = self._seq
        info = self._info
        if isinstance(event, lp.ShardProgress):
            self._on_progress(event, now)
        elif isinstance(event, lp.FatalError):
            self._fatal_list.append(_Fatal(event, seq))
            if event.kind in _SLURM_STOPS:  # SLURM ended the job: what follows is teardown
                self._stops.append(_Stop(event.stream, seq, event.ts, cancel=False))
        elif isinstance(event, lp.Notice):
            old = self._notices.get(event.kind)
            if old is None:
                self._notices[event.kind] = _error_info(event)
            else:
                self._notices[event.kind] = _replace_count(old, old.count + event.repeat)
        elif isinstance(event, lp.ServerReady):
            self._log_ready = True
            if event.url:
                self._server_url = event.url
            self._reach(Stage.READY, "")
        elif isinstance(event, lp.Shutdown):
            self._stops.append(_Stop(event.stream, seq, event.ts, cancel=False))
        elif isinstance(event, lp.JobCancelled):
            self._stops.append(_Stop(event.stream, seq, event.ts, cancel=True))
        elif isinstance(event, lp.VllmVersion):
            info.setdefault("vllm_version", event.version)
            self._reach(Stage.STARTING, "vLLM starting")
        elif isinstance(event, lp.HeadNode):
            if event.source == "r1console" or "head_node" not in info:
                info["head_node"] = event.host
            self._reach(Stage.STARTING, f"job script running on {event.host}")
        elif isinstance(event, lp.RayWaiting):
            info.update(ray_nodes=event.nodes, ray_nodes_total=event.nodes_total,
                        ray_gpus=event.gpus, ray_gpus_total=event.gpus_total)
            gpus = f", {event.gpus}/{event.gpus_total} GPUs" if event.gpus_total else ""
            self._reach(Stage.STARTING, f"waiting for Ray: {event.nodes}/{event.nodes_total} nodes{gpus}")
        elif isinstance(event, lp.RayReady):
            info.update(ray_nodes=event.nodes, ray_nodes_total=event.nodes, ray_gpus=event.gpus,
                        ray_gpus_total=event.gpus)
            gpus = f", {event.gpus} GPUs" if event.gpus is not None else ""
            self._reach(Stage.STARTING, f"Ray ready ({event.nodes} nodes{gpus}); starting vLLM")
        elif isinstance(event, lp.RayPlacementWait):
            self._reach(Stage.STARTING, f"waiting {event.seconds}s for Ray to place the GPU workers "
                                        "(check `ray status`)")
        elif isinstance(event, lp.ScriptMarker):
            self._on_marker(event)
        elif isinstance(event, lp.Milestone):
            self._on_milestone(event)
        elif isinstance(event, lp.WeightsLoaded):
            info.setdefault("weights_load_s", event.seconds)
            self._reach(Stage.INITIALISING, "weights loaded; profiling memory")
        elif isinstance(event, lp.ModelLoaded):
            info.setdefault("model_load_gib", event.gib)
            info.setdefault("model_load_s", event.seconds)
            self._reach(Stage.INITIALISING, f"model loaded ({event.gib:g} GiB per GPU); "
                                            "profiling memory, sizing the KV cache")
        elif isinstance(event, lp.KvCacheMemory):
            info.setdefault("kv_cache_gib", event.gib)
            self._reach(Stage.INITIALISING, f"KV cache memory {event.gib:g} GiB")
        elif isinstance(event, lp.KvCache):
            self._on_kv(event)
        elif isinstance(event, lp.GraphsCaptured):
            info.setdefault("graphs_s", event.seconds)
            self._reach(Stage.INITIALISING, "CUDA graphs captured")
        elif isinstance(event, lp.EngineInitDone):
            info.setdefault("init_engine_s", event.seconds)
            self._reach(Stage.INITIALISING, "engine initialised; starting the API server")

    def on_events(self, events, now: float | None = None) -> None:
        for event in events:
            self.on_event(event, now)

    def on_health(self, ok: bool, now: float | None = None) -> None:
        """``GET /health`` answered 200 (True) or not (False: refused, timeout, 5xx). When it
        fails, the last test completion no longer counts: ready needs a new one."""
        self._health = bool(ok)
        if not ok:
            self._probe = None

    def on_probe(self, ok: bool, now: float | None = None) -> None:
        """A tiny completion succeeded (True) or failed (False)."""
        self._probe = bool(ok)
        if ok and self._health:
            self._was_ready = True

    # ---- output --------------------------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> LifecycleState:
        errors, suppressed = self._errors()
        stage, detail = self._stage(errors)
        p = self._progress
        rate = self._rate()
        eta = self._eta(rate, now) if stage is Stage.LOADING else None
        if stage is Stage.LOADING and p.total:
            detail = f"{p.n}/{p.total} shards" + (f", ETA {format_duration(eta)}" if eta is not None else "")
        info = self._info
        head = info.get("head_node")
        return LifecycleState(
            stage=stage, detail=detail,
            shards_loaded=p.n if p.total else None, shards_total=p.total or None,
            shard_rate=rate, eta_s=eta,
            server_url=self._server_url, reachable_url=_reachable(self._server_url, head),
            vllm_version=info.get("vllm_version"), kv_cache_tokens=info.get("kv_cache_tokens"),
            max_concurrency=info.get("max_concurrency"), kv_cache_gib=info.get("kv_cache_gib"),
            model_load_gib=info.get("model_load_gib"), model_load_s=info.get("model_load_s"),
            weights_load_s=info.get("weights_load_s"), init_engine_s=info.get("init_engine_s"),
            graphs_s=info.get("graphs_s"), head_node=head, head_ip=info.get("head_ip"),
            port=info.get("port"), profile=info.get("profile"), rendered_by=info.get("rendered_by"),
            ray_nodes=info.get("ray_nodes"), ray_nodes_total=info.get("ray_nodes_total"),
            ray_gpus=info.get("ray_gpus"), ray_gpus_total=info.get("ray_gpus_total"),
            slurm_state=self._slurm_state, slurm_reason=self._slurm_reason,
            log_ready=self._log_ready, health_ok=self._health, probe_ok=self._probe,
            errors=tuple(errors), notices=tuple(self._notices.values()), suppressed=tuple(suppressed),
        )

    # ---- internals -----------------------------------------------------------------------------
    def _reach(self, stage: Stage, detail: str) -> None:
        if _MILESTONE_RANK[stage] >= _MILESTONE_RANK[self._milestone]:
            self._milestone = stage
        if detail:
            self._detail_by_stage[stage] = detail

    def _on_marker(self, ev: lp.ScriptMarker) -> None:
        info = self._info
        if ev.name in ("head_ip", "seed_head_ip"):
            info.setdefault("head_ip", ev.get("head_ip"))
        elif ev.name == "port":
            port = ev.get("port") or ""
            if port.isdigit():
                info["port"] = int(port)
        elif ev.name == "rendered_by":
            info["rendered_by"] = ev.get("rendered_by")
            info["profile"] = ev.get("profile")
        if ev.name != "seed_head_port":
            self._reach(Stage.STARTING, "job script running")

    def _on_milestone(self, ev: lp.Milestone) -> None:
        name = ev.name
        if name == "ray_head_start":
            self._reach(Stage.STARTING, f"starting the Ray head on {ev.detail}")
        elif name == "ray_worker_start":
            self._reach(Stage.STARTING, f"starting a Ray worker on {ev.detail}")
        elif name == "ray_connected":
            self._reach(Stage.STARTING, "vLLM connected to the Ray cluster")
        elif name == "vllm_starting":
            self._reach(Stage.STARTING, "vLLM starting")
        elif name == "engine_init":
            self._reach(Stage.STARTING, "vLLM engine starting")
        elif name == "load_start":
            self._reach(Stage.LOADING, "loading the model")
        elif name == "graphs":
            self._reach(Stage.INITIALISING, "capturing CUDA graphs" + (f" ({ev.detail})" if ev.detail else ""))
        else:
            self._reach(Stage.STARTING, "")

    def _on_kv(self, ev: lp.KvCache) -> None:
        info = self._info
        if ev.tokens is not None:
            old = info.get("kv_cache_tokens")
            info["kv_cache_tokens"] = ev.tokens if old is None else min(old, ev.tokens)
            info["kv_tokens_exact"] = True
        if ev.max_concurrency is not None:
            old = info.get("max_concurrency")
            info["max_concurrency"] = ev.max_concurrency if old is None else min(old, ev.max_concurrency)
            info.setdefault("kv_tokens_per_request", ev.tokens_per_request)
        if ev.gpu_blocks is not None:
            info["kv_gpu_blocks"] = ev.gpu_blocks
        blocks = info.get("kv_gpu_blocks")
        conc = info.get("max_concurrency")
        tpr = info.get("kv_tokens_per_request")
        if not info.get("kv_tokens_exact") and blocks and conc and tpr:
            size = _block_size(blocks, conc, tpr)
            if size:
                info["kv_cache_tokens"] = blocks * size
        tokens = info.get("kv_cache_tokens")
        self._reach(Stage.INITIALISING, f"KV cache: {tokens:,} tokens" if tokens else "KV cache sized")

    def _on_progress(self, ev: lp.ShardProgress, now: float | None) -> None:
        p = self._progress
        restart = ev.total != p.total or (ev.n < p.n and p.n >= p.total)
        if restart:
            if p.total and self._milestone is Stage.INITIALISING and ev.n < ev.total:
                self._milestone = Stage.LOADING  # a second load (e.g. a draft model) started
            p.total, p.n, p.desc = ev.total, ev.n, ev.desc
            p.samples = deque(maxlen=self.eta_window)
        elif ev.n < p.n:
            return  # a lagging copy of the bar from another rank
        p.n = ev.n
        p.tqdm_rate = ev.rate_per_s
        p.tqdm_remaining = ev.remaining_s
        p.seen_at = now
        if p.samples and p.samples[-1][1] == ev.n:
            p.samples[-1] = (ev.elapsed_s, ev.n) if ev.elapsed_s < p.samples[-1][0] else p.samples[-1]
        else:
            p.samples.append((ev.elapsed_s, ev.n))
        if ev.n >= ev.total > 0:
            self._reach(Stage.INITIALISING, f"all {ev.total} shards loaded; post-processing weights")
        else:
            self._reach(Stage.LOADING, "")

    def _rate(self) -> float | None:
        p = self._progress
        if len(p.samples) >= 2:
            (t0, n0), (t1, n1) = p.samples[0], p.samples[-1]
            if t1 > t0 and n1 > n0:
                return (n1 - n0) / (t1 - t0)
        return p.tqdm_rate

    def _eta(self, rate: float | None, now: float | None) -> float | None:
        p = self._progress
        if not p.total:
            return None
        left = p.total - p.n
        if left <= 0:
            return 0.0
        if rate and rate > 0:
            eta = left / rate
        elif p.tqdm_remaining is not None:
            eta = p.tqdm_remaining
        else:
            return None
        if now is not None and p.seen_at is not None and now > p.seen_at:
            eta = max(0.0, eta - (now - p.seen_at))
        return eta

    def _suppressed(self, f: _Fatal) -> bool:
        ev = f.event
        if not ev.consequence:
            return False
        for stop in self._stops:
            if stop.stream == ev.stream and stop.seq < f.seq:
                return True
            if stop.stream != ev.stream and stop.ts is not None and ev.ts is not None and ev.ts >= stop.ts:
                return True
        return False

    def _errors(self) -> tuple[list[ErrorInfo], list[ErrorInfo]]:
        errors: dict[str, ErrorInfo] = {}
        suppressed: dict[str, ErrorInfo] = {}
        for f in self._fatal_list:
            target = suppressed if self._suppressed(f) else errors
            kind = f.event.kind
            if kind in target:
                target[kind] = _replace_count(target[kind], target[kind].count + f.event.repeat)
            else:
                target[kind] = _error_info(f.event)
        state = self._slurm_state
        if state in _SLURM_FAILED:
            kind, explanation, what = _SLURM_FAILED[state]
            if kind not in errors and not (state == "FAILED" and errors):
                reason = f" (reason: {self._slurm_reason})" if self._slurm_reason else ""
                errors[kind] = ErrorInfo(kind=kind, line=f"SLURM job state {state}{reason}",
                                         explanation=explanation, what_to_try=what, stream="slurm")
        ordered = sorted(errors.values(), key=lambda e: not e.root_cause)
        return ordered, list(suppressed.values())

    def _stage(self, errors: list[ErrorInfo]) -> tuple[Stage, str]:
        state = self._slurm_state
        cancelled = state == "CANCELLED" or any(s.cancel for s in self._stops)
        if errors:
            e = errors[0]
            return Stage.FAILED, f"{e.kind}: {e.explanation}"
        if cancelled:
            return Stage.CANCELLED, "cancelled (scancel)" if state != "CANCELLED" or not self._slurm_reason \
                else f"cancelled ({self._slurm_reason})"
        if state in _SLURM_ENDED:
            return Stage.ENDED, "job completed" if state == "COMPLETED" else "job ending"
        if self._stops:
            return Stage.ENDED, "server shut down"
        if state in _SLURM_WAITING:
            return Stage.QUEUED, state.lower() + (f" ({self._slurm_reason})" if self._slurm_reason else "")
        milestone = self._milestone
        if self.live:
            if self._health and self._probe:
                url = self._server_url or ""
                return Stage.READY, f"serving {url}".strip()
            if milestone is Stage.READY:
                milestone = Stage.INITIALISING
                if self._was_ready and self._health is False:
                    detail = "was ready; /health is failing now"
                elif self._health and self._probe is False:
                    detail = "/health answers but a test completion failed"
                elif self._health:
                    detail = "/health answers; waiting for a test completion"
                else:
                    detail = "server started; waiting for /health"
                return milestone, detail
        elif milestone is Stage.READY:
            return Stage.READY, f"server ready at {self._server_url}" if self._server_url else "server ready"
        if milestone is Stage.QUEUED:
            if state in _SLURM_RUNNING or self._log_seen:
                return Stage.STARTING, "job running; nothing logged yet"
            return Stage.QUEUED, "no job output yet"
        return milestone, self._detail_by_stage.get(milestone, "")


def _error_info(ev) -> ErrorInfo:
    return ErrorInfo(kind=ev.kind, line=ev.text, explanation=ev.explanation, what_to_try=ev.what_to_try,
                     stream=ev.stream, lineno=ev.lineno, offset=ev.offset, count=ev.repeat,
                     root_cause=getattr(ev, "root_cause", True), context=getattr(ev, "context", None))


def _replace_count(info: ErrorInfo, count: int) -> ErrorInfo:
    from dataclasses import replace

    return replace(info, count=count)


def _reachable(url: str | None, head: object) -> str | None:
    if not url:
        return None
    if head:
        for wildcard in ("://0.0.0.0:", "://[::]:"):
            if wildcard in url:
                return url.replace(wildcard, f"://{head}:")
    return url
