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
  lines' own timestamps) -- do not make the job failed; they are listed as ``suppressed``
  (the error ledger, ``core/lifecycle_errors.py``, decides which count).
* Precedence at the end: a fatal error -> ``failed``; else cancelled (scancel, SLURM
  CANCELLED) -> ``cancelled``; else shutdown / COMPLETED -> ``ended``.
* ETA while loading: remaining shards / the rate over the last ``eta_window`` progress updates
  (on tqdm's own elapsed clock, so it is right offline too); live, the time since the last
  update is subtracted.
"""

from __future__ import annotations

from r1console.core import logparse as lp
from r1console.core.lifecycle_errors import ErrorLedger, SlurmVerdict
from r1console.core.lifecycle_progress import ShardProgressTracker
from r1console.core.lifecycle_state import ErrorInfo, LifecycleState, Stage, format_duration
from r1console.core.slurm_states import SLURM_ENDED, SLURM_RUNNING, SLURM_STOPS, SLURM_WAITING, stage_state
from r1console.core.textnum import is_ascii_int

_MILESTONE_RANK = {Stage.QUEUED: 0, Stage.STARTING: 1, Stage.LOADING: 2, Stage.INITIALISING: 3,
                   Stage.READY: 4}


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
        self._progress = ShardProgressTracker(self.eta_window)
        self._ledger = ErrorLedger()  # fatals, notices, stops: which count is decided late
        self._log_ready = False
        self._server_url: str | None = None
        self._info: dict[str, object] = {}
        self._kv_blocks: tuple[int, float, int] | None = None
        # per stream: (seq, rank) each time that stream shows a further stage (streams are fed
        # one after another, so only one stream's order is the order things happened)
        self._rank_seq: dict[str, list[tuple[int, int]]] = {}
        self._stream = ""
        self._draft = False  # a draft (speculative decoding) model is loading: its bar is not the main one

    # ---- inputs --------------------------------------------------------------------------------
    def on_log_seen(self) -> None:
        """The job's log file exists (SLURM creates it when the job starts): at least starting."""
        self._log_seen = True

    def on_slurm_state(self, state: str, reason: str | None = None, now: float | None = None) -> None:
        """A SLURM job state (``RUNNING``, ``R``, ``CANCELLED by 1000``, …) and its reason."""
        self._slurm_state = stage_state(state)
        self._slurm_reason = reason or None

    def on_event(self, event: lp.Event, now: float | None = None) -> None:
        """One parser event; dispatched by its type (``_HANDLERS``), unknown types are ignored."""
        self._stream = event.stream
        self._seq += 1
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, now)

    # ---- one handler per event type ------------------------------------------------------------
    def _on_fatal(self, ev: lp.FatalError, now: float | None) -> None:
        marks = self._rank_seq.get(ev.stream)
        self._ledger.add_fatal(ev, self._seq, marks[-1][1] if marks else 0)
        if ev.kind in SLURM_STOPS:  # SLURM ended the job: what follows is teardown
            self._ledger.add_stop(ev.stream, self._seq, ev.ts, cancel=False)

    def _on_notice(self, ev: lp.Notice, now: float | None) -> None:
        self._ledger.add_notice(ev)

    def _on_ready(self, ev: lp.ServerReady, now: float | None) -> None:
        self._log_ready = True
        if ev.url:
            self._server_url = ev.url
        self._reach(Stage.READY, "")

    def _on_stop(self, ev: lp.Shutdown | lp.JobCancelled, now: float | None) -> None:
        self._ledger.add_stop(ev.stream, self._seq, ev.ts, cancel=isinstance(ev, lp.JobCancelled))

    def _on_version(self, ev: lp.VllmVersion, now: float | None) -> None:
        self._info.setdefault("vllm_version", ev.version)
        self._reach(Stage.STARTING, "vLLM starting")

    def _on_head(self, ev: lp.HeadNode, now: float | None) -> None:
        if ev.source == "r1console" or "head_node" not in self._info:
            self._info["head_node"] = ev.host
        self._reach(Stage.STARTING, f"job script running on {ev.host}")

    def _on_ray_waiting(self, ev: lp.RayWaiting, now: float | None) -> None:
        self._info.update(ray_nodes=ev.nodes, ray_nodes_total=ev.nodes_total, ray_gpus=ev.gpus,
                          ray_gpus_total=ev.gpus_total)
        gpus = f", {ev.gpus}/{ev.gpus_total} GPUs" if ev.gpus_total else ""
        self._reach(Stage.STARTING, f"waiting for Ray: {ev.nodes}/{ev.nodes_total} nodes{gpus}")

    def _on_ray_ready(self, ev: lp.RayReady, now: float | None) -> None:
        self._info.update(ray_nodes=ev.nodes, ray_nodes_total=ev.nodes, ray_gpus=ev.gpus, ray_gpus_total=ev.gpus)
        gpus = f", {ev.gpus} GPUs" if ev.gpus is not None else ""
        self._reach(Stage.STARTING, f"Ray ready ({ev.nodes} nodes{gpus}); starting vLLM")

    def _on_placement_wait(self, ev: lp.RayPlacementWait, now: float | None) -> None:
        self._ledger.placement_wait = (self._seq, ev)
        self._reach(Stage.STARTING, f"waiting {ev.seconds}s for Ray to place the GPU workers (check `ray status`)")

    def _on_weights(self, ev: lp.WeightsLoaded, now: float | None) -> None:
        self._info.setdefault("weights_load_s", ev.seconds)
        self._reach(Stage.INITIALISING, "weights loaded; profiling memory")

    def _on_model_loaded(self, ev: lp.ModelLoaded, now: float | None) -> None:
        self._info.setdefault("model_load_gib", ev.gib)
        self._info.setdefault("model_load_s", ev.seconds)
        self._reach(Stage.INITIALISING, f"model loaded ({ev.gib:g} GiB per GPU); profiling memory, sizing the KV cache")

    def _on_kv_memory(self, ev: lp.KvCacheMemory, now: float | None) -> None:
        self._info.setdefault("kv_cache_gib", ev.gib)
        self._reach(Stage.INITIALISING, f"KV cache memory {ev.gib:g} GiB")

    def _on_graphs(self, ev: lp.GraphsCaptured, now: float | None) -> None:
        self._info.setdefault("graphs_s", ev.seconds)
        self._reach(Stage.INITIALISING, "CUDA graphs captured")

    def _on_init_done(self, ev: lp.EngineInitDone, now: float | None) -> None:
        self._info.setdefault("init_engine_s", ev.seconds)
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
        rate = p.rate()
        eta = p.eta(rate, now) if stage is Stage.LOADING else None
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
            errors=tuple(errors), notices=tuple(self._ledger.notices.values()), suppressed=tuple(suppressed),
        )

    # ---- internals -----------------------------------------------------------------------------
    def _reach(self, stage: Stage, detail: str) -> None:
        rank = _MILESTONE_RANK[stage]
        marks = self._rank_seq.setdefault(self._stream, [])
        if not marks or rank > marks[-1][1]:
            marks.append((self._seq, rank))
        if rank >= _MILESTONE_RANK[self._milestone]:
            self._milestone = stage
        if detail:
            self._detail_by_stage[stage] = detail

    def _on_marker(self, ev: lp.ScriptMarker, now: float | None = None) -> None:
        info = self._info
        if ev.name in ("head_ip", "seed_head_ip"):
            info.setdefault("head_ip", ev.get("head_ip"))
        elif ev.name == "port":
            port = ev.get("port") or ""
            if is_ascii_int(port):
                info["port"] = int(port)
        elif ev.name == "rendered_by":
            info["rendered_by"] = ev.get("rendered_by")
            info["profile"] = ev.get("profile")
        if ev.name != "seed_head_port":
            self._reach(Stage.STARTING, "job script running")

    def _on_milestone(self, ev: lp.Milestone, now: float | None = None) -> None:
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
        elif name == "draft_load":
            self._draft = True
            self._reach(Stage.INITIALISING, "loading the draft model (speculative decoding)")
        elif name == "graphs":
            self._reach(Stage.INITIALISING, "capturing CUDA graphs" + (f" ({ev.detail})" if ev.detail else ""))
        else:
            self._reach(Stage.STARTING, "")

    def _on_kv(self, ev: lp.KvCache, now: float | None = None) -> None:
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
        if p.is_secondary(ev, draft=self._draft):
            # the main model is loaded; a later, smaller bar is a draft model's (or a second
            # copy): the main model's n/N stays what the user sees
            self._reach(Stage.INITIALISING, f"loading the draft model ({ev.n}/{ev.total} shards)")
            return
        if p.restarts(ev) and p.total and self._milestone is Stage.INITIALISING and ev.n < ev.total:
            self._milestone = Stage.LOADING  # a second, bigger load started
        if not p.update(ev, now):
            return  # a lagging copy of the bar from another rank
        if ev.n >= ev.total > 0:
            self._reach(Stage.INITIALISING, f"all {ev.total} shards loaded; post-processing weights")
        else:
            self._reach(Stage.LOADING, "")

    def _errors(self) -> tuple[list[ErrorInfo], list[ErrorInfo]]:
        ledger = self._ledger
        recovered = ledger.recovered(self._rank_seq, _MILESTONE_RANK[Stage.LOADING])
        past_starting = _MILESTONE_RANK[self._milestone] > _MILESTONE_RANK[Stage.STARTING]
        placement = ledger.placement_failure(past_starting, self._slurm_state)
        return ledger.errors(recovered, placement, SlurmVerdict(self._slurm_state, self._slurm_reason))

    def _stage(self, errors: list[ErrorInfo]) -> tuple[Stage, str]:
        state = self._slurm_state
        cancelled = state == "CANCELLED" or self._ledger.cancelled
        if errors:
            e = errors[0]
            return Stage.FAILED, f"{e.kind}: {e.explanation}"
        if cancelled:
            return Stage.CANCELLED, "cancelled (scancel)" if state != "CANCELLED" or not self._slurm_reason \
                else f"cancelled ({self._slurm_reason})"
        if state in SLURM_ENDED:
            return Stage.ENDED, "job completed" if state == "COMPLETED" else "job ending"
        if self._ledger.stops:
            return Stage.ENDED, "server shut down"
        if state in SLURM_WAITING:
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
            if state in SLURM_RUNNING or self._log_seen:
                return Stage.STARTING, "job running; nothing logged yet"
            return Stage.QUEUED, "no job output yet"
        return milestone, self._detail_by_stage.get(milestone, "")


_HANDLERS = {
    lp.ShardProgress: JobLifecycle._on_progress, lp.FatalError: JobLifecycle._on_fatal,
    lp.Notice: JobLifecycle._on_notice, lp.ServerReady: JobLifecycle._on_ready, lp.Shutdown: JobLifecycle._on_stop,
    lp.JobCancelled: JobLifecycle._on_stop, lp.VllmVersion: JobLifecycle._on_version, lp.HeadNode: JobLifecycle._on_head,
    lp.RayWaiting: JobLifecycle._on_ray_waiting, lp.RayReady: JobLifecycle._on_ray_ready,
    lp.RayPlacementWait: JobLifecycle._on_placement_wait, lp.ScriptMarker: JobLifecycle._on_marker,
    lp.Milestone: JobLifecycle._on_milestone, lp.WeightsLoaded: JobLifecycle._on_weights,
    lp.ModelLoaded: JobLifecycle._on_model_loaded, lp.KvCacheMemory: JobLifecycle._on_kv_memory,
    lp.KvCache: JobLifecycle._on_kv, lp.GraphsCaptured: JobLifecycle._on_graphs,
    lp.EngineInitDone: JobLifecycle._on_init_done,
}


def _reachable(url: str | None, head: object) -> str | None:
    if not url:
        return None
    if head:
        for wildcard in ("://0.0.0.0:", "://[::]:"):
            if wildcard in url:
                return url.replace(wildcard, f"://{head}:")
    return url


__all__ = ["ErrorInfo", "JobLifecycle", "LifecycleState", "Stage", "format_duration"]
