"""Latency and throughput statistics for the batch engine, ``r1console sweep`` and the TUI.

Definitions follow ``vllm bench serve`` (docs/facts.md §2.9) so numbers can be compared with it:

* per-request metrics (TTFT, time to first answer token, E2E, TPOT) — one value per request;
  mean, and percentiles by **linear interpolation between closest ranks** (numpy's default,
  which ``vllm bench serve`` uses);
* ITL — the gaps between consecutive token-carrying chunks, **pooled across requests**.
  An R1 batch has millions of them, so :class:`Histogram` keeps them in log-spaced buckets
  (relative error ≤ ``precision``, 0.5 % by default) with an exact count, sum, min and max;
* output token throughput = Σ output tokens / wall time.

Pure: no I/O, no clock (callers pass durations in seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) of ``values`` by linear interpolation (numpy 'linear').
    None for an empty sequence."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    frac = pos - lo
    return float(data[lo] + (data[hi] - data[lo]) * frac)


@dataclass(frozen=True)
class Summary:
    """count, mean, min, max and the chosen percentiles of one metric (seconds)."""

    count: int
    mean: float | None
    min: float | None
    max: float | None
    percentiles: tuple[tuple[float, float | None], ...] = ()

    def p(self, q: float) -> float | None:
        for key, value in self.percentiles:
            if key == q:
                return value
        raise KeyError(f"p{q:g} was not computed (have {[k for k, _ in self.percentiles]})")

    @property
    def p50(self) -> float | None:
        return self.p(50.0)

    @property
    def p90(self) -> float | None:
        return self.p(90.0)

    @property
    def p99(self) -> float | None:
        return self.p(99.0)

    def to_dict(self, scale: float = 1.0, digits: int = 6) -> dict[str, float | int | None]:
        """``{"count", "mean", "min", "max", "p50", …}``; values multiplied by ``scale``
        (1000 for milliseconds)."""

        def s(v: float | None) -> float | None:
            return None if v is None else round(v * scale, digits)

        out: dict[str, float | int | None] = {"count": self.count, "mean": s(self.mean),
                                              "min": s(self.min), "max": s(self.max)}
        for q, v in self.percentiles:
            out[f"p{q:g}"] = s(v)
        return out


EMPTY = Summary(0, None, None, None, tuple((q, None) for q in DEFAULT_PERCENTILES))


def summarize(values: Iterable[float | None],
              percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Summary:
    """Summary of the non-None ``values`` (exact)."""
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return Summary(0, None, None, None, tuple((float(q), None) for q in percentiles))
    return Summary(
        count=len(data),
        mean=math.fsum(data) / len(data),
        min=data[0],
        max=data[-1],
        percentiles=tuple((float(q), percentile(data, q)) for q in percentiles),
    )


class Histogram:
    """Streaming summary of many non-negative values (ITL gaps) in bounded memory.

    Values fall in log-spaced buckets ``[floor·γ^k, floor·γ^(k+1))`` with ``γ = 1 + 2·precision``;
    a percentile is the geometric middle of its bucket, so its relative error is at most
    ``precision``. Values below ``floor`` (default 1 µs) share bucket 0. Count, sum (mean), min
    and max are exact. Percentiles use the nearest-rank definition over buckets, then are
    clamped into [min, max].
    """

    def __init__(self, precision: float = 0.005, floor: float = 1e-6) -> None:
        if not 0 < precision < 0.5:
            raise ValueError("precision must be within (0, 0.5)")
        self.precision = precision
        self.floor = floor
        self._log_gamma = math.log1p(2 * precision)
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min: float | None = None
        self.max: float | None = None

    def _index(self, value: float) -> int:
        if value <= self.floor:
            return 0
        return 1 + int(math.log(value / self.floor) / self._log_gamma)

    def _value(self, index: int) -> float:
        if index == 0:
            return self.floor
        lo = self.floor * math.exp((index - 1) * self._log_gamma)
        hi = lo * math.exp(self._log_gamma)
        return math.sqrt(lo * hi)

    def add(self, value: float) -> None:
        if value < 0 or math.isnan(value):
            raise ValueError(f"histogram values must be >= 0, not {value}")
        i = self._index(value)
        self._buckets[i] = self._buckets.get(i, 0) + 1
        self.count += 1
        self.total += value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def merge(self, other: Histogram) -> None:
        if (other.precision, other.floor) != (self.precision, self.floor):
            raise ValueError("cannot merge histograms of different precision")
        for i, n in other._buckets.items():
            self._buckets[i] = self._buckets.get(i, 0) + n
        self.count += other.count
        self.total += other.total
        for v in (other.min, other.max):
            if v is not None:
                self.min = v if self.min is None else min(self.min, v)
                self.max = v if self.max is None else max(self.max, v)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, not {q}")
        if not self.count:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for i in sorted(self._buckets):
            seen += self._buckets[i]
            if seen >= rank:
                v = self._value(i)
                return min(max(v, self.min), self.max)  # type: ignore[type-var]
        return self.max

    def summary(self, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Summary:
        return Summary(self.count, self.mean, self.min, self.max,
                       tuple((float(q), self.percentile(q)) for q in percentiles))


def throughput(tokens: int | float, seconds: float | None) -> float | None:
    """tokens per second, None when no time has passed."""
    if not seconds or seconds <= 0:
        return None
    return tokens / seconds


def format_seconds(value: float | None, unit: str = "ms") -> str:
    """A latency for a table: ``"123.4"`` in ms (or s), ``"-"`` for None."""
    if value is None:
        return "-"
    if unit == "ms":
        v = value * 1000.0
        return f"{v:.1f}" if v < 10_000 else f"{v:,.0f}"
    return f"{value:.2f}"
