"""The SSE ``data:`` payloads of streamed chat and text completions, as JSON text in a vLLM version's shape
(built from string pieces: one chunk per token is the hot path of the simulated server)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from r1console.demo.vllm.versions import VersionProfile


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


__all__ = ["ChatStream", "CompletionStream"]
