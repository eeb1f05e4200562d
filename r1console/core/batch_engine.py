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
import random
import time
from collections import deque
from typing import Awaitable, Callable, Iterable, Sequence

from r1console.core.batch_input import BatchItem
from r1console.core.batch_outcomes import LatencySamples, _Outcomes
from r1console.core.batch_progress import BatchEvent, BatchProgress, EngineState
from r1console.core.batch_record import RequestRecord
from r1console.core.batch_retry import FREE_UNREACHABLE, ErrorKind, RetryPolicy, classify_error, error_info
from r1console.core.batch_send import Probe, Send, SendContext, _Retry, _Slot
from r1console.core.stats import summarize
from r1console.core.streaming import ChatResult

__all__ = ["BatchEngine", "BatchEvent", "BatchProgress", "EngineState", "ErrorKind", "FREE_UNREACHABLE", "Probe",
           "RetryPolicy", "Send", "SendContext", "classify_error", "error_info"]


class BatchEngine(_Outcomes):
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
        self._init_queues()
        self._init_control()
        self._init_server_tracking()
        self._init_accounting()

    def _init_queues(self) -> None:
        """Work not yet sent, waiting to be retried, in flight, and finished."""
        self._pending: deque[BatchItem] = deque(i for i in self.items if i.id not in self._skip)
        self._retry_heap: list[_Retry] = []
        self._attempts: dict[str, int] = {}
        self._first_sent: dict[str, float] = {}
        self._slots: dict[str, _Slot] = {}
        self._outcomes: deque[tuple[_Slot, ChatResult | None, BaseException | None]] = deque()
        self._recorded: set[str] = set()
        self._writes: set[asyncio.Future] = set()  # records being written (async sink)
        self._listeners: list[Callable[[BatchEvent], None]] = []

    def _init_control(self) -> None:
        """The run's state and what pause / stop / a fatal error asked for."""
        self.state = EngineState.IDLE
        self._stop_reason: str | None = None
        self._fatal: BaseException | None = None
        self._wake: asyncio.Event | None = None
        self._paused = False
        self._stopping = False
        self._cancel_on_stop = True

    def _init_server_tracking(self) -> None:
        """Server-down tracking: since when, the backoff hold, the probe."""
        self._down_since: float | None = None
        self._streak_since: float | None = None   # first failure since the last real answer
        self._unreachable: dict[str, int] = {}     # per item: "unreachable" sends while up
        self._down_streak = 0
        self._hold_until = 0.0
        self._probe_task: asyncio.Task | None = None

    def _init_accounting(self) -> None:
        """Occupancy integrals, counters and latency samples (what :meth:`snapshot` reports)."""
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
        self._samples = LatencySamples()

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
            ttft=summarize(self._samples.ttft, self._pcts),
            ttfot=summarize(self._samples.ttfot, self._pcts),
            itl=self._samples.itl.summary(self._pcts),
            e2e=summarize(self._samples.e2e, self._pcts),
            tpot=summarize(self._samples.tpot, self._pcts),
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
