"""The local OpenAI-compatible endpoint in front of a deployment's replicas (aiohttp).

    proxy = ServeProxy(replicas, api_key="local-key", port=8000)
    await proxy.start()          # http://127.0.0.1:8000/v1 for the openai SDK, Jupyter, LangChain ...
    ...
    await proxy.stop()

* Every route except ``/health`` demands ``Authorization: Bearer <local key>`` (the endpoint's own
  key, never a replica's); the replica's key is put on the forwarded request.
* ``/v1/*`` (and any other path) goes to the replica with the fewest requests in flight
  (:class:`~r1console.core.replicas.ReplicaSet`). The request body is read once and kept, so a
  request that has not streamed a byte back yet can move: a refused connection, a connection cut
  before the first byte, or a 5xx while another replica is untried sends it to the next replica.
  The response (status, headers, every byte of an SSE stream) is passed through untouched, with
  the response headers held back until the first body bytes arrive (a non-streaming answer with a
  Content-Length is read whole first, so it can still move if the replica dies half-way). A replica that dies after
  bytes went out cuts that one client connection (the client's own retry applies).
* ``/v1/models``: the union of the ready replicas' model lists. ``/health``: 200 while a replica
  takes requests, else 503. ``/metrics``: every replica's Prometheus text merged
  (:mod:`r1console.core.metrics_merge`) plus the endpoint's own ``r1console_serve_*`` series.
* When no replica can take a request (a relay's gap, all down), the request waits up to
  ``wait_for_replica_s`` for one, then gets a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from r1console.core.metrics_merge import merge_metrics
from r1console.core.replicas import DOWN, Replica, ReplicaSet

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class _Attempt:
    """One request on one replica, so the controller can abort it when the replica's job leaves."""

    __slots__ = ("aborted", "upstream")

    def __init__(self) -> None:
        self.aborted = asyncio.Event()
        self.upstream: aiohttp.ClientResponse | None = None

    def abort(self) -> None:
        self.aborted.set()
        if self.upstream is not None:
            self.upstream.close()        # a pending read raises ClientPayloadError / ClientConnectionError

    async def guard(self, coro):
        """Run ``coro`` until it ends or the attempt is aborted (then: ClientConnectionError)."""
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(self.aborted.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise aiohttp.ClientConnectionError("the replica's job left the endpoint")


@dataclass(frozen=True)
class _Upstream:
    """Where one forwarded request goes: the replica, the path (with its query) and the body."""

    replica: Replica
    path: str
    body: bytes


@dataclass(frozen=True)
class _Moved:
    """The request left this replica before anything reached the client; ``reason`` is said if
    no replica is left to take it."""

    reason: str


@dataclass
class _Ending:
    """How a forward ended, for the replica's books: ``ok`` (an answer under 500, or a client
    that left) and whether the client left (then the upstream connection is closed)."""

    ok: bool = False
    client_left: bool = False


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


class ServeProxy:
    def __init__(self, replicas: ReplicaSet, *, api_key: str, host: str = "127.0.0.1", port: int = 8000,
                 connect_timeout_s: float = 10.0, read_timeout_s: float = 600.0,
                 wait_for_replica_s: float = 30.0) -> None:
        if not api_key:
            raise ValueError("the endpoint needs a key")
        self.replicas = replicas
        self.api_key = api_key
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.wait_for_replica_s = wait_for_replica_s
        self.requests_total = 0          # forwarded requests (/v1/* and others), answered or not
        self.requests_moved = 0          # times a request moved to another replica before streaming
        self.requests_failed = 0         # requests answered with the endpoint's own 503 or cut mid-stream
        self.cut_mid_stream = 0
        self.unauthorized = 0
        self.last_request_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._attempts: dict[str, set[_Attempt]] = {}

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "ServeProxy":
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s,
                                          sock_read=self.read_timeout_s),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/health", self._health)
        app.router.add_route("GET", "/metrics", self._metrics)
        app.router.add_route("GET", "/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, backlog=1024)
        await site.start()
        if self.port == 0:
            server = site._server  # the bound port, for port 0
            self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "ServeProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def abort_replica(self, name: str) -> int:
        """The replica's job left (cancelled, ended): end what it still has in flight at once.

        A dead job's server may never answer nor close (an engine killed under a live HTTP
        server): requests not streaming yet move to another replica, streams are cut."""
        attempts = self._attempts.pop(name, set())
        for attempt in attempts:
            attempt.abort()
        return len(attempts)

    def replicas_changed(self) -> None:
        """Wake requests waiting for a replica (the controller calls this after changes)."""
        self._changed.set()

    # ---- helpers -----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            return True
        self.unauthorized += 1
        return False

    @staticmethod
    def _upstream_headers(request: web.Request, rep: Replica) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
        if rep.api_key:
            headers["Authorization"] = f"Bearer {rep.api_key}"
        return headers

    async def _wait_for_replica(self, exclude: set[str], deadline: float) -> Replica | None:
        while True:
            rep = self.replicas.choose(exclude)
            if rep is not None:
                return rep
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.25))
            if exclude and not any(r.name not in exclude for r in self.replicas.ready()):
                # every replica that can take it was tried: let them try again (once they are up)
                exclude.clear()

    # ---- routes ------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.replicas.ready() else 503)

    async def _get(self, rep: Replica, path: str, timeout: float, *, as_json: bool):
        """GET ``path`` of one replica with its key: the JSON (``as_json``) or the text of a 200."""
        assert self._session is not None
        headers = {"Authorization": f"Bearer {rep.api_key}"} if rep.api_key else {}
        async with self._session.get(rep.url + path, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            return await (resp.json(content_type=None) if as_json else resp.text())

    async def _get_json(self, rep: Replica, path: str, timeout: float = 10.0):
        return await self._get(rep, path, timeout, as_json=True)

    async def _get_text(self, rep: Replica, path: str, timeout: float = 10.0) -> str:
        return await self._get(rep, path, timeout, as_json=False)

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key for this endpoint (r1console serve --show-key)",
                          "Unauthorized")
        ready = self.replicas.ready()
        if not ready:
            return _error(503, "no replica of this deployment is ready", "ServiceUnavailable")
        results = await asyncio.gather(*(self._get_json(r, "/v1/models") for r in ready), return_exceptions=True)
        seen: dict[str, dict] = {}
        for rep, res in zip(ready, results):
            if isinstance(res, BaseException):
                if isinstance(res, _UPSTREAM_ERRORS) and not isinstance(res, aiohttp.ClientResponseError):
                    self.replicas.mark_down(rep.name)
                continue
            for model in (res.get("data") or []) if isinstance(res, dict) else []:
                if isinstance(model, dict) and "id" in model:
                    seen.setdefault(str(model["id"]), model)
        if not seen:
            return _error(503, "no replica answered /v1/models", "ServiceUnavailable")
        return web.json_response({"object": "list", "data": list(seen.values())})

    def own_metrics(self) -> str:
        lines = ["# HELP r1console_serve_requests_total Requests forwarded by the endpoint, per replica.",
                 "# TYPE r1console_serve_requests_total counter"]
        for rep in self.replicas.all():
            lines.append(f'r1console_serve_requests_total{{replica="{rep.name}"}} {rep.started}')
        lines += ["# TYPE r1console_serve_requests_in_flight gauge",
                  f"r1console_serve_requests_in_flight {self.replicas.outstanding}",
                  "# TYPE r1console_serve_requests_moved_total counter",
                  f"r1console_serve_requests_moved_total {self.requests_moved}",
                  "# TYPE r1console_serve_requests_failed_total counter",
                  f"r1console_serve_requests_failed_total {self.requests_failed}",
                  "# TYPE r1console_serve_replicas_ready gauge",
                  f"r1console_serve_replicas_ready {len(self.replicas.ready())}"]
        return "\n".join(lines) + "\n"

    async def scrape(self, rep: Replica, timeout: float = 10.0) -> str:
        """One replica's /metrics text (raises on failure)."""
        return await self._get_text(rep, "/metrics", timeout)

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key for this endpoint", "Unauthorized")
        reps = [r for r in self.replicas.all() if r.state != DOWN]
        results = await asyncio.gather(*(self.scrape(r) for r in reps), return_exceptions=True)
        texts = [t for t in results if isinstance(t, str)]
        try:
            body = merge_metrics(texts, self.own_metrics())
        except Exception as err:  # noqa: BLE001 - a replica that is not Prometheus: say which way
            return _error(502, f"cannot merge the replicas' /metrics: {err}", "BadGateway")
        return web.Response(text=body, content_type="text/plain", charset="utf-8",
                            headers={"X-R1console-Replicas": str(len(texts))})

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key for this endpoint (r1console serve --show-key)",
                          "Unauthorized")
        assert self._session is not None
        self.requests_total += 1
        self.last_request_at = time.time()
        body = await request.read()
        path = request.rel_url.raw_path_qs if hasattr(request.rel_url, "raw_path_qs") else str(request.rel_url)
        tried: set[str] = set()
        deadline = time.monotonic() + self.wait_for_replica_s
        last_error = "no replica of this deployment is ready"
        while True:
            rep = await self._wait_for_replica(tried, deadline)
            if rep is None:
                self.requests_failed += 1
                return _error(503, last_error, "ServiceUnavailable")
            tried.add(rep.name)
            answer = await self._try_replica(request, _Upstream(rep, path, body), tried)
            if isinstance(answer, _Moved):
                last_error = answer.reason
                continue
            return answer

    async def _try_replica(self, request: web.Request, up: _Upstream, tried: set[str]
                           ) -> web.StreamResponse | _Moved:
        """Send the request to one replica. Until something went to the client it can still
        move (:class:`_Moved`: a retryable status while another replica is ready, or the
        replica failing); after that its answer is the client's."""
        rep = up.replica
        self.replicas.begin(rep)
        ending = _Ending()
        upstream: aiohttp.ClientResponse | None = None
        attempt = _Attempt()
        self._attempts.setdefault(rep.name, set()).add(attempt)
        try:
            try:
                upstream, whole, first = await attempt.guard(self._start(request, up, attempt))
                if upstream.status in RETRY_STATUSES and any(
                        r.name not in tried for r in self.replicas.ready()):
                    self.requests_moved += 1
                    return _Moved(f"replica {rep.name} answered {upstream.status}")
                if first is None:
                    first = await (upstream.read() if whole else upstream.content.readany())
            except _UPSTREAM_ERRORS as err:
                # nothing went to the client yet: the request moves to another replica
                self.replicas.mark_down(rep.name)
                self.replicas_changed()
                self.requests_moved += 1
                return _Moved(f"replica {rep.name}: {type(err).__name__}: {err}")
            if whole:
                # a complete (non-streaming) answer: one write, and it could still move above
                headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
                ending.ok = upstream.status < 500
                return web.Response(body=first, status=upstream.status, reason=upstream.reason,
                                    headers=headers)
            return await self._relay_stream(request, rep, upstream, first, ending)
        finally:
            self._attempts.get(rep.name, set()).discard(attempt)
            self.replicas.end(rep, ok=ending.ok)
            if upstream is not None:
                if ending.ok and not ending.client_left:
                    upstream.release()
                else:
                    upstream.close()

    async def _start(self, request: web.Request, up: _Upstream, attempt: _Attempt
                     ) -> tuple[aiohttp.ClientResponse, bool, bytes | None]:
        """Send to the replica; the response, whether it is one whole body, and its first bytes
        (None for a retryable status: it may still move, so it is read only if it does not)."""
        assert self._session is not None
        resp = await self._session.request(request.method, up.replica.url + up.path, data=up.body or None,
                                           headers=self._upstream_headers(request, up.replica),
                                           allow_redirects=False)
        attempt.upstream = resp
        whole = resp.headers.get("Content-Length") is not None \
            and "text/event-stream" not in resp.headers.get("Content-Type", "")
        if resp.status in RETRY_STATUSES:
            return resp, whole, None          # maybe moved: read it only if it is not
        return resp, whole, await (resp.read() if whole else resp.content.readany())

    async def _relay_stream(self, request: web.Request, rep: Replica, upstream: aiohttp.ClientResponse,
                            first: bytes, ending: _Ending) -> web.StreamResponse:
        """Copy a streamed answer to the client chunk by chunk; a replica failing now cuts the
        client's stream too (it cannot move any more)."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        await response.prepare(request)
        chunk = first
        while chunk:
            try:
                await response.write(chunk)
            except (ConnectionError, OSError, RuntimeError):
                ending.ok, ending.client_left = True, True     # the client left: not the replica's fault
                return response
            try:
                chunk = await upstream.content.readany()
            except _UPSTREAM_ERRORS:
                self.replicas.mark_down(rep.name)
                self.replicas_changed()
                self.cut_mid_stream += 1
                self.requests_failed += 1
                if request.transport is not None:
                    request.transport.close()   # the client sees the cut, as from the replica
                return response
        ending.ok = upstream.status < 500
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            await response.write_eof()
        return response

__all__ = ["ServeProxy"]
