"""The simulated engine: throughput against the seed's tables (simulated time only), slots and
queue, KV preemption, R1-like lengths, determinism."""

from __future__ import annotations

import random
import statistics

import pytest

from r1console.demo.vllm.engine import (
    ABORTED,
    ANSWER,
    EOS,
    FINISHED,
    REASONING,
    RUNNING,
    SEED_DEFAULT_BATCHING,
    THINK_END,
    WAITING,
    DecodeCurve,
    EngineConfig,
    LengthModel,
    SimEngine,
    SimRequest,
    buckets_1_2_5,
    simulate_closed_loop,
)

BIG_KV = 50_000_000  # so the throughput checks measure the decode curve, not preemption


def _req(i: int, prompt: int = 20, max_tokens: int = 4096, r: int = 30, a: int = 10, **kw) -> SimRequest:
    return SimRequest(f"r{i}", prompt, max_tokens, r, a, **kw)


def _run_all(eng: SimEngine, limit: int = 1_000_000) -> list:
    steps = []
    while eng.has_work() and len(steps) < limit:
        step = eng.step()
        assert step is not None
        steps.append(step)
    return steps


# ---- throughput vs the seed ---------------------------------------------------------------

def test_decode_curve_reproduces_the_seed_points_exactly():
    curve = DecodeCurve()
    for batch, tok_s in SEED_DEFAULT_BATCHING:
        assert curve.throughput(batch) == pytest.approx(tok_s, rel=1e-9)
    # between points the curve stays between its neighbours, and it saturates past 1024
    assert 607.7 < curve.throughput(100) < 1164.3
    assert curve.throughput(4096) == pytest.approx(5836.0)
    # more sequences never lower the aggregate rate (the per-step time is noisy below 8 in the data)
    assert all(curve.throughput(b) <= curve.throughput(b + 1) + 1e-9 for b in range(1, 3000))
    assert all(curve.step_seconds(b) <= curve.step_seconds(b + 1) for b in range(8, 3000))


@pytest.mark.parametrize("concurrency", [1, 8, 64, 256, 1024])
def test_closed_loop_throughput_follows_the_default_batching_table(concurrency):
    expected = dict(SEED_DEFAULT_BATCHING)[concurrency]
    eng = SimEngine(EngineConfig(kv_cache_tokens=BIG_KV, seed=3))
    result = simulate_closed_loop(eng, concurrency, duration_s=240 if concurrency < 1024 else 120,
                                  warmup_s=20)
    assert result["mean_batch"] == pytest.approx(concurrency, rel=0.01)
    # prefill of the short prompts costs a little; within 5% of the measured table
    assert result["tok_s"] == pytest.approx(expected, rel=0.05)
    assert result["tok_s"] <= expected * 1.001


def test_more_clients_than_slots_saturate_and_queue():
    eng = SimEngine(EngineConfig(kv_cache_tokens=BIG_KV, seed=1))
    result = simulate_closed_loop(eng, 2048, duration_s=60, warmup_s=10)
    assert eng.num_running == 1024 and eng.num_waiting == 1024
    assert result["tok_s"] == pytest.approx(5834.4, rel=0.05)


@pytest.mark.parametrize("max_num_seqs,tok_s", [(8, 76), (32, 300), (64, 607), (112, 1030)])
def test_tuned_max_num_seqs_matches_the_seed_h100_table(max_num_seqs, tok_s):
    """Seed README: 16 x H100 with --max-num-seqs N (and large batched-token budgets)."""
    eng = SimEngine(EngineConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=57344,
                                 kv_cache_tokens=BIG_KV, seed=2))
    result = simulate_closed_loop(eng, max_num_seqs * 2, duration_s=240, warmup_s=20)
    assert result["tok_s"] == pytest.approx(tok_s, rel=0.05)


# ---- slots and queue ---------------------------------------------------------------------

def test_slots_queue_fifo_admission():
    eng = SimEngine(EngineConfig(max_num_seqs=4, kv_cache_tokens=BIG_KV))
    reqs = [_req(i, r=10 + i, a=5) for i in range(10)]
    for r in reqs:
        eng.add_request(r)
    first = eng.step()
    assert first is not None and first.num_seqs == 4
    assert [r.status for r in reqs[:4]] == [RUNNING] * 4
    assert [r.status for r in reqs[4:]] == [WAITING] * 6
    assert (eng.num_running, eng.num_waiting) == (4, 6)
    _run_all(eng)
    assert all(r.status == FINISHED for r in reqs)
    # admitted in arrival order, never more than 4 at once
    assert [r.scheduled_at for r in reqs] == sorted(r.scheduled_at for r in reqs)
    assert reqs[4].scheduled_at >= min(r.finished_at for r in reqs[:4])


def test_the_queue_waits_while_every_slot_is_busy():
    eng = SimEngine(EngineConfig(max_num_seqs=2, kv_cache_tokens=BIG_KV))
    a, b, c = _req(0, r=50), _req(1, r=50), _req(2, r=5)
    for r in (a, b, c):
        eng.add_request(r)
    for _ in range(20):
        eng.step()
        assert c.status == WAITING and eng.num_running == 2
    _run_all(eng)
    assert c.scheduled_at == pytest.approx(min(a.finished_at, b.finished_at))


def test_step_time_grows_with_the_batch():
    durations = {}
    for n in (1, 16, 256):
        eng = SimEngine(EngineConfig(kv_cache_tokens=BIG_KV))
        for i in range(n):
            eng.add_request(_req(i, prompt=1, r=100))
        eng.step()  # prefill step
        durations[n] = eng.step().duration
    assert durations[1] < durations[16] < durations[256]
    assert durations[1] == pytest.approx(1 / 10.3)
    assert durations[256] == pytest.approx(256 / 2251.8)


def test_chunked_prefill_spreads_a_long_prompt_over_steps():
    eng = SimEngine(EngineConfig(max_num_seqs=4, max_num_batched_tokens=1000, kv_cache_tokens=BIG_KV))
    r = _req(0, prompt=3500)
    eng.add_request(r)
    steps = 0
    while r.first_token_at is None:
        eng.step()
        steps += 1
    assert steps == 4  # 1000 + 1000 + 1000 + 500 tokens
    assert r.generated == 1


# ---- output lengths, finish reasons ----------------------------------------------------

def test_natural_end_is_stop_with_think_end_and_eos():
    r = _req(0, r=30, a=10)
    assert (r.output_len, r.finish_reason) == (30 + 1 + 10 + 1, "stop")
    kinds = [r.token_kind(i) for i in range(r.output_len)]
    assert kinds[:30] == [REASONING] * 30 and kinds[30] == THINK_END
    assert kinds[31:41] == [ANSWER] * 10 and kinds[41] == EOS
    assert not r.content_is_null


@pytest.mark.parametrize("max_tokens,null", [(5, True), (30, True), (31, True), (32, False), (41, False)])
def test_max_tokens_caps_with_length_and_null_content_when_cut_while_reasoning(max_tokens, null):
    r = _req(0, r=30, a=10, max_tokens=max_tokens)
    assert (r.output_len, r.finish_reason) == (max_tokens, "length")
    assert r.content_is_null is null
    eng = SimEngine(EngineConfig())
    eng.add_request(r)
    _run_all(eng)
    assert r.generated == max_tokens and r.status == FINISHED
    assert eng.metrics.request_success["length"] == 1


def test_ignore_eos_generates_exactly_max_tokens():
    r = _req(0, r=3, a=2, max_tokens=64, ignore_eos=True)
    assert r.output_len == 64 and r.finish_reason == "length"
    assert EOS not in {r.token_kind(i) for i in range(64)}


def test_reasoning_lengths_are_heavy_tailed_like_r1():
    model = LengthModel()
    rng = random.Random(7)
    samples = [model.sample(rng) for _ in range(20_000)]
    reasoning = sorted(r for r, _ in samples)
    answers = sorted(a for _, a in samples)
    median = statistics.median(reasoning)
    p99 = reasoning[int(0.99 * len(reasoning))]
    assert 550 < median < 750                           # hundreds of tokens typically...
    assert p99 > 3000 and reasoning[-1] > 8 * median    # ...and thousands in the tail
    assert statistics.mean(reasoning) > median * 1.3    # right-skewed
    assert reasoning[0] >= model.reasoning_min and reasoning[-1] <= model.reasoning_max
    assert statistics.median(answers) < median / 2      # answers are shorter than the thinking


# ---- KV cache and preemption -------------------------------------------------------------

def test_a_full_kv_cache_preempts_the_newest_request_and_everything_still_finishes():
    cfg = EngineConfig(max_num_seqs=8, max_num_batched_tokens=2048, max_model_len=1024,
                       kv_cache_tokens=1200, block_size=16)
    eng = SimEngine(cfg)
    reqs = [_req(i, prompt=16, r=200, a=40, max_tokens=1000) for i in range(16)]
    for r in reqs:
        eng.add_request(r)
    peak = 0.0
    while eng.has_work():
        step = eng.step()
        assert step is not None
        assert 0 <= eng.free_blocks <= cfg.num_blocks
        peak = max(peak, eng.kv_usage)
        assert sum(r.blocks for r in eng.running) == cfg.num_blocks - eng.free_blocks
    assert all(r.status == FINISHED and r.generated == r.output_len for r in reqs)
    assert eng.metrics.num_preemptions > 0
    assert sum(r.num_preemptions for r in reqs) == eng.metrics.num_preemptions
    assert peak > 0.9
    assert eng.kv_usage == 0.0


def test_abort_frees_the_slot_and_blocks_and_is_not_a_success():
    eng = SimEngine(EngineConfig(max_num_seqs=1, block_size=16))
    a, b = _req(0, r=100), _req(1, r=5)
    eng.add_request(a)
    eng.add_request(b)
    eng.step()
    assert a.blocks > 0
    assert eng.abort(a) and a.status == ABORTED and a.blocks == 0
    assert eng.abort(a) is False
    _run_all(eng)
    assert b.status == FINISHED
    assert sum(eng.metrics.request_success.values()) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        EngineConfig(max_num_seqs=64, max_num_batched_tokens=32)
    with pytest.raises(ValueError, match="max seq len"):
        EngineConfig(max_model_len=4096, kv_cache_tokens=1000)
    eng = SimEngine(EngineConfig(max_model_len=100, kv_cache_tokens=1000, block_size=16))
    with pytest.raises(ValueError):
        eng.add_request(_req(0, prompt=101, max_tokens=1))


# ---- metrics and determinism ------------------------------------------------------------

def test_metrics_account_for_every_token_and_request():
    eng = SimEngine(EngineConfig(max_num_seqs=3, seed=5))
    reqs = []
    for i in range(7):
        r, a = eng.sample_lengths()
        reqs.append(_req(i, prompt=10 + i, r=r // 20, a=a // 20, max_tokens=60))
        eng.add_request(reqs[-1])
    _run_all(eng)
    m = eng.metrics
    assert m.generation_tokens == sum(r.generated for r in reqs)
    assert m.prompt_tokens == sum(r.prompt_tokens for r in reqs)
    assert m.h["time_to_first_token_seconds"].count == 7
    assert m.h["e2e_request_latency_seconds"].count == 7
    assert m.h["inter_token_latency_seconds"].count == sum(r.generated - 1 for r in reqs)
    assert m.h["request_queue_time_seconds"].sum > 0  # 7 requests on 3 slots: some waited
    assert sum(m.request_success.values()) == 7
    assert buckets_1_2_5(1024)[-3:] == [200.0, 500.0, 1000.0]


def _trace(seed: int) -> list[tuple[float, tuple[str, ...]]]:
    eng = SimEngine(EngineConfig(max_num_seqs=5, seed=seed))
    for i in range(12):
        r, a = eng.sample_lengths()
        eng.add_request(_req(i, prompt=5 + i, r=r // 10, a=a // 10))
    return [(s.end, tuple(r.request_id for r in s.emitted)) for s in _run_all(eng)]


def test_same_seed_same_run_different_seed_different_lengths():
    assert _trace(11) == _trace(11)
    assert _trace(11) != _trace(12)
    eng = SimEngine(EngineConfig(seed=4))
    assert eng.sample_lengths("prompt-a") == SimEngine(EngineConfig(seed=4)).sample_lengths("prompt-a")
    assert eng.sample_lengths("prompt-a") != eng.sample_lengths("prompt-b")
