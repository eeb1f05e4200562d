"""One chat completion, streamed or not: reasoning apart from the answer, usage, timings.

Feed :class:`StreamAccumulator` the parsed JSON of each SSE chunk (``chat.completion.chunk``) with
the time it arrived; it keeps what the console and the batch runner need:

* **reasoning vs answer.** The reasoning field changed name across vLLM versions (the versions
  are in :mod:`r1console.core.vllm_versions`). Like vLLM's own CLI we read
  ``reasoning or reasoning_content`` — never both, so nothing is doubled. ``content`` may be
  null or absent in any chunk (a reasoning-only chunk does not end the stream — elia's bug),
  and the answer as a whole is None when the reply ended while still reasoning.
* **timings**, in seconds since the request was sent, with the definitions of
  ``vllm bench serve`` (docs/facts.md §2.9): TTFT = the first chunk carrying a token, reasoning or
  answer (vLLM's leading ``{"role":"assistant","content":""}`` chunk carries none); TTFOT =
  the first chunk carrying an *answer* token (what a user waits for with R1); ITL = the gaps
  between consecutive token-carrying chunks (a chunk with several tokens counts once); E2E =
  the end of the stream.
* ``finish_reason`` (``stop``, ``length``, …), ``usage`` (sent in a last chunk with
  ``"choices": []`` when the request asks ``stream_options.include_usage``), whether
  ``[DONE]`` arrived, and server errors sent inside the stream (``{"error": {...}}``).

:func:`result_from_response` reads a non-streamed ``chat.completion`` into the same
:class:`ChatResult`.

Pure: the caller supplies every timestamp, so tests and the batch runner control the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from r1console.core.vllm_versions import REASONING, REASONING_CONTENT


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def reasoning_of(obj: Mapping[str, Any]) -> str:
    """The reasoning text of a delta or message: ``reasoning``, else ``reasoning_content``."""
    return _text(obj.get(REASONING)) or _text(obj.get(REASONING_CONTENT))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage | None:
        if not isinstance(data, Mapping):
            return None
        details = data.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, Mapping) else None

        def num(v: Any) -> int | None:
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        return cls(num(data.get("prompt_tokens")), num(data.get("completion_tokens")),
                   num(data.get("total_tokens")), num(reasoning))

    def to_dict(self) -> dict[str, int | None]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "reasoning_tokens": self.reasoning_tokens}


@dataclass(frozen=True)
class StreamDelta:
    """What one chunk added. ``t`` is seconds since the request was sent."""

    reasoning: str = ""
    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    t: float = 0.0

    @property
    def has_token(self) -> bool:
        return bool(self.reasoning or self.content)


@dataclass(frozen=True)
class StreamError:
    """An error object the server sent inside a 200 stream (``data: {"error": {...}}``)."""

    message: str
    type: str | None = None
    code: int | None = None


@dataclass(frozen=True)
class ChatResult:
    """A finished (or cut) reply. ``content``/``reasoning`` are None when none arrived.

    ``complete`` is True when the server said why it stopped (a ``finish_reason``); ``done`` when
    the ``[DONE]`` sentinel arrived. Timings are seconds since the request was sent; ``itl_s``
    holds every inter-token gap.
    """

    reasoning: str | None
    content: str | None
    finish_reason: str | None
    usage: Usage | None
    ttft_s: float | None
    ttfot_s: float | None
    e2e_s: float | None
    itl_s: tuple[float, ...] = ()
    chunks: int = 0
    complete: bool = False
    done: bool = False
    model: str | None = None
    id: str | None = None

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: ``(e2e − ttft) / (completion_tokens − 1)``."""
        n = self.usage.completion_tokens if self.usage else None
        if n is None or n < 2 or self.e2e_s is None or self.ttft_s is None:
            return None
        return (self.e2e_s - self.ttft_s) / (n - 1)

    def to_json(self) -> dict[str, Any]:
        """The ``r1console chat --json`` document."""
        return {
            "reasoning": self.reasoning,
            "content": self.content,
            "usage": self.usage.to_dict() if self.usage else None,
            "finish_reason": self.finish_reason,
            "ttft_s": _round(self.ttft_s),
            "ttfot_s": _round(self.ttfot_s),
            "e2e_s": _round(self.e2e_s),
            "model": self.model,
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


@dataclass
class StreamAccumulator:
    """Collects one streamed reply. Call :meth:`feed` per chunk, :meth:`mark_done` on
    ``[DONE]``, :meth:`end` when the connection ends; read :meth:`result` any time.

    All ``t`` values are seconds since the request was sent (the caller's clock).
    """

    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    first_token_t: float | None = None
    first_content_t: float | None = None
    last_token_t: float | None = None
    end_t: float | None = None
    itl: list[float] = field(default_factory=list)
    chunks: int = 0
    done: bool = False
    error: StreamError | None = None
    model: str | None = None
    id: str | None = None

    # -- feeding -----------------------------------------------------------------------------

    def feed(self, chunk: Mapping[str, Any], t: float) -> StreamDelta:
        """Take one parsed chunk received at ``t``. Only choice index 0 is read (n=1)."""
        self.chunks += 1
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if self.id is None and isinstance(chunk.get("id"), str):
            self.id = chunk["id"]
        err = chunk.get("error")
        if err is not None:
            self.error = _stream_error(err)
            return StreamDelta(t=t)
        usage = Usage.from_dict(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        reasoning = content = ""
        finish = None
        choices = chunk.get("choices")
        if isinstance(choices, list):
            choice = next((c for c in choices if isinstance(c, Mapping) and c.get("index", 0) == 0), None)
            if choice is not None:
                raw_delta, raw_message = choice.get("delta"), choice.get("message")
                delta: Mapping[str, Any] = (raw_delta if isinstance(raw_delta, Mapping)
                                            else raw_message if isinstance(raw_message, Mapping) else {})
                reasoning = reasoning_of(delta)
                content = _text(delta.get("content"))
                if isinstance(choice.get("text"), str):  # /v1/completions chunks
                    content += choice["text"]
                finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
        if reasoning:
            self.reasoning_parts.append(reasoning)
        if content:
            self.content_parts.append(content)
            if self.first_content_t is None:
                self.first_content_t = t
        if reasoning or content:
            if self.first_token_t is None:
                self.first_token_t = t
            elif self.last_token_t is not None:
                self.itl.append(t - self.last_token_t)
            self.last_token_t = t
        if finish:
            self.finish_reason = finish
        return StreamDelta(reasoning=reasoning, content=content, finish_reason=finish, usage=usage, t=t)

    def mark_done(self, t: float) -> None:
        """The ``[DONE]`` sentinel arrived."""
        self.done = True
        self.end(t)

    def end(self, t: float) -> None:
        """The stream ended (or was abandoned) at ``t``; the first call wins."""
        if self.end_t is None:
            self.end_t = t

    # -- reading ----------------------------------------------------------------------------

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    @property
    def complete(self) -> bool:
        """The server said why it stopped (``finish_reason``)."""
        return self.finish_reason is not None

    @property
    def answering(self) -> bool:
        """The answer has started (the first content token arrived)."""
        return self.first_content_t is not None

    def result(self) -> ChatResult:
        end = self.end_t if self.end_t is not None else self.last_token_t
        return ChatResult(
            reasoning=self.reasoning or None,
            content=self.content or None,
            finish_reason=self.finish_reason,
            usage=self.usage,
            ttft_s=self.first_token_t,
            ttfot_s=self.first_content_t,
            e2e_s=end,
            itl_s=tuple(self.itl),
            chunks=self.chunks,
            complete=self.complete,
            done=self.done,
            model=self.model,
            id=self.id,
        )


def _stream_error(err: Any) -> StreamError:
    if isinstance(err, Mapping):
        code = err.get("code")
        return StreamError(message=str(err.get("message") or err), type=err.get("type"),
                           code=code if isinstance(code, int) else None)
    return StreamError(message=str(err))


def result_from_response(body: Mapping[str, Any], e2e_s: float | None = None) -> ChatResult:
    """A non-streamed ``chat.completion`` (or ``text_completion``) as a :class:`ChatResult`.
    Without streaming there is no first-token time: TTFT and TTFOT are None."""
    choices = body.get("choices") if isinstance(body.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    raw_message = choice.get("message")
    message: Mapping[str, Any] = raw_message if isinstance(raw_message, Mapping) else {}
    content = message.get("content") if isinstance(message.get("content"), str) else None
    if content is None and isinstance(choice.get("text"), str):
        content = choice["text"]
    finish = choice.get("finish_reason")
    return ChatResult(
        reasoning=reasoning_of(message) or None,
        content=content or None,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=Usage.from_dict(body.get("usage")),
        ttft_s=None,
        ttfot_s=None,
        e2e_s=e2e_s,
        chunks=0,
        complete=isinstance(finish, str),
        done=True,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        id=body.get("id") if isinstance(body.get("id"), str) else None,
    )
