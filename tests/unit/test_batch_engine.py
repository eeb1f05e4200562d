"""The sliding-window engine against in-process fake senders (no HTTP).

Occupancy is asserted from the engine's own accounting and from what the fake server saw
(how many requests it held at once), never from wall time.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from r1console.core.api_errors import (
    AuthError,
    ModelNotFoundError,
    ProtocolError,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
    StreamInterrupted,
)
from r1console.core.batch_engine import (
    BatchEngine,
    EngineState,
    ErrorKind,
    RetryPolicy,
    classify_error,
)
from r1console.core.batch_input import BatchItem
from r1console.core.streaming import StreamAccumulator

FAST = RetryPolicy(max_attempts=4, base_delay=0.002, max_delay=0.01, give_up_after=5.0)


def items(n: int) -> list[BatchItem]:
    return [BatchItem(id=f"q{i}", index=i, messages=({"role": "user", "content": f"question {i}"},))
            for i in range(n)]


def chat_result(item: BatchItem, reasoning_tokens: int = 3, answer_tokens: int = 2, step: float = 0.01):
    """A ChatResult built the way the runner builds one: chunks fed with their times."""
    acc = StreamAccumulator()
    t = 0.1  # TTFT 100 ms, then one token every `step`
    acc.feed({"id": f"chatcmpl-{item.id}", "model": "fake",
              "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, 0.05)
    for k in range(reasoning_tokens):
        acc.feed({"choices": [{"index": 0, "delta": {"reasoning": f"r{k} "}}]}, t)
        t += step
    for k in range(answer_tokens):
        acc.feed({"choices": [{"index": 0, "delta": {"content": f"a{k} "}}]}, t)
        t += step
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, t)
    acc.feed({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": reasoning_tokens + answer_tokens,
                                       "total_tokens": 4 + reasoning_tokens + answer_tokens}}, t)
    acc.mark_done(t)
    return acc.result()


class FakeServer:
    """Holds requests for a per-item duration; counts concurrency; fails on plan."""

    def __init__(self, durations: dict[str, float] | None = None, default: float = 0.01) -> None:
        self.durations = durations or {}
        self.default = default
        self.active = 0
        self.max_active = 0
        self.seen: list[str] = []
        self.completed: list[str] = []
        self.plan: dict[str, list[BaseException | None]] = {}
        self.up = True
        self.active_at_start: list[int] = []

    async def send(self, item: BatchItem, ctx) -> object:
        self.seen.append(item.id)
        if not self.up:
            raise ServerUnreachable("cannot connect: connection refused")
        steps = self.plan.get(item.id)
        if steps:
            exc = steps.pop(0)
            if exc is not None:
                raise exc
        self.active += 1
        self.active_at_start.append(self.active)
        self.max_active = max(self.max_active, self.active)
        try:
            ctx.connected()
            await asyncio.sleep(self.durations.get(item.id, self.default))
            for _ in range(5):
                ctx.chunk(answer=False)
            if not self.up:
                raise StreamInterrupted("the connection was cut mid-stream")
            result = chat_result(item)
            self.completed.append(item.id)
            return result
        finally:
            self.active -= 1


class Sink:
    def __init__(self) -> None:
        self.records = []

    def __call__(self, rec) -> None:
        self.records.append(rec)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]


def heavy_tailed(batch: list[BatchItem], seed: int = 1, scale: float = 0.004) -> dict[str, float]:
    rng = random.Random(seed)
    return {i.id: min(0.25, scale * rng.lognormvariate(1.0, 1.0)) for i in batch}


# -- the sliding window ------------------------------------------------------------------------------

async def test_sliding_window_keeps_n_in_flight_with_heavy_tailed_lengths():
    batch = items(160)
    server = FakeServer(heavy_tailed(batch))
    sink = Sink()
    engine = BatchEngine(batch, server.send, concurrency=8, record=sink, policy=FAST)
    summary = await engine.run()
    assert summary.state is EngineState.FINISHED
    assert sorted(sink.ids) == sorted(i.id for i in batch) and len(sink.ids) == 160
    assert summary.ok == 160 and summary.failed == 0 and summary.in_flight == 0
    # The server held N at once, never more.
    assert server.max_active == 8
    # The engine's own accounting: N in flight the whole time work was waiting.
    assert summary.occupancy_backlogged >= 0.97
    assert summary.mean_in_flight <= 8.0


async def test_window_never_exceeds_concurrency_and_handles_fewer_items_than_slots():
    server = FakeServer()
    summary = await BatchEngine(items(3), server.send, concurrency=16, policy=FAST).run()
    assert summary.ok == 3 and server.max_active == 3


async def test_stats_use_the_stream_timings():
    sink = Sink()
    summary = await BatchEngine(items(10), FakeServer().send, concurrency=4, record=sink, policy=FAST).run()
    assert summary.ttft.p50 == pytest.approx(0.1)
    assert summary.ttfot.p50 == pytest.approx(0.13)     # three reasoning tokens first
    assert summary.itl.count == 10 * 4 and summary.itl.p50 == pytest.approx(0.01, rel=0.01)
    assert summary.e2e.p99 == pytest.approx(0.15)
    assert summary.tpot.mean == pytest.approx((0.15 - 0.1) / 4)
    assert summary.output_tokens == 50
    rec = sink.records[0]
    assert rec.ok and rec.reasoning == "r0 r1 r2 " and rec.content == "a0 a1 "
    assert rec.finish_reason == "stop" and rec.usage["completion_tokens"] == 5
    assert rec.itl["count"] == 4 and rec.response_id.startswith("chatcmpl-") and rec.attempts == 1
    assert summary.live_tokens == 50
    doc = summary.to_json()
    assert doc["requests"]["ok"] == 10 and doc["ttft_ms"]["p50"] == pytest.approx(100.0)


async def test_skip_ids_are_never_sent():
    server = FakeServer()
    sink = Sink()
    summary = await BatchEngine(items(6), server.send, concurrency=2, record=sink,
                                skip_ids={"q1", "q4", "not-an-item"}, policy=FAST).run()
    assert set(server.seen) == {"q0", "q2", "q3", "q5"}
    assert summary.skipped == 2 and summary.ok == 4 and summary.remaining == 0


# -- retries -----------------------------------------------------------------------------------------

async def test_transient_errors_are_retried_and_recorded_once():
    server = FakeServer()
    server.plan = {"q1": [ServerError("503", status=503), StreamInterrupted("cut")],
                   "q2": [ServerTimeout("silent")]}
    sink = Sink()
    events = []
    engine = BatchEngine(items(4), server.send, concurrency=2, record=sink, policy=FAST)
    engine.subscribe(events.append)
    summary = await engine.run()
    assert summary.ok == 4 and summary.failed == 0 and summary.retries == 3
    assert sink.ids.count("q1") == 1 and sink.ids.count("q2") == 1
    by_id = {r.id: r for r in sink.records}
    assert by_id["q1"].attempts == 3 and by_id["q2"].attempts == 2 and by_id["q0"].attempts == 1
    retries = [e for e in events if e.kind == "retry"]
    assert [(e.item_id, e.attempt) for e in retries] == [("q1", 1), ("q2", 1), ("q1", 2)] or \
        sorted((e.item_id, e.attempt) for e in retries) == [("q1", 1), ("q1", 2), ("q2", 1)]
    assert all(0.001 <= e.delay_s <= 0.01 for e in retries)


async def test_retries_give_up_after_max_attempts_and_permanent_errors_fail_at_once():
    server = FakeServer()
    server.plan = {"q0": [ServerError("boom", status=500)] * 10,
                   "q1": [ServerError("the conversation is too long", status=400)]}
    sink = Sink()
    summary = await BatchEngine(items(3), server.send, concurrency=3, record=sink, policy=FAST).run()
    assert summary.state is EngineState.FINISHED
    assert summary.ok == 1 and summary.failed == 2
    by_id = {r.id: r for r in sink.records}
    assert by_id["q0"].attempts == 4 and by_id["q0"].error["message"].startswith("gave up after 4 attempts")
    assert by_id["q0"].error["status"] == 500
    assert by_id["q1"].attempts == 1 and by_id["q1"].error == {
        "message": "the conversation is too long", "status": 400, "type": "ServerError"}
    assert server.seen.count("q0") == 4 and server.seen.count("q1") == 1


async def test_fatal_error_stops_the_run_and_raises():
    server = FakeServer()
    server.plan = {"q3": [AuthError("the server refused the API key (401)", status=401)]}
    sink = Sink()
    engine = BatchEngine(items(40), server.send, concurrency=2, record=sink, policy=FAST)
    with pytest.raises(AuthError):
        await engine.run()
    assert engine.state is EngineState.FAILED
    assert len(server.seen) < 40 and "q3" not in sink.ids
    assert engine.snapshot().stop_reason == "the server refused the API key (401)"


async def test_a_failing_record_sink_stops_everything():
    def sink(rec):
        raise OSError(28, "No space left on device")

    server = FakeServer()
    engine = BatchEngine(items(20), server.send, concurrency=2, record=sink, policy=FAST)
    with pytest.raises(OSError):
        await engine.run()
    assert engine.state is EngineState.FAILED and len(server.seen) < 20


async def test_server_down_waits_without_spending_attempts_then_refills():
    server = FakeServer(default=0.005)
    sink = Sink()
    events = []
    probes = []

    async def probe() -> bool:
        probes.append(server.up)
        return server.up

    engine = BatchEngine(items(30), server.send, concurrency=4, record=sink, probe=probe,
                         policy=RetryPolicy(max_attempts=2, base_delay=0.005, max_delay=0.02, give_up_after=10))
    engine.subscribe(events.append)

    async def outage():
        while len(sink.records) < 8:
            await asyncio.sleep(0.001)
        server.up = False
        await asyncio.sleep(0.15)
        seen_while_down = len(server.seen)
        await asyncio.sleep(0.1)
        assert len(server.seen) == seen_while_down  # nothing sent while down: only probes
        server.up = True

    summary, _ = await asyncio.gather(engine.run(), outage())
    assert summary.state is EngineState.FINISHED and summary.ok == 30 and summary.failed == 0
    assert sorted(sink.ids) == sorted(f"q{i}" for i in range(30))
    kinds = [e.kind for e in events]
    assert "server-down" in kinds and "server-up" in kinds
    assert EngineState.WAITING_SERVER in [e.state for e in events if e.kind == "state"]
    assert False in probes and probes[-1] is True
    assert max(r.attempts for r in sink.records) <= 2  # unreachable sends did not count


async def test_server_down_without_probe_tests_with_one_request():
    server = FakeServer(default=0.005)
    sink = Sink()
    engine = BatchEngine(items(12), server.send, concurrency=4, record=sink,
                         policy=RetryPolicy(max_attempts=2, base_delay=0.005, max_delay=0.01, give_up_after=10))

    async def outage():
        while len(sink.records) < 3:
            await asyncio.sleep(0.001)
        server.up = False
        await asyncio.sleep(0.1)
        server.up = True

    summary, _ = await asyncio.gather(engine.run(), outage())
    assert summary.ok == 12 and summary.failed == 0


async def test_server_gone_for_good_stops_resumably_instead_of_failing_everything():
    server = FakeServer()
    server.up = False
    sink = Sink()
    summary = await BatchEngine(items(10), server.send, concurrency=4, record=sink,
                                policy=RetryPolicy(base_delay=0.005, max_delay=0.02, give_up_after=0.1)).run()
    assert summary.state is EngineState.STOPPED
    assert "unreachable" in summary.stop_reason
    assert sink.records == [] and summary.failed == 0 and summary.remaining == 10


# -- control ---------------------------------------------------------------------------------------

async def test_pause_sends_nothing_new_then_resume_finishes():
    server = FakeServer(default=0.01)
    sink = Sink()
    engine = BatchEngine(items(20), server.send, concurrency=3, record=sink, policy=FAST)

    async def control():
        while len(sink.records) < 5:
            await asyncio.sleep(0.001)
        engine.pause()
        assert engine.state is EngineState.PAUSED
        started = len(server.seen)
        await asyncio.sleep(0.08)
        assert len(server.seen) == started          # nothing new
        assert engine.snapshot().in_flight == 0      # in-flight ones finished …
        assert len(sink.records) == started          # … and were recorded
        engine.resume()

    summary, _ = await asyncio.gather(engine.run(), control())
    assert summary.state is EngineState.FINISHED and summary.ok == 20


async def test_stop_cancels_in_flight_unrecorded_and_a_second_run_completes_exactly_once():
    server = FakeServer(default=0.02)
    sink = Sink()
    engine = BatchEngine(items(30), server.send, concurrency=5, record=sink, policy=FAST)

    async def control():
        while len(sink.records) < 7:
            await asyncio.sleep(0.001)
        engine.stop()

    summary, _ = await asyncio.gather(engine.run(), control())
    assert summary.state is EngineState.STOPPED and summary.in_flight == 0
    first = list(sink.ids)
    assert len(first) == summary.ok < 30 and len(set(first)) == len(first)
    second = BatchEngine(items(30), server.send, concurrency=5, record=sink, skip_ids=first, policy=FAST)
    summary2 = await second.run()
    assert summary2.state is EngineState.FINISHED and summary2.skipped == len(first)
    assert sorted(sink.ids) == sorted(f"q{i}" for i in range(30))  # each exactly once


async def test_stop_with_drain_records_in_flight_requests():
    server = FakeServer(default=0.02)
    sink = Sink()
    engine = BatchEngine(items(30), server.send, concurrency=5, record=sink, policy=FAST)

    async def control():
        while len(sink.records) < 3:
            await asyncio.sleep(0.001)
        engine.stop(drain=True)
        assert engine.state is EngineState.STOPPING

    summary, _ = await asyncio.gather(engine.run(), control())
    assert summary.state is EngineState.STOPPED
    assert len(sink.records) == len(server.completed)   # everything that ran was recorded


async def test_cancelling_run_cancels_requests():
    server = FakeServer(default=1.0)
    engine = BatchEngine(items(10), server.send, concurrency=4, policy=FAST)
    task = asyncio.ensure_future(engine.run())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.state is EngineState.STOPPED and server.active == 0
    with pytest.raises(RuntimeError, match="runs once"):
        await engine.run()


async def test_set_concurrency_widens_the_window():
    server = FakeServer(default=0.01)
    sink = Sink()
    engine = BatchEngine(items(40), server.send, concurrency=2, record=sink, policy=FAST)

    async def control():
        while len(sink.records) < 4:
            await asyncio.sleep(0.001)
        engine.set_concurrency(6)

    await asyncio.gather(engine.run(), control())
    assert server.max_active == 6


def test_constructor_checks():
    with pytest.raises(ValueError):
        BatchEngine(items(2), FakeServer().send, concurrency=0)
    dup = items(2) + [BatchItem(id="q0", index=2, messages=())]
    with pytest.raises(ValueError):
        BatchEngine(dup, FakeServer().send, concurrency=1)


# -- classification and backoff ---------------------------------------------------------------------

@pytest.mark.parametrize("exc, kind", [
    (ServerUnreachable("refused"), ErrorKind.UNREACHABLE),
    (ConnectionRefusedError(), ErrorKind.UNREACHABLE),
    (ServerTimeout("slow"), ErrorKind.TRANSIENT),
    (StreamInterrupted("cut"), ErrorKind.TRANSIENT),
    (ProtocolError("ReadError"), ErrorKind.TRANSIENT),
    (ServerError("x", status=429), ErrorKind.TRANSIENT),
    (ServerError("x", status=503), ErrorKind.TRANSIENT),
    (ServerError("x", status=408), ErrorKind.TRANSIENT),
    (ServerError("mid-stream", status=None), ErrorKind.TRANSIENT),
    (TimeoutError(), ErrorKind.TRANSIENT),
    (ConnectionResetError(), ErrorKind.TRANSIENT),
    (ServerError("x", status=400), ErrorKind.PERMANENT),
    (ValueError("bug"), ErrorKind.PERMANENT),
    (AuthError("key", status=401), ErrorKind.FATAL),
    (ModelNotFoundError("model", status=404), ErrorKind.FATAL),
])
def test_classify_error(exc, kind):
    assert classify_error(exc) is kind


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    rng = random.Random(3)
    for n, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        delays = [policy.backoff(n, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 4  # really jittered


async def test_many_requests_failing_at_once_do_not_inflate_the_backoff():
    """32 requests that all hit a dead server are one outage, not 32: the probe backoff
    starts from base_delay (a regression: it used to jump to max_delay)."""
    server = FakeServer()
    server.up = False
    probes = []

    async def probe() -> bool:
        probes.append(True)
        return False

    engine = BatchEngine(items(64), server.send, concurrency=32, probe=probe,
                         policy=RetryPolicy(base_delay=0.02, max_delay=30.0, give_up_after=0.4))
    summary = await engine.run()
    assert summary.state is EngineState.STOPPED
    assert len(server.seen) == 32          # the first window; nothing more while down
    assert len(probes) >= 3                # 0.01-0.02, 0.02-0.04, 0.04-0.08, … within 0.4 s
    assert summary.waiting_server_s > 0.3
