"""What the simulated engine is calibrated on: the seed's measured decode throughput (a step's duration as a
function of its batch), the seed deployment's KV capacity per GPU, and R1-like output lengths.

The curve: on 16 x H100 with default batching (docs/facts.md §1.6) ``b`` concurrent streams give the
table's tok/s, e.g. 1 -> 10.3 tok/s, 64 -> 607.7, 1024 -> 5834.4, saturating at about 5,836 tok/s.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import dataclass
from typing import Iterable

# Seed (KempnerInstitute/distributed-inference-vllm, generate_fig_2.py): default batching on 16 x H100,
# concurrency -> aggregate output tok/s. Beyond 1024 (vLLM's default max_num_seqs there) it is flat.
SEED_DEFAULT_BATCHING: tuple[tuple[int, float], ...] = (
    (1, 10.3), (2, 19.6), (4, 38.8), (8, 78.4), (16, 155.1), (32, 307.1), (64, 607.7),
    (128, 1164.3), (256, 2251.8), (512, 4008.5), (1024, 5834.4),
)
SEED_SATURATION_TOK_S = 5836.0

# Per-GPU KV capacity of the seed's deployment: "KV Cache 366 GB" over 16 GPUs at 70,272 B/token (BF16
# MLA, replicated on every TP rank; docs/facts.md §0, §1.6) = 325,521 tokens, rounded down to whole 64-token blocks.
DEFAULT_KV_CACHE_TOKENS = 325_504


class DecodeCurve:
    """Duration of one engine step as a function of the number of sequences in it.

    Built from ``(concurrency, tok/s)`` points: with ``b`` sequences each step emits ``b`` tokens, so the
    step lasts ``b / tok_s(b)``. Between points the step time is interpolated linearly in log2(b);
    past the last point it is compute bound: ``b / saturation``.
    """

    def __init__(self, points: Iterable[tuple[int, float]] = SEED_DEFAULT_BATCHING,
                 saturation_tok_s: float = SEED_SATURATION_TOK_S) -> None:
        pts = sorted((int(b), float(t)) for b, t in points)
        if not pts or pts[0][0] != 1 or any(b < 1 or t <= 0 for b, t in pts):
            raise ValueError("decode curve needs positive (concurrency, tok/s) points starting at 1")
        self.points = tuple(pts)
        self.saturation_tok_s = float(saturation_tok_s)
        self._logb = [math.log2(b) for b, _ in pts]
        self._step = [b / t for b, t in pts]
        self._cache: dict[int, float] = {}

    def step_seconds(self, batch: int) -> float:
        if batch <= 0:
            return 0.0
        cached = self._cache.get(batch)
        if cached is not None:
            return cached
        last_b = self.points[-1][0]
        if batch >= last_b:
            value = max(batch / self.saturation_tok_s, self._step[-1] if batch == last_b else 0.0)
        else:
            x = math.log2(batch)
            i = bisect_left(self._logb, x)
            if self._logb[i] == x:
                value = self._step[i]
            else:
                x0, x1 = self._logb[i - 1], self._logb[i]
                y0, y1 = self._step[i - 1], self._step[i]
                value = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        self._cache[batch] = value
        return value

    def throughput(self, batch: int) -> float:
        """Aggregate decode tok/s with ``batch`` sequences running."""
        return batch / self.step_seconds(batch) if batch > 0 else 0.0


@dataclass(frozen=True)
class LengthModel:
    """R1-like output lengths: lognormal reasoning (heavy tail) and a shorter lognormal answer.

    With the defaults the reasoning median is 650 tokens, the mean about 970, p99 about 5,200.
    """

    reasoning_median: float = 650.0
    reasoning_sigma: float = 0.9
    reasoning_min: int = 12
    reasoning_max: int = 32_000
    answer_median: float = 220.0
    answer_sigma: float = 0.6
    answer_min: int = 4
    answer_max: int = 4_000

    def sample(self, rng: random.Random) -> tuple[int, int]:
        r = rng.lognormvariate(math.log(self.reasoning_median), self.reasoning_sigma)
        a = rng.lognormvariate(math.log(self.answer_median), self.answer_sigma)
        return (min(self.reasoning_max, max(self.reasoning_min, int(round(r)))),
                min(self.answer_max, max(self.answer_min, int(round(a)))))


__all__ = ["DEFAULT_KV_CACHE_TOKENS", "SEED_DEFAULT_BATCHING", "SEED_SATURATION_TOK_S", "DecodeCurve", "LengthModel"]
