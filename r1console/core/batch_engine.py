"""The batch engine: a sliding window of streaming requests, retries, exact-once recording.

Headless and transport-free: the engine is given ``send(item, ctx) -> ChatResult`` (an async
callable; :mod:`r1console.adapters.batch_runner` binds it to :class:`VllmClient` streaming,
tests bind it to fakes) and a ``record(RequestRecord)`` sink (the journal). ``r1console batch``,
``r1console sweep``, the benchmark and the TUI's batch screen all drive this one class.

Scheduling — a **sliding window**, not the seed's fixed batches behind a barrier (docs/facts.md §1.3):
``concurrency`` requests are in flight at all times while work remains; the moment one ends
the next one is started, in the same instant of the engine's clock (no await in between), so
one long R1 reasoning chain never leaves the other slots idle. The engine accounts slot
occupancy itself (time-integral of requests in flight), overall and "while backlogged"
(while unsent work was waiting), which is what the tests and the benchmark assert on.

Failures (:func:`classify_error`):

* **server unreachable** (connection refused, forward with nothing behind it): the server is
  down or restarting. The request goes back to the queue without spending an attempt; the
  engine enters ``waiting-server``: no new requests, exponential backoff with jitter, then a
  ``probe()`` (GET /health) — or, without a probe, a single request — until the server
  answers; then the window refills at once. Down longer than ``give_up_after`` → the run stops
  (resumable), it does not fail every request. The give-up clock starts at the first failure
  of a streak and only a real answer (a chunk, a result) ends the streak, not a healthy probe;
  and one item that keeps meeting "unreachable" while the server looks up is charged attempts
  after ``FREE_UNREACHABLE`` such sends, so a server that accepts ``/health`` but closes every
  chat connection cannot loop for ever (audit M4).
* **transient** (timeouts, 408/429/5xx, a stream cut mid-way, protocol garbage from a dying
  server): retried after ``backoff(attempt)`` with jitter, up to ``max_attempts`` sends; the
  slot is given to the next request meanwhile.
* **permanent** (400 context too long, other 4xx): recorded as failed at once.
* **fatal** (401/403 bad key, 404 unknown model): every request would fail the same way; the
  run stops and :meth:`BatchEngine.run` raises the error.

**Recorded once**: each item gets exactly one :class:`RequestRecord` per run, written through
``record`` before anything else hears of it; retries happen before that. ``record`` may return
an awaitable (the journal's writer thread, so disk I/O stays off the event loop): the record
counts only once it resolves, and the run ends only when every write has. A request cancelled
by :meth:`stop` is not recorded (``--resume`` redoes it). Items in ``skip_ids`` (done in an
earlier run) are never sent.

Control (from any coroutine or callback on the engine's event loop): :meth:`pause`,
:meth:`resume`, :meth:`stop`, :meth:`set_concurrency`; observation: :meth:`snapshot`
(a :class:`BatchProgress` — counts, tok/s, latency summaries, occupancy) and
:meth:`subscribe` (a :class:`BatchEvent` per start/finish/retry/state change).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import random
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Awaitable, Callable, Iterable, Sequence

from r1console.core.api_errors import (
    AuthError,
    ModelNotFoundError,
    ProtocolError,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
    StreamInterrupted,
)
from r1console.core.batch_input import BatchItem
from r1console.core.batch_journal import RequestRecord
from r1console.core.stats import EMPTY, Histogram, Summary, summarize, throughput
from r1console.core.streaming import ChatResult

# -- errors and retries ----------------------------------------------------------------------------

FREE_UNREACHABLE = 3   # "unreachable" sends of one item, while the server looks up, that cost no attempt

class ErrorKind(str, Enum):
    UNREACHABLE = "unreachable"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FATAL = "fatal"


def classify_error(exc: BaseException) -> ErrorKind:
    """How the engine treats an exception from ``send`` (see the module docstring)."""
    if isinstance(exc, (AuthError, ModelNotFoundError)):
        return ErrorKind.FATAL
    if isinstance(exc, ServerUnreachable) or isinstance(exc, ConnectionRefusedError):
        return ErrorKind.UNREACHABLE
    if isinstance(exc, ServerError):
        status = exc.status
        if status is None or status in (408, 429) or status >= 500:
            return ErrorKind.TRANSIENT  # None: an error sent inside the stream
        return ErrorKind.PERMANENT
    if isinstance(exc, (ServerTimeout, StreamInterrupted, ProtocolError, TimeoutError,
                        asyncio.TimeoutError, ConnectionError, OSError)):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def error_info(exc: BaseException) -> dict[str, Any]:
    """The journal's ``error`` object for an exception."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    status = getattr(exc, "status", None)
    return {"message": message, "status": status if isinstance(status, int) else None,
            "type": type(exc).__name__}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter. ``backoff(n)`` is the wait before the ``n``-th retry:
    uniform in ``[d/2, d]`` with ``d = min(max_delay, base_delay · 2^(n-1))`` ("equal jitter":
    spread out, never zero)."""

    max_attempts: int = 8            # sends per request for transient errors
    base_delay: float = 0.5
    max_delay: float = 30.0
    give_up_after: float | None = 900.0   # server unreachable this long → stop the run

    def backoff(self, n: int, rng: random.Random) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** max(0, n - 1)))
        return d / 2 + rng.random() * d / 2


# -- what the sender sees ----------------------------------------------------------------------------

class SendContext:
    """Handed to ``send`` with each attempt. The sender reports progress through it:
    :meth:`connected` when the server accepted the request, :meth:`chunk` per token-carrying
    chunk (live tok/s, and proof that the server is up)."""

    def __init__(self, engine: BatchEngine, item: BatchItem, attempt: int) -> None:
        self._engine = engine
        self.item = item
        self.attempt = attempt          # 1 for the first send
        self.chunks = 0
        self.answer_chunks = 0

    def connected(self) -> None:
        self._engine._server_alive(answered=True)

    def chunk(self, answer: bool = False, tokens: int = 1) -> None:
        self.chunks += 1
        if answer:
            self.answer_chunks += 1
        engine = self._engine
        engine._live_tokens += tokens
        if engine._pending and engine.state is EngineState.RUNNING:
            engine._backlog_tokens += tokens
        if self.chunks == 1:
            self._engine._server_alive(answered=True)


Send = Callable[[BatchItem, SendContext], Awaitable[ChatResult]]
Probe = Callable[[], Awaitable[bool]]


# -- progress ---------------------------------------------------------------------------------------

class EngineState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING_SERVER = "waiting-server"
    STOPPING = "stopping"
    STOPPED = "stopped"          # by stop() or give_up_after: resumable
    FINISHED = "finished"        # every item has a record
    FAILED = "failed"            # a fatal error (run() raised it)


@dataclass(frozen=True)
class BatchEvent:
    """``kind``: started | finished | retry | state | server-down | server-up."""

    kind: str
    item_id: str | None = None
    attempt: int | None = None
    record: RequestRecord | None = None
    delay_s: float | None = None
    error: str | None = None
    state: EngineState | None = None


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a run (also the final summary). Times in seconds."""

    state: EngineState
    total: int                   # items in the input
    skipped: int                 # done in an earlier run (not sent)
    ok: int
    failed: int
    in_flight: int
    queued: int                  # not sent yet
    waiting_retry: int           # backing off before a retry
    retries: int                 # retry sends so far
    concurrency: int
    output_tokens: int           # of finished requests (usage.completion_tokens)
    live_tokens: int             # token chunks streamed so far, finished or not
    elapsed_s: float
    mean_in_flight: float
    occupancy: float | None              # mean_in_flight / concurrency over the run
    occupancy_backlogged: float | None   # the same while unsent work was waiting
    ttft: Summary = EMPTY
    ttfot: Summary = EMPTY               # time to first answer token (after reasoning)
    itl: Summary = EMPTY                 # pooled inter-token gaps
    e2e: Summary = EMPTY
    tpot: Summary = EMPTY
    waiting_server_s: float = 0.0        # time spent waiting for an unreachable server
    backlog_s: float = 0.0               # time running with unsent work waiting (window full)
    backlog_tokens: int = 0              # token chunks streamed during that time
    stop_reason: str | None = None
    last_error: str | None = None

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.done

    @property
    def output_tok_s(self) -> float | None:
        return throughput(self.output_tokens, self.elapsed_s)

    @property
    def live_tok_s(self) -> float | None:
        return throughput(self.live_tokens, self.elapsed_s)

    @property
    def steady_tok_s(self) -> float | None:
        """Token rate while the window was full (work waiting): the throughput *at* this
        concurrency, without the ramp-down at the end of a finite batch."""
        return throughput(self.backlog_tokens, self.backlog_s)

    @property
    def request_per_s(self) -> float | None:
        return throughput(self.done, self.elapsed_s)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` summary: latencies in milliseconds."""
        return {
            "state": self.state.value,
            "requests": {"total": self.total, "skipped": self.skipped, "ok": self.ok,
                         "failed": self.failed, "unfinished": self.remaining, "retries": self.retries},
            "concurrency": self.concurrency,
            "output_tokens": self.output_tokens,
            "wall_time_s": round(self.elapsed_s, 6),
            "output_tok_s": _r(self.output_tok_s),
            "steady_tok_s": _r(self.steady_tok_s),
            "request_per_s": _r(self.request_per_s),
            "mean_in_flight": _r(self.mean_in_flight),
            "occupancy": _r(self.occupancy),
            "occupancy_backlogged": _r(self.occupancy_backlogged),
            "ttft_ms": self.ttft.to_dict(1000, 3),
            "ttfot_ms": self.ttfot.to_dict(1000, 3),
            "itl_ms": self.itl.to_dict(1000, 3),
            "e2e_ms": self.e2e.to_dict(1000, 3),
            "tpot_ms": self.tpot.to_dict(1000, 3),
            "waiting_server_s": round(self.waiting_server_s, 3),
            "stop_reason": self.stop_reason,
        }


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)


# -- the engine ------------------------------------------------------------------------------------

@dataclass(order=True)
class _Retry:
    not_before: float
    index: int
    item: BatchItem = field(compare=False)


@dataclass
class _Slot:
    item: BatchItem
    attempt: int
    first_sent_at: float            # wall time of the first attempt
    while_down: bool = False        # sent as the test request while the server was down
    task: asyncio.Task | None = None


class BatchEngine:
    """See the module docstring. One engine runs one batch once (:meth:`run`)."""

    def __init__(self, items: Sequence[BatchItem], send: Send, *, concurrency: int,
                 record: Callable[[RequestRecord], Awaitable[None] | None] | None = None,
                 skip_ids: Iterable[str] = (),
                 policy: RetryPolicy = RetryPolicy(),
                 probe: Probe | None = None,
                 classify: Callable[[BaseException], ErrorKind] = classify_error,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 percentiles: Sequence[float] = (50.0, 90.0, 99.0)) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise ValueError("batch item ids must be unique")
        self.items = list(items)
        self._send = send
        self._record_sink = record
        self._skip = set(skip_ids) & set(ids)
        self.policy = policy
        self._probe = probe
        self._classify = classify
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._pcts = tuple(percentiles)
        self.concurrency = concurrency

        self._pending: deque[BatchItem] = deque(i for i in self.items if i.id not in self._skip)
        self._retry_heap: list[_Retry] = []
        self._attempts: dict[str, int] = {}
        self._first_sent: dict[str, float] = {}
        self._slots: dict[str, _Slot] = {}
        self._outcomes: deque[tuple[_Slot, ChatResult | None, BaseException | None]] = deque()
        self._recorded: set[str] = set()
        self._listeners: list[Callable[[BatchEvent], None]] = []

        self.state = EngineState.IDLE
        self._stop_reason: str | None = None
        self._fatal: BaseException | None = None
        self._wake: asyncio.Event | None = None
        self._paused = False
        self._stopping = False
        self._cancel_on_stop = True

        # server-down tracking
        self._down_since: float | None = None
        self._streak_since: float | None = None   # first failure since the last real answer
        self._unreachable: dict[str, int] = {}     # per item: "unreachable" sends while up
        self._writes: set[asyncio.Future] = set()  # records being written (async sink)
        self._down_streak = 0
        self._hold_until = 0.0
        self._probe_task: asyncio.Task | None = None

        # accounting
        self._t0: float | None = None
        self._t_end: float | None = None
        self._t_last = 0.0
        self._busy = 0.0
        self._backlog_time = 0.0
        self._backlog_busy = 0.0
        self._down_time = 0.0
        self._backlog_tokens = 0
        self._ok = 0
        self._failed = 0
        self._retries = 0
        self._output_tokens = 0
        self._live_tokens = 0
        self._last_error: str | None = None
        self._ttft: list[float] = []
        self._ttfot: list[float] = []
        self._e2e: list[float] = []
        self._tpot: list[float] = []
        self._itl = Histogram()

    # -- public control ------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[BatchEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every :class:`BatchEvent` (on the engine's loop; it
        must not block or raise). Returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def pause(self) -> None:
        """Send nothing new; requests in flight finish and are recorded."""
        if self.state in (EngineState.RUNNING, EngineState.WAITING_SERVER, EngineState.IDLE):
            self._paused = True
            self._set_state(EngineState.PAUSED)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._set_state(EngineState.WAITING_SERVER if self._down_since is not None
                            else EngineState.RUNNING)
            self._fill()
            self._poke()

    def stop(self, *, drain: bool = False, reason: str = "stopped") -> None:
        """Stop the run. ``drain=False`` cancels the requests in flight (not recorded: a
        ``--resume`` sends them again); ``drain=True`` lets them finish and records them."""
        if self.state in (EngineState.FINISHED, EngineState.FAILED, EngineState.STOPPED):
            return
        self._stopping = True
        self._cancel_on_stop = not drain
        self._stop_reason = self._stop_reason or reason
        self._set_state(EngineState.STOPPING)
        self._poke()

    def set_concurrency(self, n: int) -> None:
        """Change the window size while running (a smaller window shrinks as requests end)."""
        if n < 1:
            raise ValueError("concurrency must be at least 1")
        self._account(self._clock())
        self.concurrency = n
        self._fill()

    # -- observation ---------------------------------------------------------------------------

    def snapshot(self) -> BatchProgress:
        now = self._clock()
        if self._t0 is not None and self._t_end is None:
            self._account(now)
        elapsed = 0.0 if self._t0 is None else ((self._t_end or now) - self._t0)
        mean_in_flight = self._busy / elapsed if elapsed > 0 else 0.0
        return BatchProgress(
            state=self.state,
            total=len(self.items),
            skipped=len(self._skip),
            ok=self._ok,
            failed=self._failed,
            in_flight=len(self._slots),
            queued=len(self._pending),
            waiting_retry=len(self._retry_heap),
            retries=self._retries,
            concurrency=self.concurrency,
            output_tokens=self._output_tokens,
            live_tokens=self._live_tokens,
            elapsed_s=elapsed,
            mean_in_flight=mean_in_flight,
            occupancy=(mean_in_flight / self.concurrency) if elapsed > 0 else None,
            occupancy_backlogged=(self._backlog_busy / (self._backlog_time * self.concurrency)
                                  if self._backlog_time > 0 else None),
            ttft=summarize(self._ttft, self._pcts),
            ttfot=summarize(self._ttfot, self._pcts),
            itl=self._itl.summary(self._pcts),
            e2e=summarize(self._e2e, self._pcts),
            tpot=summarize(self._tpot, self._pcts),
            waiting_server_s=self._down_time,
            backlog_s=self._backlog_time,
            backlog_tokens=self._backlog_tokens,
            stop_reason=self._stop_reason,
            last_error=self._last_error,
        )

    @property
    def in_flight_ids(self) -> list[str]:
        return list(self._slots)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> BatchProgress:
        """Run until every item has a record, or :meth:`stop`, or a fatal error (raised).
        Returns the final :class:`BatchProgress`. Cancelling ``run`` cancels the requests in
        flight (unrecorded) and re-raises."""
        if self._t0 is not None:
            raise RuntimeError("a BatchEngine runs once")
        self._wake = asyncio.Event()
        self._t0 = self._t_last = self._clock()
        if not self._paused:
            self._set_state(EngineState.RUNNING)
        try:
            await self._loop()
        except asyncio.CancelledError:
            await self._cancel_all()
            self._finish(EngineState.STOPPED, "cancelled")
            raise
        except BaseException:
            await self._cancel_all()
            self._finish(EngineState.FAILED)
            raise
        if self._fatal is not None:
            await self._cancel_all()
            await self._drain_writes()
            self._finish(EngineState.FAILED, self._stop_reason)
            raise self._fatal
        await self._drain_writes()
        done = not self._pending and not self._retry_heap and not self._slots
        self._finish(EngineState.FINISHED if done and not self._stopping else EngineState.STOPPED,
                     None if done and not self._stopping else self._stop_reason)
        return self.snapshot()

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            while self._outcomes:
                self._handle(*self._outcomes.popleft())
                if self._fatal is not None:
                    return
            if self._stopping:
                if self._cancel_on_stop or not self._slots:
                    await self._cancel_all()
                    await self._drain_writes()
                    return
            elif not self._pending and not self._retry_heap and not self._slots and not self._writes:
                return
            now = self._clock()
            give_up = self.policy.give_up_after
            since = self._give_up_since()
            if since is not None and give_up is not None and now - since >= give_up and not self._stopping:
                self.stop(reason=f"the server was unreachable for {now - since:.0f} s")
                continue
            if self._down_since is not None:
                if (now >= self._hold_until and self._probe is not None and self._probe_task is None
                        and not self._paused and not self._stopping):
                    self._probe_task = asyncio.ensure_future(self._run_probe())
            self._fill()
            if self._outcomes:
                continue
            timeout = self._next_timeout(now)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _next_timeout(self, now: float) -> float | None:
        deadlines = []
        if self._retry_heap and len(self._slots) < self._limit(now):
            deadlines.append(self._retry_heap[0].not_before)
        if self._down_since is not None and self._hold_until > now:
            deadlines.append(self._hold_until)
        since = self._give_up_since()
        if since is not None and self.policy.give_up_after is not None:
            deadlines.append(since + self.policy.give_up_after)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now) + 1e-4

    def _give_up_since(self) -> float | None:
        """Start of the unreachable streak the give-up clock measures (None: not down)."""
        if self._down_since is None and not self._unreachable:
            return None
        starts = [t for t in (self._down_since, self._streak_since) if t is not None]
        return min(starts) if starts else None

    async def _drain_writes(self) -> None:
        """Wait for records being written: they finished, so they are kept."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
            while self._outcomes and self._fatal is None:
                self._handle(*self._outcomes.popleft())

    # -- dispatch ------------------------------------------------------------------------------

    def _limit(self, now: float) -> int:
        if self._paused or self._stopping or self._fatal is not None or self._wake is None:
            return 0
        if self._down_since is not None:
            if now < self._hold_until or self._probe is not None:
                return 0
            return 1          # no probe: one request tests the water
        return self.concurrency

    def _next_item(self, now: float) -> BatchItem | None:
        if self._retry_heap and self._retry_heap[0].not_before <= now:
            return heapq.heappop(self._retry_heap).item
        if self._pending:
            return self._pending.popleft()
        return None

    def _fill(self) -> None:
        """Start requests until the window is full (synchronous: same clock instant)."""
        if self._wake is None:
            return
        now = self._clock()
        while len(self._slots) < self._limit(now):
            item = self._next_item(now)
            if item is None:
                break
            self._account(now)
            attempt = self._attempts.get(item.id, 0) + 1
            self._attempts[item.id] = attempt
            if attempt > 1:
                self._retries += 1
            first = self._first_sent.setdefault(item.id, self._wall())
            slot = _Slot(item=item, attempt=attempt, first_sent_at=first,
                         while_down=self._down_since is not None)
            self._slots[item.id] = slot
            slot.task = asyncio.ensure_future(self._attempt(slot))
            self._emit(BatchEvent("started", item_id=item.id, attempt=attempt))

    async def _attempt(self, slot: _Slot) -> None:
        ctx = SendContext(self, slot.item, slot.attempt)
        result: ChatResult | None = None
        error: BaseException | None = None
        try:
            result = await self._send(slot.item, ctx)
            if not isinstance(result, ChatResult):
                raise TypeError(f"send() returned {type(result).__name__}, not a ChatResult")
        except asyncio.CancelledError:
            self._release(slot)
            raise
        except Exception as exc:  # noqa: BLE001 — every failure is classified
            error = exc
        self._release(slot)
        self._outcomes.append((slot, result, error))
        self._poke()
        # The window slides now, in the same instant, not when the coordinator wakes up.
        if error is None or self._classify(error) in (ErrorKind.PERMANENT, ErrorKind.TRANSIENT):
            if error is None:
                self._server_alive(answered=True)
            self._fill()

    def _release(self, slot: _Slot) -> None:
        if self._slots.get(slot.item.id) is slot:
            self._account(self._clock())
            del self._slots[slot.item.id]

    async def _cancel_all(self) -> None:
        tasks = [s.task for s in self._slots.values() if s.task is not None and not s.task.done()]
        if self._probe_task is not None and not self._probe_task.done():
            tasks.append(self._probe_task)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for slot in list(self._slots.values()):   # cancelled before they started running
            self._release(slot)
        # Outcomes that arrived while cancelling are still recorded (they finished).
        while self._outcomes and self._fatal is None:
            self._handle(*self._outcomes.popleft())

    # -- outcomes ------------------------------------------------------------------------------

    def _handle(self, slot: _Slot, result: ChatResult | None, error: BaseException | None) -> None:
        item = slot.item
        if item.id in self._recorded:
            return
        now = self._clock()
        if error is None:
            assert result is not None
            self._server_alive(answered=True)
            self._record(self._ok_record(slot, result), result.itl_s)
            return
        kind = self._classify(error)
        message = error_info(error)["message"]
        self._last_error = f"{item.id}: {message}"
        if kind is ErrorKind.FATAL:
            self._fatal = error
            self._stop_reason = message
            self._stopping = True
            return
        if kind is ErrorKind.UNREACHABLE and self._streak_since is None:
            self._streak_since = now
        if kind is ErrorKind.UNREACHABLE and not slot.while_down:
            # Sent while the server looked up: a few are free (it may have just died); after
            # that the item pays attempts, so "/health up, chat refused" cannot loop for ever.
            n = self._unreachable[item.id] = self._unreachable.get(item.id, 0) + 1
            if n > FREE_UNREACHABLE:
                kind = ErrorKind.TRANSIENT
        if kind is ErrorKind.UNREACHABLE:
            self._attempts[item.id] -= 1          # not the request's fault: no attempt spent
            if self._down_since is None:
                self._down_since = now
                self._down_streak = 1
                self._hold_until = now + self.policy.backoff(1, self._rng)
                self._emit(BatchEvent("server-down", item_id=item.id, error=message))
                if not self._paused and not self._stopping:
                    self._set_state(EngineState.WAITING_SERVER)
            elif slot.while_down:
                # The one request that tested the water (no probe) failed: back off further.
                # Requests already in flight when the server went away do not count.
                self._down_streak += 1
                self._hold_until = now + self.policy.backoff(self._down_streak, self._rng)
            heapq.heappush(self._retry_heap, _Retry(now, item.index, item))
            return
        if kind is ErrorKind.TRANSIENT and slot.attempt < self.policy.max_attempts:
            delay = self.policy.backoff(slot.attempt, self._rng)
            heapq.heappush(self._retry_heap, _Retry(now + delay, item.index, item))
            self._emit(BatchEvent("retry", item_id=item.id, attempt=slot.attempt, delay_s=delay,
                                  error=message))
            return
        if kind is ErrorKind.TRANSIENT:
            message = f"gave up after {slot.attempt} attempts: {message}"
        info = error_info(error)
        info["message"] = message
        self._record(RequestRecord(
            id=item.id, index=item.index, ok=False, request_hash=item.request_hash(),
            attempts=slot.attempt, error=info, started_at=slot.first_sent_at,
            finished_at=self._wall(),
        ))

    def _ok_record(self, slot: _Slot, r: ChatResult) -> RequestRecord:
        usage = r.usage.to_dict() if r.usage is not None else None
        return RequestRecord(
            id=slot.item.id, index=slot.item.index, ok=True,
            request_hash=slot.item.request_hash(),
            reasoning=r.reasoning, content=r.content, finish_reason=r.finish_reason,
            usage=usage, ttft_s=r.ttft_s, ttfot_s=r.ttfot_s, e2e_s=r.e2e_s,
            itl=summarize(r.itl_s, self._pcts).to_dict() if r.itl_s else None,
            attempts=slot.attempt, response_id=r.id, model=r.model,
            started_at=slot.first_sent_at, finished_at=self._wall(),
        )

    def _record(self, rec: RequestRecord, itl_gaps: Sequence[float] = ()) -> None:
        """The one place a request becomes done: sink first, then counters and listeners."""
        self._unreachable.pop(rec.id, None)
        if self._record_sink is not None:
            try:
                pending = self._record_sink(rec)
            except BaseException as err:   # disk full, …: nothing more may be sent
                self._write_failed(err)
                return
            if pending is not None and inspect.isawaitable(pending):
                self._recorded.add(rec.id)            # never sent or recorded twice
                fut = asyncio.ensure_future(pending)
                self._writes.add(fut)
                fut.add_done_callback(lambda f: self._written(f, rec, itl_gaps))
                return
        self._recorded.add(rec.id)
        self._count(rec, itl_gaps)

    def _write_failed(self, err: BaseException) -> None:
        if self._fatal is None:
            self._fatal = err
            self._stop_reason = f"cannot record results: {getattr(err, 'message', None) or err}"
        self._stopping = True
        self._poke()

    def _written(self, fut: asyncio.Future, rec: RequestRecord, itl_gaps: Sequence[float]) -> None:
        self._writes.discard(fut)
        if fut.cancelled():
            self._recorded.discard(rec.id)
            self._write_failed(RuntimeError("a journal write was cancelled"))
        elif (err := fut.exception()) is not None:
            self._recorded.discard(rec.id)             # not on disk: --resume redoes it
            self._write_failed(err)
        else:
            self._count(rec, itl_gaps)
        self._poke()

    def _count(self, rec: RequestRecord, itl_gaps: Sequence[float]) -> None:
        if rec.ok:
            self._ok += 1
            tokens = rec.output_tokens
            if not rec.usage or rec.usage.get("completion_tokens") is None:
                tokens = (rec.itl or {}).get("count", 0) + (1 if rec.ttft_s is not None else 0)
            self._output_tokens += int(tokens)
            for values, v in ((self._ttft, rec.ttft_s), (self._ttfot, rec.ttfot_s), (self._e2e, rec.e2e_s)):
                if v is not None:
                    values.append(v)
            if tokens > 1 and rec.e2e_s is not None and rec.ttft_s is not None:
                self._tpot.append((rec.e2e_s - rec.ttft_s) / (tokens - 1))
            self._add_itl(itl_gaps)
        else:
            self._failed += 1
        self._emit(BatchEvent("finished", item_id=rec.id, attempt=rec.attempts, record=rec))

    def _add_itl(self, gaps: Iterable[float]) -> None:
        for g in gaps:
            if g >= 0:
                self._itl.add(g)

    # -- server up/down ------------------------------------------------------------------------

    def _server_alive(self, answered: bool = False) -> None:
        """The server answered (``answered``: a real chunk or result; else only a probe)."""
        if answered:
            self._streak_since = None
        if self._down_since is None:
            return
        self._down_since = None
        self._down_streak = 0
        self._hold_until = 0.0
        now = self._clock()
        for r in self._retry_heap:          # requests that only waited for the server go now
            r.not_before = min(r.not_before, now)
        heapq.heapify(self._retry_heap)
        self._emit(BatchEvent("server-up"))
        if not self._paused and not self._stopping:
            self._set_state(EngineState.RUNNING)
        self._fill()
        self._poke()

    async def _run_probe(self) -> None:
        assert self._probe is not None
        try:
            ok = bool(await self._probe())
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — a failed probe is just "not yet"
            ok = False
        finally:
            self._probe_task = None
        if ok:
            self._server_alive()
        elif self._down_since is not None:
            self._down_streak += 1
            self._hold_until = self._clock() + self.policy.backoff(self._down_streak, self._rng)
        self._poke()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _account(self, now: float) -> None:
        """Integrate requests-in-flight over time up to ``now``."""
        if self._t0 is None or self._t_end is not None:
            return
        dt = now - self._t_last
        if dt > 0:
            n = len(self._slots)
            self._busy += n * dt
            running = self.state in (EngineState.RUNNING,) and not self._stopping
            backlogged = bool(self._pending) or bool(self._retry_heap and self._retry_heap[0].not_before <= now)
            if running and backlogged:
                self._backlog_time += dt
                self._backlog_busy += min(n, self.concurrency) * dt
            if self.state is EngineState.WAITING_SERVER:
                self._down_time += dt
            self._t_last = now

    def _finish(self, state: EngineState, reason: str | None = None) -> None:
        if self._t_end is None:
            self._account(self._clock())
            self._t_end = self._clock()
        if reason:
            self._stop_reason = reason
        self._set_state(state)

    def _set_state(self, state: EngineState) -> None:
        if state is not self.state:
            self._account(self._clock())
            self.state = state
            self._emit(BatchEvent("state", state=state))

    def _emit(self, event: BatchEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()
