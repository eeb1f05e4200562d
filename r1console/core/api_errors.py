"""What went wrong talking to a vLLM / OpenAI-compatible server, as one clear message.

:func:`error_from_response` turns an HTTP error status and body into a :class:`ServerError`
subclass. vLLM answers errors as ``{"error": {"message", "type", "param", "code"}}`` (captured
from vLLM 0.32: 400 ``BadRequestError``, 404 ``NotFoundError``; also ``"type": "Bad Request"``
for validation errors) and a bad API key as ``{"error": "Unauthorized"}`` with 401 (vLLM's
authentication middleware guards ``/v1/*`` only; ``/health``, ``/metrics``, ``/version`` are
open). FastAPI's own 404 is ``{"detail": "Not Found"}``.

Pure: no I/O; the HTTP client maps transport failures to :class:`ServerUnreachable` and
:class:`ServerTimeout` itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from r1console.core.errors import R1Error

KEY_HINT = "pass the key vLLM was started with (--api-key / VLLM_API_KEY) in --api-key-file FILE"
BAD_KEY_HINT = "check --api-key-file: it must hold the key vLLM was started with (--api-key / VLLM_API_KEY)"


class ServerError(R1Error):
    """The server answered with an error status. ``status`` is the HTTP code."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None, server_message: str = "",
                 url: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.server_message = server_message
        self.url = url


class AuthError(ServerError):
    """401/403: the API key is missing or wrong."""


class ContextLengthError(ServerError):
    """400: the prompt (plus max_tokens) does not fit the model's context."""

    def __init__(self, message: str, *, max_context: int | None, prompt_tokens: int | None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.max_context = max_context
        self.prompt_tokens = prompt_tokens


class ModelNotFoundError(ServerError):
    """404: the server does not serve the requested model name."""


class ServerUnreachable(R1Error):
    """No TCP connection (refused, no route, DNS): the server is not up or the forward is closed."""

    exit_code = 1


class ServerTimeout(R1Error):
    """Connected (or trying to), but no answer within the timeout."""

    exit_code = 1


class ProtocolError(R1Error):
    """The server answered, but not in the OpenAI / vLLM format."""

    exit_code = 1


class StreamInterrupted(R1Error):
    """The stream ended before the server said it was finished. ``partial`` holds what arrived
    (a :class:`r1console.core.streaming.ChatResult`)."""

    exit_code = 1

    def __init__(self, message: str, *, partial: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.partial = partial


def server_message(body: str | bytes) -> tuple[str, str | None]:
    """``(message, type)`` from an error body in any of the shapes servers use."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return (text[:500], None)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return (str(err.get("message") or ""), err.get("type") if isinstance(err.get("type"), str) else None)
        if isinstance(err, str):
            return (err, None)
        detail = data.get("detail") or data.get("message")
        if detail is not None:
            return (detail if isinstance(detail, str) else json.dumps(detail), None)
    return (text[:500], None)


_CTX_RE = re.compile(r"maximum context length is (\d+) tokens", re.I)
_PROMPT_RE = re.compile(r"(?:prompt contains at least|requested|you requested) (\d+)", re.I)
_MAXTOK_RE = re.compile(r"max_tokens=(\d+) cannot be greater than max_model_len=(\d+)", re.I)
_MODEL_RE = re.compile(r"model `([^`]*)` does not exist", re.I)


def error_from_response(status: int, body: str | bytes, *, url: str = "",
                        api_key_sent: bool = False, model: str | None = None) -> ServerError:
    """The :class:`ServerError` for an HTTP error answer from ``url``."""
    msg, err_type = server_message(body)
    at = f" at {url}" if url else ""
    quoted = f": {msg}" if msg else ""
    kw: dict[str, Any] = {"status": status, "server_message": msg, "url": url}

    if status in (401, 403):
        if api_key_sent:
            text = f"the server refused the API key ({status}{at})"
            hint = BAD_KEY_HINT
        else:
            text = f"the server requires an API key and none was sent ({status}{at})"
            hint = KEY_HINT
        return AuthError(text, hint=hint, **kw)

    if status == 400:
        ctx = _CTX_RE.search(msg)
        if ctx:
            limit = int(ctx.group(1))
            prompt = _PROMPT_RE.search(msg)
            n = int(prompt.group(1)) if prompt else None
            size = f"{n} tokens" if n is not None else "too many tokens"
            text = (f"the conversation is too long for the model: {size}, but the server's "
                    f"context length is {limit} tokens (400)")
            return ContextLengthError(text, max_context=limit, prompt_tokens=n,
                                      hint="shorten the prompt, drop earlier turns, or lower --max-tokens", **kw)
        mt = _MAXTOK_RE.search(msg)
        if mt:
            text = (f"--max-tokens {mt.group(1)} is more than the model's context length "
                    f"({mt.group(2)} tokens) (400)")
            return ContextLengthError(text, max_context=int(mt.group(2)), prompt_tokens=None,
                                      hint=f"use --max-tokens below {mt.group(2)}", **kw)
        return ServerError(f"the server rejected the request (400){quoted}", **kw)

    if status == 404:
        m = _MODEL_RE.search(msg)
        if m or err_type == "NotFoundError" or "model" in msg.lower():
            name = m.group(1) if m else model
            named = f" `{name}`" if name else ""
            return ModelNotFoundError(f"the server does not serve the model{named} (404){quoted}",
                                      hint="omit --model to use the server's own model (GET /v1/models)", **kw)
        return ServerError(
            f"not found (404{at}): this URL is not an OpenAI-compatible endpoint",
            hint="give the server's base URL, e.g. http://127.0.0.1:8000 (with or without /v1)", **kw)

    if status == 503:
        return ServerError(f"the server is not ready or its engine died (503{at}){quoted}",
                           hint="wait for the model to load, or read the server log", **kw)
    if status >= 500:
        return ServerError(f"the server failed ({status}{at}){quoted}",
                           hint="read the server log: vLLM prints the traceback there", **kw)
    return ServerError(f"the server answered {status}{at}{quoted}", **kw)
