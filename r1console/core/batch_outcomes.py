"""The batch engine's outcomes: a send's result or error handled (retry, server down, recorded as
failed), the one place a request becomes done (:meth:`_Outcomes._record`: the sink, then the counters),
and the server's up/down tracking with its probe. A mixin of :class:`~r1console.core.batch_engine.BatchEngine`,
which owns the state (declared here for the type checker only).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Sequence

from r1console.core.batch_progress import BatchEvent, EngineState
from r1console.core.batch_record import RequestRecord
from r1console.core.batch_retry import FREE_UNREACHABLE, ErrorKind, RetryPolicy, error_info
from r1console.core.batch_send import Probe, _Retry, _Slot
from r1console.core.stats import Histogram, summarize
from r1console.core.streaming import ChatResult


@dataclass
class LatencySamples:
    """The per-request latencies of the ok records so far, summarised by ``snapshot``: seconds to
    the first token, to the first output (answer) token, end to end, per output token, and the
    inter-token gaps (a histogram: there are many)."""

    ttft: list[float] = field(default_factory=list)
    ttfot: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    itl: Histogram = field(default_factory=Histogram)


class _Outcomes:
    """``BatchEngine``'s outcome handling, recording and server up/down tracking."""

    if TYPE_CHECKING:  # BatchEngine.__init__ sets these; the methods below are BatchEngine's
        policy: RetryPolicy
        state: EngineState
        _classify: Callable[[BaseException], ErrorKind]
        _clock: Callable[[], float]
        _wall: Callable[[], float]
        _rng: random.Random
        _pcts: tuple[float, ...]
        _record_sink: Callable[[RequestRecord], Awaitable[None] | None] | None
        _probe: Probe | None
        _probe_task: asyncio.Task | None
        _retry_heap: list[_Retry]
        _attempts: dict[str, int]
        _outcomes: deque[tuple[_Slot, ChatResult | None, BaseException | None]]
        _recorded: set[str]
        _writes: set[asyncio.Future]
        _unreachable: dict[str, int]
        _stop_reason: str | None
        _fatal: BaseException | None
        _paused: bool
        _stopping: bool
        _down_since: float | None
        _streak_since: float | None
        _down_streak: int
        _hold_until: float
        _ok: int
        _failed: int
        _output_tokens: int
        _last_error: str | None
        _samples: LatencySamples

        def _fill(self) -> None: ...
        def _set_state(self, state: EngineState) -> None: ...
        def _emit(self, event: BatchEvent) -> None: ...
        def _poke(self) -> None: ...

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
            samples = self._samples
            for values, v in ((samples.ttft, rec.ttft_s), (samples.ttfot, rec.ttfot_s), (samples.e2e, rec.e2e_s)):
                if v is not None:
                    values.append(v)
            if tokens > 1 and rec.e2e_s is not None and rec.ttft_s is not None:
                samples.tpot.append((rec.e2e_s - rec.ttft_s) / (tokens - 1))
            self._add_itl(itl_gaps)
        else:
            self._failed += 1
        self._emit(BatchEvent("finished", item_id=rec.id, attempt=rec.attempts, record=rec))

    def _add_itl(self, gaps: Iterable[float]) -> None:
        for g in gaps:
            if g >= 0:
                self._samples.itl.add(g)

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
