"""What the simulated vLLM server's parts share on the wire: content types, vLLM's engine error text,
the HTTP/1.1 names (``http11``, shared with the tests' scripted server), a request's wake-up channel, the
dropped-connection signal, compact JSON, and the disconnect watcher's stop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from r1console.demo.vllm import http11

MAX_HEAD = http11.MAX_HEAD
MAX_BODY = http11.MAX_BODY
SSE_TYPE = "text/event-stream; charset=utf-8"
PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENGINE_ERROR = "EngineCore encountered an issue. See stack trace (above) for the root cause."


class _Channel:
    """Wakes the handler of one request: on every token (streaming, drop faults) or only at the end."""

    __slots__ = ("event", "every")

    def __init__(self, every: bool = True) -> None:
        self.event = asyncio.Event()
        self.every = every


# The HTTP/1.1 framing is shared with the tests' scripted server (demo/vllm/http11.py).
_Conn = http11.Connection
_Http = http11.Request
_BadHttp = http11.BadRequest


class _Dropped(Exception):
    """The connection is gone (client disconnect or injected drop)."""


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def _unwatch(task: asyncio.Task) -> None:
    """Stop a disconnect watcher and wait for it, so the connection can be read again."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        cur = asyncio.current_task()
        if cur is not None and cur.cancelling():
            raise


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)
