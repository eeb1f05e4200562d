"""Fault injection of the simulated vLLM server: the settings (:class:`Faults`, changed over
``/_sim/faults``) and the server's decisions per generation request (5xx, dropped connection, stall).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from r1console.demo.vllm.wire import _Channel, _Conn, _Dropped, _unwatch


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


class _FaultInjection:
    """``SimServer``'s fault decisions and their effects (uses its ``faults``, ``_fault_rng``, counters)."""

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

    def _drop(self, conn: _Conn, record: dict[str, Any]) -> None:
        self.faults_injected["dropped"] += 1
        record["status"] = "dropped"
        conn.disconnected = True
        conn.writer.transport.abort()
        raise _Dropped()
