"""The streaming transport of :class:`r1console.adapters.vllm_client.VllmClient`: aiohttp.

Streamed chat completions are the hot path of ``chat``, ``batch``, ``sweep`` and the TUI. On
aiohttp the client's CPU per streamed request is several times lower than on httpx with the
same SSE parser and accumulator (``bench/bench_client.py`` measures it beside ``vllm bench
serve``'s own client, which is aiohttp too). The small endpoints (/health, /v1/models, …) stay
on httpx in ``vllm_client``.

Pool: ``TCPConnector(limit=0)`` — no cap on connections, so a batch at concurrency N really has
N requests in flight and no request ever waits for a free connection (a pool wait must never
time out and spend a retry, audit H3). Timeouts: ``sock_connect`` for the TCP connect,
``sock_read`` for each read (the longest silence, before the response headers too); no total
and no pool timeout.

This module only moves bytes and maps aiohttp's exceptions to the client's
:class:`~r1console.core.errors.R1Error` classes (:func:`stream_error`); parsing is
``core.sse`` + ``core.streaming``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import aiohttp

from r1console.adapters.vllm_client import connect_reason
from r1console.core.api_errors import ProtocolError, ServerTimeout, ServerUnreachable
from r1console.core.errors import R1Error

NOT_UP_HINT = "the server is not up (yet), or the SSH port-forward to it is not open"
KEEPALIVE_S = 4.0


class StreamTransport:
    """One aiohttp session per client, created on first use inside the running loop."""

    def __init__(self, headers: Mapping[str, str], *, connect_timeout: float, trust_env: bool,
                 limit: int = 0) -> None:
        self._headers = dict(headers)
        self.connect_timeout = float(connect_timeout)
        self._trust_env = trust_env
        self.limit = int(limit)          # 0: no cap (see the module docstring)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # keepalive 4 s: below uvicorn's (vLLM's) 5 s idle timeout, so a pooled connection
            # the server is about to close is never reused for a request.
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, ttl_dns_cache=300,
                                             keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=connector, trust_env=self._trust_env,
                timeout=self.timeout(None))
            self._loop = loop
        return self._session

    def timeout(self, read: float | None) -> aiohttp.ClientTimeout:
        # connect=None: waiting for a pooled connection never times out (there is no cap anyway).
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout,
                                     sock_read=read)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                await session.close()
            except RuntimeError:
                pass  # its loop is gone (a client reused across asyncio.run calls)



def is_read_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)) \
        and not isinstance(exc, aiohttp.ConnectionTimeoutError)


def stream_error(exc: BaseException, *, base_url: str, url: str, connect_timeout: float,
                 read_timeout: float) -> R1Error:
    """An aiohttp failure before the response started, as a clear R1Error."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ServerTimeout(f"connecting to {base_url} timed out after {connect_timeout:g} s",
                             hint=NOT_UP_HINT)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ServerUnreachable(f"cannot connect to {base_url}: {connect_reason(exc)}", hint=NOT_UP_HINT)
    if is_read_timeout(exc):
        return ServerTimeout(f"no answer from {url} within {read_timeout:g} s",
                             hint="the server is overloaded or stuck; a longer --timeout waits longer")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError)):
        # What an SSH forward does when nothing listens on the far side.
        return ServerUnreachable(
            f"{base_url} closed the connection without answering",
            hint="if this is an SSH forward: it is open but nothing listens behind it yet")
    return ProtocolError(f"{url}: {type(exc).__name__}: {exc}")


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)


def post_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """The body of a JSON POST (serialised once, here, with the stdlib)."""
    import json

    return {"data": json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            "headers": {"Content-Type": "application/json", "Accept": "text/event-stream"}}
