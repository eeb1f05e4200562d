"""Async HTTP client for a vLLM (or any OpenAI-compatible) server.

::

    async with VllmClient("http://127.0.0.1:8000", api_key=key) as client:
        await client.health()                      # True, or raises
        model = await client.model_id()            # GET /v1/models → data[0].id
        snap = await client.metrics()              # ServerMetrics (Prometheus /metrics)
        async with client.chat_stream(messages, max_tokens=256) as stream:
            async for delta in stream:             # StreamDelta: reasoning / content pieces
                ...
        result = stream.result                     # ChatResult: texts, usage, TTFT/TTFOT/E2E
        ok = await client.probe()                  # one tiny completion (readiness)

The client takes a base URL (with or without ``/v1``) and an optional API key; reaching a
SLURM job (SSH forward) is the job of ``r1console.adapters.reach``, which yields such a pair.

Every request has a timeout: ``timeout`` for the small endpoints and the probe,
``stream_timeout`` for chat — the longest the server may stay *silent* (before the first chunk,
which includes queueing, and between chunks), not a limit on the whole reply. Every failure is
an :class:`r1console.core.errors.R1Error` with one clear message (see
:mod:`r1console.core.api_errors`): refused connection → :class:`ServerUnreachable`, silence →
:class:`ServerTimeout`, HTTP errors → :class:`ServerError` subclasses (401 bad key, 400 too long,
404 model, 5xx), a stream cut before the server finished → :class:`StreamInterrupted` with the
partial reply.
"""

from __future__ import annotations

import errno
import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from r1console.adapters.vllm_chat_stream import ChatStream
from r1console.core.api_errors import (
    ProtocolError,
    ServerTimeout,
    ServerUnreachable,
    error_from_response,
)
from r1console.core.errors import R1Error
from r1console.core.prometheus import ServerMetrics
from r1console.core.streaming import (
    ChatResult,
    StreamAccumulator,
    Usage,
    result_from_response,
)

DEFAULT_TIMEOUT = 30.0          # small endpoints, probe
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_STREAM_TIMEOUT = 600.0  # longest silence allowed in a chat (queue + thinking pauses)

NOT_UP_HINT = "the server is not up (yet), or the SSH port-forward to it is not open"


def normalize_base_url(url: str) -> str:
    """``http://host:port[/prefix]`` without a trailing ``/`` or ``/v1``. A bare ``host:port``
    gets ``http://``. Raises :class:`R1Error` for anything that is not an http(s) URL."""
    text = (url or "").strip()
    if not text:
        raise R1Error("the server URL is empty")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise R1Error(f"not an http(s) URL: {url!r}", hint="e.g. --url http://127.0.0.1:8000")
    if parts.query or parts.fragment:
        raise R1Error(f"the server URL must not have a query or fragment: {url!r}")
    try:
        _ = parts.port   # raises for a port that is not a number in range
    except ValueError:
        raise R1Error(f"bad port in URL {url!r}") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_reason(exc: BaseException) -> str:
    """The OS-level reason behind a failed connect: httpx's ConnectError ("All connection attempts
    failed") or aiohttp's ClientConnectorError (which keeps the OSError in ``os_error``)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            if cur.errno == errno.ECONNREFUSED:
                return "connection refused"
            return cur.strerror or str(cur)
        cur = getattr(cur, "os_error", None) or cur.__cause__ or cur.__context__
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__


@dataclass(frozen=True)
class ModelInfo:
    id: str
    root: str | None = None
    max_model_len: int | None = None
    owned_by: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """One tiny completion answered: the engine really generates (not only ``/health``)."""

    model: str
    latency_s: float
    text: str
    finish_reason: str | None
    usage: Usage | None


class VllmClient:
    """See the module docstring. Use as ``async with VllmClient(...) as client``."""

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.stream_timeout = float(stream_timeout)
        self._clock = clock
        self._model_id: str | None = None
        headers = {"User-Agent": "r1console"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # A proxy from the environment must not capture a forwarded 127.0.0.1 port.
        loopback = _is_loopback(urlsplit(self.base_url).hostname)
        # No connection cap (audit H3): the small endpoints never need many, and a pool wait
        # must never time out. Streams go through aiohttp (adapters.vllm_stream).
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, transport=transport,
            timeout=self._timeout(self.timeout), trust_env=not loopback, follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        self._headers = headers
        self._trust_env = not loopback
        self._streams = None   # vllm_stream.StreamTransport, made on the first stream

    async def __aenter__(self) -> VllmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            if self._streams is not None:
                await self._streams.aclose()

    def _timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout, read=read, write=self.timeout, pool=None)

    def _stream_transport(self):
        if self._streams is None:
            from r1console.adapters.vllm_stream import StreamTransport  # aiohttp: only when streaming

            self._streams = StreamTransport(self._headers, connect_timeout=self.connect_timeout,
                                            trust_env=self._trust_env)
        return self._streams

    # -- plumbing ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def transport_error(self, exc: Exception, path: str, read_timeout: float) -> R1Error:
        """Map an httpx failure to a clear R1Error."""
        url = self._url(path)
        if isinstance(exc, httpx.ConnectTimeout):
            return ServerTimeout(f"connecting to {self.base_url} timed out after {self.connect_timeout:g} s",
                                 hint=NOT_UP_HINT)
        if isinstance(exc, httpx.ConnectError):
            return ServerUnreachable(f"cannot connect to {self.base_url}: {connect_reason(exc)}",
                                     hint=NOT_UP_HINT)
        if isinstance(exc, httpx.ReadTimeout):
            return ServerTimeout(f"no answer from {url} within {read_timeout:g} s",
                                 hint="the server is overloaded or stuck; a longer --timeout waits longer")
        if isinstance(exc, httpx.TimeoutException):
            return ServerTimeout(f"{url}: timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.RemoteProtocolError) and "without sending" in str(exc):
            # What an SSH forward does when nothing listens on the far side.
            return ServerUnreachable(
                f"{self.base_url} closed the connection without answering",
                hint="if this is an SSH forward: it is open but nothing listens behind it yet")
        return ProtocolError(f"{url}: {type(exc).__name__}: {exc}")

    async def _request(self, method: str, path: str, *, read_timeout: float | None = None,
                       model: str | None = None, **kwargs: Any) -> httpx.Response:
        rt = self.timeout if read_timeout is None else read_timeout
        try:
            response = await self._http.request(method, path, timeout=self._timeout(rt), **kwargs)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, path, rt) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content, url=self._url(path),
                                      api_key_sent=bool(self.api_key), model=model)
        return response

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            snippet = response.text[:120].replace("\n", " ")
            raise ProtocolError(f"{self._url(path)} did not answer JSON ({snippet!r})",
                                hint="is this the base URL of a vLLM / OpenAI-compatible server?") from None

    # -- endpoints ---------------------------------------------------------------------------

    async def health(self) -> bool:
        """GET /health: True on 200; raises otherwise (503 = engine dead or not ready)."""
        await self._request("GET", "/health")
        return True

    async def is_healthy(self) -> bool:
        """Like :meth:`health` but never raises: for pollers."""
        try:
            return await self.health()
        except R1Error:
            return False

    async def version(self) -> str:
        """GET /version → e.g. ``"0.8.5.post1"``."""
        data = self._json(await self._request("GET", "/version"), "/version")
        if not isinstance(data, dict) or not isinstance(data.get("version"), str):
            raise ProtocolError(f"{self._url('/version')} answered no version: {data!r}"[:200])
        return data["version"]

    async def models(self) -> list[ModelInfo]:
        """GET /v1/models: the served models (vLLM serves one)."""
        data = self._json(await self._request("GET", "/v1/models"), "/v1/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(f"{self._url('/v1/models')} answered no model list")
        out = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                mml = item.get("max_model_len")
                out.append(ModelInfo(id=item["id"], root=item.get("root"),
                                     max_model_len=mml if isinstance(mml, int) else None,
                                     owned_by=item.get("owned_by")))
        return out

    async def model_id(self) -> str:
        """The model name to send: ``data[0].id`` of /v1/models (cached)."""
        if self._model_id is None:
            models = await self.models()
            if not models:
                raise ProtocolError(f"{self._url('/v1/models')} lists no model")
            self._model_id = models[0].id
        return self._model_id

    async def metrics_text(self) -> str:
        return (await self._request("GET", "/metrics")).text

    async def metrics(self, *, model: str | None = None) -> ServerMetrics:
        """GET /metrics as a :class:`ServerMetrics` stamped with this client's clock."""
        text = await self.metrics_text()
        return ServerMetrics.from_text(text, at=self._clock(), model=model)

    async def probe(self, *, prompt: str = "Hello", max_tokens: int = 1,
                    timeout: float | None = None) -> ProbeResult:
        """One tiny completion (POST /v1/completions, ``max_tokens`` 1, greedy). vLLM can be
        healthy and still die at its first request (unsupported kernel), so readiness is this,
        not ``/health``."""
        model = await self.model_id()
        t0 = self._clock()
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        rt = self.timeout if timeout is None else timeout
        data = self._json(await self._request("POST", "/v1/completions", json=body,
                                              read_timeout=rt, model=model), "/v1/completions")
        latency = self._clock() - t0
        if not isinstance(data, dict):
            raise ProtocolError(f"{self._url('/v1/completions')} answered {data!r}"[:200])
        result = result_from_response(data)
        if result.finish_reason is None and result.content is None:
            raise ProtocolError(f"{self._url('/v1/completions')} answered no completion choice")
        return ProbeResult(model=model, latency_s=latency, text=result.content or "",
                           finish_reason=result.finish_reason, usage=result.usage)

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   **params: Any) -> ChatResult:
        """Non-streaming chat completion. ``params``: max_tokens, temperature, … (None = unset)."""
        model = model or await self.model_id()
        payload = {"model": model, "messages": messages, "stream": False,
                   **{k: v for k, v in params.items() if v is not None}}
        t0 = self._clock()
        path = "/v1/chat/completions"
        data = self._json(await self._request("POST", path, json=payload,
                                              read_timeout=self.stream_timeout, model=model), path)
        if not isinstance(data, dict):
            raise ProtocolError(f"{self._url(path)} answered {data!r}"[:200])
        return result_from_response(data, e2e_s=self._clock() - t0)

    def chat_stream(self, messages: list[dict[str, Any]], *, model: str | None = None,
                    accumulator: StreamAccumulator | None = None, **params: Any) -> ChatStream:
        """A streamed chat completion (SSE, ``stream_options.include_usage``). Iterate the
        returned :class:`ChatStream` for :class:`StreamDelta` s; ``stream.result`` afterwards.
        Pass ``accumulator`` to have it filled (e.g. a chat turn's ``turn.stream``)."""
        return ChatStream(self, messages, model=model, accumulator=accumulator, params=params)
