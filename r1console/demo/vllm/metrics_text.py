"""The ``vllm:*`` part of ``/metrics`` in the Prometheus text format, for a vLLM version: the names, labels,
help texts and series each version exports (renames from :mod:`r1console.core.vllm_versions`), with the
simulated engine's counters, gauges and histograms as values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from r1console.core import vllm_versions as vv
from r1console.demo.vllm.engine import FINISH_REASONS, Histogram, SimEngine

if TYPE_CHECKING:
    from r1console.demo.vllm.versions import VersionProfile


def prom_float(d: float) -> str:
    """prometheus_client's floatToGoString: "8.0", "0.001", "1.7958682992432594e+09", "+Inf"."""
    d = float(d)
    if d == float("inf"):
        return "+Inf"
    if d == float("-inf"):
        return "-Inf"
    if d != d:
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


class _Prom:
    def __init__(self, base: dict[str, str], created: float) -> None:
        self.base = base
        self.created = prom_float(created)
        self.lines: list[str] = []

    def _family(self, name: str, help_: str, kind: str) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")

    def _created(self, name: str, help_: str, label_sets: list[dict[str, str]]) -> None:
        self._family(name + "_created", help_, "gauge")
        for extra in label_sets:
            self.lines.append(f"{name}_created{_labels({**self.base, **extra})} {self.created}")

    def gauge(self, name: str, help_: str, value: float | list[tuple[dict[str, str], float]]) -> None:
        self._family(name, help_, "gauge")
        series = value if isinstance(value, list) else [({}, value)]
        for extra, v in series:
            self.lines.append(f"{name}{_labels({**self.base, **extra})} {prom_float(v)}")

    def counter(self, name: str, help_: str, value: float | list[tuple[dict[str, str], float]],
                base: dict[str, str] | None = None) -> None:
        series = value if isinstance(value, list) else [({}, value)]
        saved = self.base
        if base is not None:
            self.base = base
        self._family(name + "_total", help_, "counter")
        for extra, v in series:
            self.lines.append(f"{name}_total{_labels({**self.base, **extra})} {prom_float(v)}")
        self._created(name, help_, [extra for extra, _ in series])
        self.base = saved

    def histogram(self, name: str, help_: str, h: Histogram) -> None:
        self._family(name, help_, "histogram")
        for bound, cum in zip((*h.bounds, float("inf")), h.cumulative()):
            self.lines.append(f"{name}_bucket{_labels({**self.base, 'le': prom_float(bound)})} {prom_float(cum)}")
        self.lines.append(f"{name}_count{_labels(self.base)} {prom_float(h.count)}")
        self.lines.append(f"{name}_sum{_labels(self.base)} {prom_float(h.sum)}")
        self._created(name, help_, [{}])


def render_metrics(p: VersionProfile, engine: SimEngine, model_name: str, created: float,
                   cache_info: dict[str, str] | None = None) -> str:
    """The ``vllm:*`` part of ``/metrics`` for version ``p`` (names, labels and help as vLLM's)."""
    base = {"model_name": model_name}
    if p.v1:
        base["engine"] = "0"
    out = _Prom(base, created)
    _gauges(out, p, engine)
    _counters(out, p, engine, model_name)
    _histograms(out, p, engine)
    info = {"block_size": str(engine.config.block_size), "cache_dtype": "auto",
            "enable_prefix_caching": "True" if p.v1 else "False",
            "gpu_memory_utilization": "0.9", "num_cpu_blocks": "None",
            "num_gpu_blocks": str(engine.config.num_blocks)}
    info.update(cache_info or {})
    out.gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", [(info, 1.0)])
    return "\n".join(out.lines) + "\n"


def _gauges(out: _Prom, p: VersionProfile, engine: SimEngine) -> None:
    """Requests, engine state and cache usage (and the estimated-FLOPs counters that lead them)."""
    v = p.v
    if p.modern:
        for what in ("flops", "read_bytes", "write_bytes"):
            noun = {"flops": "number of floating point operations",
                    "read_bytes": "number of bytes read from memory",
                    "write_bytes": "number of bytes written to memory"}[what]
            out.counter(f"vllm:estimated_{what}_per_gpu",
                        f"Estimated {noun} per GPU (for Model Flops Utilization calculations).", 0.0)
    out.gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
              engine.num_running)
    out.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", engine.num_waiting)
    if not p.v1:
        out.gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU.", 0)
    if p.modern:
        out.gauge("vllm:num_requests_waiting_by_reason",
                  "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling "
                  "capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, "
                  "blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
                  [({"reason": "capacity"}, engine.num_waiting), ({"reason": "deferred"}, 0)])
        out.gauge("vllm:engine_sleep_state",
                  "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
                  "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
                  [({"sleep_state": "awake"}, 1), ({"sleep_state": "weights_offloaded"}, 0),
                   ({"sleep_state": "discard_all"}, 0)])
    if v < vv.GPU_CACHE_USAGE_UNTIL:
        help_ = "GPU KV-cache usage. 1 means 100 percent usage."
        if v >= vv.KV_CACHE_USAGE_SINCE:
            help_ += f" DEPRECATED: Use {vv.KV_CACHE_USAGE} instead."
        out.gauge(vv.GPU_CACHE_USAGE, help_, engine.kv_usage)
    if not p.v1:
        out.gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", 0.0)
    if v >= vv.KV_CACHE_USAGE_SINCE:
        out.gauge(vv.KV_CACHE_USAGE, "KV-cache usage. 1 means 100 percent usage.", engine.kv_usage)
    if p.v1 and v < vv.GPU_PREFIX_CACHE_UNTIL:
        out.counter("vllm:gpu_prefix_cache_queries",
                    "GPU prefix cache queries, in terms of number of queried tokens.", 0.0)
        out.counter("vllm:gpu_prefix_cache_hits", "GPU prefix cache hits, in terms of number of cached tokens.", 0.0)
    if v >= vv.PREFIX_CACHE_RENAMED_SINCE:
        out.counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", 0.0)
        out.counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", 0.0)
    if p.modern:
        out.counter("vllm:external_prefix_cache_queries",
                    "External prefix cache queries from KV connector cross-instance cache sharing, in terms "
                    "of number of queried tokens.", 0.0)
        out.counter("vllm:external_prefix_cache_hits",
                    "External prefix cache hits from KV connector cross-instance cache sharing, in terms of "
                    "number of cached tokens.", 0.0)
        out.counter("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", 0.0)
        out.counter("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", 0.0)


def _counters(out: _Prom, p: VersionProfile, engine: SimEngine, model_name: str) -> None:
    """Preemptions, tokens, finished requests and admission counters."""
    m = engine.metrics
    out.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", m.num_preemptions)
    out.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", m.prompt_tokens)
    if p.modern:
        out.counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
                    [({"source": "local_compute"}, m.prompt_tokens), ({"source": "local_cache_hit"}, 0.0),
                     ({"source": "external_kv_transfer"}, 0.0)])
        out.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", 0.0)
        out.counter("vllm:prompt_tokens_cached_by_source",
                    "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host "
                    "(offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or "
                    "external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + "
                    "vllm:external_prefix_cache_hits.",
                    [({"source": s}, 0.0) for s in ("device", "host", "p2p", "disk", "external_unspecified")])
    out.counter("vllm:generation_tokens", "Number of generation tokens processed.", m.generation_tokens)
    reasons = FINISH_REASONS if p.modern else ("stop", "length", "abort")
    out.counter("vllm:request_success", "Count of successfully processed requests.",
                [({"finished_reason": r}, m.request_success.get(r, 0)) for r in reasons])
    if p.modern:
        out.counter("vllm:admission_rejections", "Number of admission attempts rejected by a queue limit, by reason.",
                    [({"reason": "max_num_queued_reqs"}, 0.0), ({"reason": "max_num_queued_tokens"}, 0.0)],
                    base={"model_name": model_name})


def _histograms(out: _Prom, p: VersionProfile, engine: SimEngine) -> None:
    """Request size and latency histograms."""
    v, h = p.v, engine.metrics.h
    out.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", h["request_prompt_tokens"])
    out.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.",
                  h["request_generation_tokens"])
    out.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                  h["iteration_tokens_total"])
    out.histogram("vllm:request_max_num_generation_tokens",
                  "Histogram of maximum number of requested generation tokens.",
                  h["request_max_num_generation_tokens"])
    out.histogram("vllm:request_params_n", "Histogram of the n request parameter.", h["request_params_n"])
    out.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                  h["request_params_max_tokens"])
    out.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                  h["time_to_first_token_seconds"])
    if v < vv.TIME_PER_OUTPUT_TOKEN_UNTIL:
        help_ = "Histogram of time per output token in seconds."
        if v >= vv.TIME_PER_OUTPUT_TOKEN_DEPRECATED_SINCE:
            help_ += f" DEPRECATED: Use {vv.INTER_TOKEN_LATENCY} instead."
        out.histogram(vv.TIME_PER_OUTPUT_TOKEN, help_, h["inter_token_latency_seconds"])
    if v >= vv.INTER_TOKEN_LATENCY_SINCE:
        out.histogram(vv.INTER_TOKEN_LATENCY, "Histogram of inter-token latency in seconds.",
                      h["inter_token_latency_seconds"])
    if v >= (0, 11, 0):
        out.histogram("vllm:request_time_per_output_token_seconds",
                      "Histogram of time_per_output_token_seconds per request.",
                      h["request_time_per_output_token_seconds"])
    out.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                  h["e2e_request_latency_seconds"])
    out.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                  h["request_queue_time_seconds"])
    out.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
                  h["request_inference_time_seconds"])
    out.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
                  h["request_prefill_time_seconds"])
    out.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
                  h["request_decode_time_seconds"])
    if p.modern:
        out.histogram("vllm:request_num_preemptions",
                      "Histogram of the number of times a request was preempted.", h["request_num_preemptions"])
        out.histogram("vllm:request_prefill_kv_computed_tokens",
                      "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                      h["request_prefill_kv_computed_tokens"])


__all__ = ["prom_float", "render_metrics"]
