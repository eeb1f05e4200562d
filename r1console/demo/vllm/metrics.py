"""The engine's Prometheus-shaped counters and histograms (vLLM's bucket bounds), filled as requests run."""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from r1console.demo.vllm.request import SimRequest


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        out, total = [], 0
        for c in self.counts:
            total += c
            out.append(total)
        return out


def buckets_1_2_5(limit: int) -> list[float]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    out, exp = [], 0
    while True:
        for m in (1, 2, 5):
            v = m * 10 ** exp
            if v > limit:
                return out
            out.append(float(v))
        exp += 1


TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
               20.0, 40.0, 80.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                   120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
PREEMPTION_BUCKETS = (1, 2, 3, 4, 5, 10, 20)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


class EngineMetrics:
    """What vLLM's Prometheus logger records, kept as plain numbers (times in simulated seconds)."""

    def __init__(self, max_model_len: int) -> None:
        tok = buckets_1_2_5(max_model_len)
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.num_preemptions = 0
        self.request_success = {reason: 0 for reason in FINISH_REASONS}
        self.h: dict[str, Histogram] = {
            "time_to_first_token_seconds": Histogram(TTFT_BUCKETS),
            "inter_token_latency_seconds": Histogram(ITL_BUCKETS),
            "request_time_per_output_token_seconds": Histogram(ITL_BUCKETS),
            "e2e_request_latency_seconds": Histogram(LATENCY_BUCKETS),
            "request_queue_time_seconds": Histogram(LATENCY_BUCKETS),
            "request_inference_time_seconds": Histogram(LATENCY_BUCKETS),
            "request_prefill_time_seconds": Histogram(LATENCY_BUCKETS),
            "request_decode_time_seconds": Histogram(LATENCY_BUCKETS),
            "request_prompt_tokens": Histogram(tok),
            "request_generation_tokens": Histogram(tok),
            "request_max_num_generation_tokens": Histogram(tok),
            "request_params_max_tokens": Histogram(tok),
            "request_params_n": Histogram(PARAMS_N_BUCKETS),
            "iteration_tokens_total": Histogram(ITERATION_BUCKETS),
            "request_num_preemptions": Histogram(PREEMPTION_BUCKETS),
            "request_prefill_kv_computed_tokens": Histogram(tok),
        }

    def on_finish(self, req: SimRequest) -> None:
        h = self.h
        self.request_success[req.finish_reason] += 1
        end = req.finished_at or 0.0
        first = req.first_token_at if req.first_token_at is not None else end
        sched = req.scheduled_at if req.scheduled_at is not None else req.arrival
        h["e2e_request_latency_seconds"].observe(end - req.arrival)
        h["request_queue_time_seconds"].observe(sched - req.arrival)
        h["request_inference_time_seconds"].observe(end - sched)
        h["request_prefill_time_seconds"].observe(first - sched)
        h["request_decode_time_seconds"].observe(end - first)
        if req.generated > 1:
            h["request_time_per_output_token_seconds"].observe((end - first) / (req.generated - 1))
        h["request_prompt_tokens"].observe(req.prompt_tokens)
        h["request_generation_tokens"].observe(req.generated)
        h["request_max_num_generation_tokens"].observe(req.max_tokens)
        h["request_params_max_tokens"].observe(req.max_tokens)
        h["request_params_n"].observe(1)
        h["request_num_preemptions"].observe(req.num_preemptions)
        h["request_prefill_kv_computed_tokens"].observe(req.prompt_tokens)
