"""The simulated vLLM server itself (:class:`SimServer`): lifecycle, counters, logs, the engine's
driver, HTTP connections and routing. The OpenAI routes are in ``api``, fault injection in ``faults``;
``r1console.demo.sim_server`` re-exports the public names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import random
import re
import secrets
import time
from collections import deque
from typing import Any

from r1console.core.exposure import IDENTITY_PATH, OPEN_PATHS, identity_proof
from r1console.demo.sim_engine import FINISHED, EngineConfig, SimEngine
from r1console.demo.sim_logs import VllmLogFormat, access_line, ready_log_lines, stats_line
from r1console.demo.sim_versions import VersionProfile, render_metrics
from r1console.demo.vllm import http11
from r1console.demo.vllm.api import _OpenAiApi
from r1console.demo.vllm.config import SimServerConfig
from r1console.demo.vllm.faults import Faults, _FaultInjection
from r1console.demo.vllm.wire import MAX_BODY, MAX_HEAD, PROM_TYPE, _BadHttp, _Conn, _Dropped, _dumps, _Http


class SimServer(_OpenAiApi, _FaultInjection):
    """See the module docstring. Start with ``await start()`` or ``async with``; ``url`` afterwards."""

    def __init__(self, config: SimServerConfig | None = None, **overrides: Any) -> None:
        config = config or SimServerConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        config.faults.validate()
        if config.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.config = config
        self.profile = VersionProfile(config.vllm_version)
        block = config.block_size or (64 if self.profile.v < (0, 11, 0) else 16)
        self.engine = SimEngine(EngineConfig(
            max_num_seqs=config.max_num_seqs, max_num_batched_tokens=config.max_num_batched_tokens,
            max_model_len=config.max_model_len, kv_cache_tokens=config.kv_cache_tokens, block_size=block,
            prefill_tokens_per_s=config.prefill_tokens_per_s, lengths=config.lengths, seed=config.seed))
        self.faults = dataclasses.replace(config.faults)  # limit counts down: never touch the caller's
        self._fault_rng = random.Random(f"faults|{config.seed}")
        self._server: asyncio.AbstractServer | None = None
        self._driver: asyncio.Task | None = None
        self._conns: dict[asyncio.Task, _Conn] = {}
        self._work = asyncio.Event()
        self._idle_since: float | None = None
        self._created = time.time()
        self._log_fmt = VllmLogFormat(config.vllm_version, api_pid=os.getpid())
        self.port = config.port
        self._reset_counters()

    # ---- public API ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.config.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def served_model_name(self) -> str:
        return self.config.served_name

    def set_faults(self, **changes: Any) -> Faults:
        """Update some faults (``None`` resets one); returns the new settings."""
        self.faults = self.faults.updated(changes)
        return self.faults

    def clear_faults(self) -> Faults:
        self.faults = Faults()
        return self.faults

    def state(self) -> dict[str, Any]:
        eng = self.engine
        return {
            "vllm_version": self.profile.version,
            "model": self.config.served_name,
            "requests_seen": self.requests_seen,
            "in_flight": self.in_flight,
            "completed": self.completed,
            "aborted": self.aborted,
            "rejected": self.rejected,
            "faults_injected": dict(self.faults_injected),
            "duplicates": self.duplicates,
            "completed_duplicates": self.completed_duplicates,
            "by_endpoint": dict(self.by_endpoint),
            "http_requests": self.http_requests,
            "running": eng.num_running,
            "waiting": eng.num_waiting,
            "kv_cache_usage": eng.kv_usage,
            "prompt_tokens": eng.metrics.prompt_tokens,
            "generation_tokens": eng.metrics.generation_tokens,
            "preemptions": eng.metrics.num_preemptions,
            "sim_time_s": eng.now,
            "time_scale": self.config.time_scale,
            "faults": self.faults.to_dict(),
        }

    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def reset_counters(self) -> None:
        self._reset_counters()

    async def start(self) -> "SimServer":
        cfg = self.config
        self._server = await asyncio.start_server(self._on_connect, cfg.host, cfg.port, backlog=2048,
                                                  limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        self._idle_since = asyncio.get_running_loop().time()
        self._driver = asyncio.create_task(self._drive(), name="sim-engine")
        self._write_logs(ready_log_lines(cfg.vllm_version, cfg.host, self.port, _dt.datetime.now(),
                                         api_pid=os.getpid()))
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):  # handlers see EOF / a dead transport and return
            conn.writer.transport.abort()
        if self._conns:
            _, pending = await asyncio.wait(list(self._conns), timeout=5)
            for task in pending:
                task.cancel()
        if self._driver is not None:
            self._driver.cancel()
            try:
                await self._driver
            except asyncio.CancelledError:
                pass
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._driver = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> "SimServer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---- counters --------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self.requests_seen = 0
        self.in_flight = 0
        self.completed = 0
        self.aborted = 0
        self.rejected = 0
        self.http_requests = 0
        self.faults_injected = {"status_5xx": 0, "dropped": 0, "stalled": 0}
        self.duplicates = 0
        self.completed_duplicates = 0
        self.by_endpoint: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._completed_fp: dict[str, int] = {}
        self._records: deque[dict[str, Any]] = deque(maxlen=self.config.max_records)

    # ---- logging ---------------------------------------------------------------------------
    def _write_logs(self, lines: list) -> None:
        for line in lines:
            stream = self.config.log_stream if line.stream == "out" else self.config.err_stream
            if stream is not None:
                stream.write(line.render())
        for stream in (self.config.log_stream, self.config.err_stream):
            if stream is not None:
                stream.flush()

    def _access(self, conn: _Conn, req: _Http, status: int) -> None:
        stream = self.config.log_stream
        if stream is not None:
            stream.write(access_line(conn.peer, req.method, req.target, status, req.version) + "\n")
            stream.flush()

    # ---- the engine driver ------------------------------------------------------------------
    def _catch_up_idle(self) -> None:
        """While the engine is idle, simulated time follows the wall clock (divided by time_scale),
        so a request arriving after a pause is not charged for the pause."""
        now = asyncio.get_running_loop().time()
        if self._idle_since is not None and self.config.time_scale > 0:
            self.engine.advance_to(self.engine.now + (now - self._idle_since) / self.config.time_scale)
        self._idle_since = now

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        eng, scale = self.engine, self.config.time_scale
        target = loop.time()
        last_log = loop.time()
        log_mark = (eng.now, eng.metrics.prompt_tokens, eng.metrics.generation_tokens)
        while True:
            if not eng.has_work():
                self._work.clear()
                self._idle_since = loop.time()
                await self._work.wait()  # _generate caught the clock up before adding work
                target = loop.time()
                continue
            step = eng.step()
            if step is None:  # nothing schedulable (cannot happen with validated requests): wait
                self._work.clear()
                await self._work.wait()
                continue
            if scale > 0:
                target += step.duration * scale
                delay = target - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    if delay < -0.25:  # fell behind (slow machine): do not burst to catch up
                        target = loop.time()
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(0)
            for req in step.emitted:
                ch = req.user_data
                if ch is not None and (ch.every or req.status == FINISHED):
                    ch.event.set()
            if self.config.log_stream is not None and loop.time() - last_log >= self.config.stats_interval_s:
                last_log = loop.time()
                m = eng.metrics
                dt = max(1e-9, eng.now - log_mark[0])
                line = stats_line(self._log_fmt, _dt.datetime.now(),
                                  prompt_tps=(m.prompt_tokens - log_mark[1]) / dt,
                                  gen_tps=(m.generation_tokens - log_mark[2]) / dt,
                                  running=eng.num_running, waiting=eng.num_waiting, kv_usage=eng.kv_usage,
                                  preemptions=m.num_preemptions)
                log_mark = (eng.now, m.prompt_tokens, m.generation_tokens)
                self.config.log_stream.write(line + "\n")
                self.config.log_stream.flush()

    # ---- HTTP ------------------------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(reader, writer)
        self._conns[task] = conn
        try:
            while True:
                try:
                    req = await self._read_request(conn)
                except _BadHttp:
                    writer.write(http11.BAD_REQUEST)
                    break
                if req is None:
                    break
                self.http_requests += 1
                keep = await self._dispatch(conn, req)
                if not keep or conn.disconnected:
                    break
        except _Dropped:
            pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # server stopping: end this connection's task normally
        finally:
            self._conns.pop(task, None)
            if not writer.is_closing():
                try:
                    writer.close()
                except Exception:
                    pass

    async def _read_request(self, conn: _Conn) -> _Http | None:
        return await http11.read_request(conn, max_head=MAX_HEAD, max_body=MAX_BODY)

    def _head(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
        return http11.response_head(status, headers, keep_alive=keep_alive)

    async def _send(self, conn: _Conn, req: _Http, status: int, body: bytes,
                    content_type: str | None = "application/json") -> bool:
        headers = [("content-length", str(len(body)))]
        if content_type:
            headers.append(("content-type", content_type))
        headers.append(("vary", "Origin"))
        conn.writer.write(self._head(status, headers, req.keep_alive) + body)
        self._access(conn, req, status)
        try:
            await conn.writer.drain()
        except ConnectionError:
            raise _Dropped() from None
        return req.keep_alive

    async def _send_json(self, conn: _Conn, req: _Http, status: int, obj: Any) -> bool:
        return await self._send(conn, req, status, _dumps(obj))

    # ---- routing -------------------------------------------------------------------------
    _ROUTES = {
        "/health": ("GET",), "/version": ("GET",), "/load": ("GET",), "/metrics": ("GET",),
        "/v1/models": ("GET",), "/v1/chat/completions": ("POST",), "/v1/completions": ("POST",),
        "/_sim/state": ("GET",), "/_sim/requests": ("GET",), "/_sim/faults": ("GET", "POST", "DELETE"),
        "/_sim/reset": ("POST",),
    }

    def _authorized(self, req: _Http) -> bool:
        key = self.config.api_key
        if not key:
            return True
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return secrets.compare_digest(hashlib.sha256(token.encode()).digest(),
                                      hashlib.sha256(key.encode()).digest())

    async def _dispatch(self, conn: _Conn, req: _Http) -> bool:
        path = req.path
        # Like a deployment of r1console's job script (slurm/r1c_auth.py): every route but /health
        # demands the key (vLLM alone guards /v1/* only); /r1c/identity proves we hold it. The
        # /_sim/* control routes are the simulator's own, not part of a deployment.
        if path == IDENTITY_PATH and self.config.api_key:
            return await self._identity(conn, req)
        if path not in OPEN_PATHS and not path.startswith("/_sim/") and not self._authorized(req):
            return await self._send_json(conn, req, 401, self.profile.unauthorized_body())
        methods = self._ROUTES.get(path)
        if methods is None:
            return await self._send_json(conn, req, 404, {"detail": "Not Found"})
        if req.method not in methods:
            return await self._send_json(conn, req, 405, {"detail": "Method Not Allowed"})
        if path == "/health":
            if self.faults.unhealthy:
                if self.profile.health_503:
                    return await self._send(conn, req, 503, b"", None)
                return await self._send(conn, req, 500, b"Internal Server Error", "text/plain; charset=utf-8")
            return await self._send(conn, req, 200, b"", None)
        if path == "/version":
            return await self._send_json(conn, req, 200, self.profile.version_body())
        if path == "/load":
            return await self._send_json(conn, req, 200, {"server_load": 0})
        if path == "/metrics":
            text = render_metrics(self.profile, self.engine, self.config.served_name, self._created)
            return await self._send(conn, req, 200, text.encode(), PROM_TYPE)
        if path == "/v1/models":
            body = self.profile.models_body(self.config.served_name, self.config.model,
                                            self.config.max_model_len, int(time.time()))
            return await self._send_json(conn, req, 200, body)
        if path.startswith("/_sim/"):
            return await self._admin(conn, req)
        return await self._generate(conn, req, chat=path == "/v1/chat/completions")

    async def _identity(self, conn: _Conn, req: _Http) -> bool:
        if req.method not in ("GET", "HEAD"):
            return await self._send_json(conn, req, 405, {"error": "Method Not Allowed"})
        query = req.target.partition("?")[2]
        challenge = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "challenge"), "")
        if not re.fullmatch(r"[0-9a-f]{32,128}", challenge):
            return await self._send_json(conn, req, 400, {"error": "challenge must be 32-128 lowercase hex digits"})
        key = self.config.api_key or ""
        return await self._send_json(conn, req, 200, {"r1console_identity": 1, "job_id": self.config.job_id,
                                                      "proof": identity_proof(key, self.config.job_id, challenge)})

    async def _admin(self, conn: _Conn, req: _Http) -> bool:
        path = req.path
        if path == "/_sim/state":
            return await self._send_json(conn, req, 200, self.state())
        if path == "/_sim/requests":
            return await self._send_json(conn, req, 200, {"requests": self.records()})
        if path == "/_sim/reset":
            self.reset_counters()
            return await self._send_json(conn, req, 200, self.state())
        if req.method == "GET":
            return await self._send_json(conn, req, 200, self.faults.to_dict())
        if req.method == "DELETE":
            return await self._send_json(conn, req, 200, self.clear_faults().to_dict())
        try:
            changes = json.loads(req.body or b"{}")
            faults = self.set_faults(**changes) if isinstance(changes, dict) else self.faults.updated(changes)
        except (ValueError, TypeError) as err:
            return await self._send_json(conn, req, 400, {"detail": str(err)})
        return await self._send_json(conn, req, 200, faults.to_dict())


async def run_forever(server: SimServer, ready: asyncio.Event | None = None) -> None:
    """Start ``server`` and serve until cancelled; always stops it."""
    await server.start()
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
