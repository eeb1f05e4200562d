"""A simulated vLLM OpenAI-compatible server: HTTP/1.1 on asyncio streams, no web framework.

Endpoints (as vLLM serves them; JSON/SSE shapes per ``--vllm-version``, see sim_versions):
  GET  /health  /version  /load  /metrics  /v1/models
  POST /v1/chat/completions  /v1/completions      (streaming or not)
  With an API key every route but /health demands it, like r1console's job (slurm/r1c_auth.py), and
  GET /r1c/identity?challenge=HEX answers the job's identity proof.
Simulator endpoints (never guarded by the API key):
  GET  /_sim/state      counters: requests seen / in flight / completed / aborted / faults / duplicates
  GET  /_sim/requests   recent request records (fingerprint, status, tokens) for duplicate checks
  GET  /_sim/faults     POST /_sim/faults {"drop_after_tokens": 5, ...} (partial update)   DELETE: clear
  POST /_sim/reset      zero the counters and records (not the engine)

Tokens come from ``SimEngine`` (slots, queue, KV cache, step clock calibrated on the seed's H100
numbers); a step of ``d`` simulated seconds takes ``d * time_scale`` wall seconds (0: as fast as
possible). Histograms in /metrics are in simulated seconds.

In-process use::

    async with SimServer(vllm_version="0.32.0", max_num_seqs=8, time_scale=0.01, api_key="k") as srv:
        httpx.get(srv.url + "/health")
        srv.set_faults(status_5xx_rate=1.0, limit=2)   # the next two generation requests get a 500
        srv.state()["completed"]
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
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TextIO

from r1console.core.exposure import IDENTITY_PATH, OPEN_PATHS, identity_proof
from r1console.demo.sim_engine import (
    ANSWER,
    DEFAULT_KV_CACHE_TOKENS,
    EOS,
    FINISHED,
    REASONING,
    THINK_END,
    EngineConfig,
    LengthModel,
    SimEngine,
    SimRequest,
)
from r1console.demo.sim_logs import VllmLogFormat, access_line, ready_log_lines, stats_line
from r1console.demo.sim_text import ReplyText, count_tokens
from r1console.demo.sim_versions import DEFAULT_VERSION, VersionProfile, render_metrics
from r1console.demo.vllm import http11

MAX_HEAD = http11.MAX_HEAD
MAX_BODY = http11.MAX_BODY
SSE_TYPE = "text/event-stream; charset=utf-8"
PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENGINE_ERROR = "EngineCore encountered an issue. See stack trace (above) for the root cause."


@dataclass
class Faults:
    """Fault injection, decided per generation request in arrival order (seeded, so reproducible).

    drop_after_tokens   close the connection (RST) after this many tokens were streamed (non-streaming:
                        generated), for a ``drop_rate`` fraction of requests
    status_5xx_rate     answer this fraction of requests with ``status_5xx_code`` and vLLM's error body
    stall_s             pause the response this many wall seconds, for a ``stall_rate`` fraction, before the
                        response starts (``stall_after_tokens`` 0) or after that many tokens;
                        ``stall_spread_s`` adds a uniform random 0..spread seconds per request (held
                        streams that do not all end in the same instant)
    unhealthy           /health answers 503 (500 before vLLM 0.10) like a dead engine
    limit               fault at most this many more requests (None: no limit)
    """

    drop_after_tokens: int | None = None
    drop_rate: float = 1.0
    status_5xx_rate: float = 0.0
    status_5xx_code: int = 500
    stall_s: float = 0.0
    stall_spread_s: float = 0.0
    stall_after_tokens: int = 0
    stall_rate: float = 1.0
    unhealthy: bool = False
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, Any]) -> "Faults":
        """A copy with ``changes`` applied (``None`` resets a field); ValueError on bad input."""
        if not isinstance(changes, dict):
            raise ValueError("faults must be a JSON object")
        defaults = Faults()
        values = self.to_dict()
        for key, value in changes.items():
            if key not in values:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(values)}")
            values[key] = getattr(defaults, key) if value is None else value
        new = Faults(**values)
        new.validate()
        return new

    def validate(self) -> None:
        for name in ("drop_rate", "status_5xx_rate", "stall_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        for name in ("drop_after_tokens", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or null, got {value!r}")
        if isinstance(self.stall_after_tokens, bool) or not isinstance(self.stall_after_tokens, int) \
                or self.stall_after_tokens < 0:
            raise ValueError(f"stall_after_tokens must be a non-negative integer, got {self.stall_after_tokens!r}")
        for name in ("stall_s", "stall_spread_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if isinstance(self.status_5xx_code, bool) or not isinstance(self.status_5xx_code, int) \
                or not 500 <= self.status_5xx_code <= 599:
            raise ValueError(f"status_5xx_code must be 500-599, got {self.status_5xx_code!r}")
        if not isinstance(self.unhealthy, bool):
            raise ValueError("unhealthy must be true or false")


@dataclass
class SimServerConfig:
    host: str = "127.0.0.1"
    port: int = 0                                   # 0: a free port (see SimServer.port)
    vllm_version: str = DEFAULT_VERSION
    model: str = "deepseek-ai/DeepSeek-R1"          # the model path (``root`` in /v1/models)
    served_model_name: str | None = None            # default: the model path, like vLLM
    api_key: str | None = None
    job_id: str = ""                                # answered by /r1c/identity (the job's SLURM_JOB_ID)
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    max_model_len: int = 163_840
    kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS
    block_size: int | None = None                   # default: 64 (FlashMLA) before 0.11, else 16
    prefill_tokens_per_s: float = 8000.0
    time_scale: float = 1.0
    seed: int = 0
    lengths: LengthModel = field(default_factory=LengthModel)
    faults: Faults = field(default_factory=Faults)
    log_stream: TextIO | None = None                # vLLM logger + uvicorn access lines (stdout)
    err_stream: TextIO | None = None                # uvicorn startup lines (stderr)
    stats_interval_s: float = 10.0                  # periodic throughput line (wall seconds)
    max_records: int = 10_000

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model


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


class SimServer:
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

    # ---- generation ------------------------------------------------------------------------
    def _parse(self, req: _Http, chat: bool) -> tuple[dict | None, tuple[int, dict] | None]:
        """(params, None) or (None, (status, error body))."""
        p = self.profile
        try:
            body = json.loads(req.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            pos = getattr(err, "pos", 0)
            msg = getattr(err, "msg", "Invalid UTF-8")
            return None, (400, p.validation_error("json_invalid", f"body.{pos}", "JSON decode error", 0,
                                                  {"error": msg}))
        if not isinstance(body, dict):
            return None, (400, p.validation_error("model_attributes_type", "body",
                                                  "Input should be a valid dictionary or object to extract "
                                                  "fields from", 0))
        items = len(body)
        if chat:
            messages = body.get("messages")
            if messages is None:
                return None, (400, p.validation_error("missing", "body.messages", "Field required", items))
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                return None, (400, p.validation_error("list_type", "body.messages", "Input should be a valid list",
                                                      items))
            texts = [_message_text(m.get("content")) for m in messages]
            prompt_text = next((t for m, t in zip(reversed(messages), reversed(texts))
                                if m.get("role") == "user"), texts[-1] if texts else "")
            # <｜begin▁of▁sentence｜>, one role token per message, <｜Assistant｜><think>\n
            prompt_tokens = 1 + sum(1 + count_tokens(t) for t in texts) + 3
            fingerprint_src: Any = messages
        else:
            prompt = body.get("prompt")
            if prompt is None:
                return None, (400, p.validation_error("missing", "body.prompt", "Field required", items))
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
                prompt = prompt[0]
            if isinstance(prompt, str):
                prompt_text, prompt_tokens = prompt, 1 + count_tokens(prompt)
            elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                prompt_text, prompt_tokens = " ".join(map(str, prompt)), len(prompt)
            else:
                return None, (400, p.bad_request("the simulated server takes one prompt (a string or a list "
                                                 "of token ids) per request", "prompt"))
            fingerprint_src = prompt
        model = body.get("model")
        if model is not None and model != self.config.served_name:
            return None, (404, p.model_not_found(str(model), self.config.served_name))
        max_len = self.config.max_model_len
        max_tokens = body.get("max_completion_tokens") if chat else None
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            return None, (400, p.bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens"))
        if prompt_tokens > max_len:
            return None, (400, p.context_too_long(max_len, prompt_tokens))
        if max_tokens is not None and max_tokens > max_len:
            return None, (400, p.max_tokens_too_big(max_tokens, max_len))
        if max_tokens is None:
            max_tokens = max_len - prompt_tokens
        if max_tokens < 1 or prompt_tokens + max_tokens > max_len:
            return None, (400, p.context_plus_output_too_long(max_len, prompt_tokens, max(1, max_tokens)))
        n = body.get("n", 1)
        if n not in (1, None):
            return None, (400, p.bad_request("n > 1 is not supported by the simulated server", "n"))
        stream = bool(body.get("stream", False))
        options = body.get("stream_options")
        include_usage = stream and isinstance(options, dict) and options.get("include_usage", True) is not False
        fingerprint = hashlib.sha256(_dumps([req.path, fingerprint_src])).hexdigest()[:16]
        return {
            "prompt_text": prompt_text, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens,
            "stream": stream, "include_usage": include_usage, "ignore_eos": bool(body.get("ignore_eos", False)),
            "temperature": body.get("temperature"), "seed": body.get("seed"), "fingerprint": fingerprint,
        }, None

    def _decide_fault(self) -> str | None:
        f = self.faults
        if f.limit is not None and f.limit <= 0:
            return None
        rng = self._fault_rng
        decision = None
        if f.status_5xx_rate > 0 and rng.random() < f.status_5xx_rate:
            decision = "status_5xx"
        elif f.drop_after_tokens is not None and rng.random() < f.drop_rate:
            decision = "dropped"
        elif f.stall_s > 0 and rng.random() < f.stall_rate:
            decision = "stalled"
        if decision is not None and f.limit is not None:
            f.limit -= 1
        return decision

    async def _stall(self, conn: _Conn, seconds: float, ch: _Channel | None = None) -> None:
        """Sleep, but notice a client that gives up meanwhile. ``ch``: the channel of a response
        whose disconnect watcher is already running (a connection has one reader at a time)."""
        self.faults_injected["stalled"] += 1
        if self.faults.stall_spread_s > 0:
            seconds += self._fault_rng.random() * self.faults.stall_spread_s
        loop = asyncio.get_running_loop()
        watcher = None
        if ch is None:
            ch = _Channel()
            watcher = asyncio.create_task(self._watch(conn, ch))
        deadline = loop.time() + seconds
        try:
            while not conn.disconnected:
                left = deadline - loop.time()
                if left <= 0:
                    break
                ch.event.clear()
                try:
                    await asyncio.wait_for(ch.event.wait(), left)
                except asyncio.TimeoutError:
                    break
        finally:
            if watcher is not None:
                await _unwatch(watcher)
        if conn.disconnected:
            raise _Dropped()

    async def _watch(self, conn: _Conn, ch: _Channel) -> None:
        """Read ahead while a response is in progress: EOF means the client went away."""
        try:
            while True:
                data = await conn.reader.read(65536)
                if not data:
                    break
                conn.buf += data
        except (ConnectionError, OSError):
            pass
        conn.disconnected = True
        ch.event.set()

    async def _generate(self, conn: _Conn, req: _Http, *, chat: bool) -> bool:
        endpoint = req.path
        self.requests_seen += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        params, error = self._parse(req, chat)
        record: dict[str, Any] = {
            "endpoint": endpoint, "x_request_id": req.headers.get("x-request-id"), "fingerprint": None,
            "stream": None, "status": "rejected", "http_status": None, "finish_reason": None,
            "prompt_tokens": None, "completion_tokens": 0, "wall_time": time.time(),
        }
        self._records.append(record)
        if error is not None:
            self.rejected += 1
            record["http_status"] = error[0]
            return await self._send_json(conn, req, error[0], error[1])
        assert params is not None
        fp = params["fingerprint"]
        seen = self._seen.get(fp, 0)
        self._seen[fp] = seen + 1
        if seen:
            self.duplicates += 1
        record.update(fingerprint=fp, stream=params["stream"], prompt_tokens=params["prompt_tokens"])

        fault = self._decide_fault()
        if fault == "status_5xx":
            self.faults_injected["status_5xx"] += 1
            code = self.faults.status_5xx_code
            record.update(status="status_5xx", http_status=code)
            message = ENGINE_ERROR if code == 500 else HTTPStatus(code).phrase
            return await self._send_json(conn, req, code, self.profile.server_error(code, message))

        self.in_flight += 1
        record["status"] = "in_flight"
        sreq: SimRequest | None = None
        try:
            if fault == "stalled" and self.faults.stall_after_tokens == 0:
                await self._stall(conn, self.faults.stall_s)
            deterministic = params["temperature"] == 0 or params["seed"] is not None
            key = f"{fp}|{params['seed']}" if deterministic else f"{fp}|{seen}"
            reasoning, answer = self.engine.sample_lengths(key)
            text = ReplyText(params["prompt_text"], f"{self.config.seed}|{key}", reasoning,
                             answer if not params["ignore_eos"] else params["max_tokens"])
            ch = _Channel(every=params["stream"] or fault == "dropped")
            sreq = SimRequest(secrets.token_hex(8), params["prompt_tokens"], params["max_tokens"], reasoning,
                              answer, ignore_eos=params["ignore_eos"], user_data=ch)
            if not self.engine.has_work():
                self._catch_up_idle()
            self.engine.add_request(sreq)
            self._work.set()
            rid = self.profile.new_id("chatcmpl" if chat else "cmpl")
            created = int(time.time())
            if params["stream"]:
                keep = await self._stream(conn, req, sreq, ch, text, rid, created, chat, params, fault, record)
            else:
                keep = await self._complete(conn, req, sreq, ch, text, rid, created, chat, fault, record)
            self.completed += 1
            record.update(status="completed", finish_reason=sreq.finish_reason)
            if self._completed_fp.get(fp):
                self.completed_duplicates += 1
            self._completed_fp[fp] = self._completed_fp.get(fp, 0) + 1
            return keep
        except (_Dropped, ConnectionError):
            if record["status"] == "in_flight":
                record["status"] = "aborted"
                self.aborted += 1
            raise _Dropped() from None
        finally:
            self.in_flight -= 1
            if sreq is not None:
                record["completion_tokens"] = sreq.generated
                if not sreq.finished:
                    self.engine.abort(sreq)
                sreq.user_data = None

    def _drop(self, conn: _Conn, record: dict[str, Any]) -> None:
        self.faults_injected["dropped"] += 1
        record["status"] = "dropped"
        conn.disconnected = True
        conn.writer.transport.abort()
        raise _Dropped()

    async def _wait_tokens(self, conn: _Conn, sreq: SimRequest, ch: _Channel, have: int) -> None:
        """Until ``sreq`` has more than ``have`` tokens or is done; _Dropped if the client left."""
        while sreq.generated <= have and sreq.status != FINISHED:
            if conn.disconnected:
                raise _Dropped()
            ch.event.clear()
            await ch.event.wait()
        if conn.disconnected:
            raise _Dropped()

    async def _complete(self, conn: _Conn, req: _Http, sreq: SimRequest, ch: _Channel, text: ReplyText,
                        rid: str, created: int, chat: bool, fault: str | None, record: dict) -> bool:
        watcher = asyncio.create_task(self._watch(conn, ch))
        try:
            drop_at = self.faults.drop_after_tokens if fault == "dropped" else None
            while sreq.status != FINISHED:
                await self._wait_tokens(conn, sreq, ch, sreq.generated)
                if drop_at is not None and sreq.generated >= drop_at:
                    self._drop(conn, record)
        finally:
            await _unwatch(watcher)
        if fault == "stalled" and self.faults.stall_after_tokens > 0:
            await self._stall(conn, self.faults.stall_s)
        reasoning: list[str] = []
        answer: list[str] = []
        think_end = False
        pieces = text.pieces()
        for _ in range(sreq.output_len):
            kind, tok = next(pieces)
            if kind == REASONING:
                reasoning.append(tok)
            elif kind == THINK_END:
                think_end = True
                if not chat:
                    answer.append(tok)
            elif kind == ANSWER:
                answer.append(tok)
        model = self.config.served_name
        if chat:
            content = "".join(answer) if think_end else None
            body = self.profile.chat_response(rid, created, model, "".join(reasoning), content or None,
                                              sreq.finish_reason, sreq.prompt_tokens, sreq.generated)
        else:
            body = self.profile.completion_response(rid, created, model, "".join(reasoning + answer),
                                                    sreq.finish_reason, sreq.prompt_tokens, sreq.generated)
        record["http_status"] = 200
        return await self._send_json(conn, req, 200, body)

    async def _stream(self, conn: _Conn, req: _Http, sreq: SimRequest, ch: _Channel, text: ReplyText, rid: str,
                      created: int, chat: bool, params: dict, fault: str | None, record: dict) -> bool:
        writer = conn.writer
        headers = [("content-type", SSE_TYPE), ("vary", "Origin")]
        chunked = req.version == "1.1"
        if chunked:
            headers.append(("transfer-encoding", "chunked"))
        keep_alive = req.keep_alive and chunked
        writer.write(self._head(200, headers, keep_alive))
        self._access(conn, req, 200)
        record["http_status"] = 200

        def frame(payload: str) -> bytes:
            data = ("data: " + payload + "\n\n").encode("utf-8")
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        model = self.config.served_name
        shape = self.profile.chat_stream(rid, created, model) if chat else \
            self.profile.completion_stream(rid, created, model)
        pieces = text.pieces()
        drop_at = self.faults.drop_after_tokens if fault == "dropped" else None
        stall_at = self.faults.stall_after_tokens if fault == "stalled" and self.faults.stall_after_tokens else None
        last = sreq.output_len - 1
        sent = 0
        watcher = asyncio.create_task(self._watch(conn, ch))
        try:
            while sent <= last:
                await self._wait_tokens(conn, sreq, ch, sent)
                out: list[bytes] = []
                upto = sreq.generated
                if stall_at is not None and sent < stall_at <= upto:
                    upto = stall_at
                if drop_at is not None and upto > drop_at:
                    upto = max(sent, drop_at)
                for i in range(sent, upto):
                    kind, tok = next(pieces)
                    reason = sreq.finish_reason if i == last else None
                    if chat:
                        if i == 0:
                            out.append(frame(shape.role))
                        if kind == REASONING:
                            delta = shape.reasoning_delta(tok)
                        elif kind == ANSWER:
                            delta = shape.content_delta(tok)
                        elif kind == EOS:
                            delta, reason = '{"content":""}', "stop"
                        else:  # </think>: no chunk unless it is the last token
                            if reason is None:
                                continue
                            delta = "{}"
                        out.append(frame(shape.finish(delta, reason) if reason else shape.chunk(delta)))
                    else:
                        out.append(frame(shape.chunk(tok, "stop" if kind == EOS else reason)))
                sent = upto
                if out:
                    writer.write(b"".join(out))
                    if writer.transport.get_write_buffer_size() > 1 << 16:
                        await writer.drain()
                if drop_at is not None and sent >= drop_at:
                    await writer.drain()
                    self._drop(conn, record)
                if stall_at is not None and sent == stall_at:
                    stall_at = None
                    await writer.drain()
                    await self._stall(conn, self.faults.stall_s, ch)
        finally:
            await _unwatch(watcher)
        record["finish_reason"] = sreq.finish_reason   # the whole reply went out (the tail may not)
        tail: list[bytes] = []
        if params["include_usage"]:
            tail.append(frame(shape.usage(sreq.prompt_tokens, sreq.generated)))
        tail.append(frame("[DONE]"))
        if chunked:
            tail.append(http11.LAST_CHUNK)
        writer.write(b"".join(tail))
        await writer.drain()
        return keep_alive


async def run_forever(server: SimServer, ready: asyncio.Event | None = None) -> None:
    """Start ``server`` and serve until cancelled; always stops it."""
    await server.start()
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
