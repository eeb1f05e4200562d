"""Percentiles, summaries and the bounded ITL histogram."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1console.core.stats import Histogram, format_seconds, percentile, summarize, throughput


def test_percentile_linear_interpolation_hand_computed():
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 4.0
    assert percentile(data, 50) == 2.5          # between 2 and 3
    assert percentile(data, 90) == pytest.approx(3.7)   # pos 2.7
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order does not matter


def test_percentile_range_checked():
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=60),
       st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy(values, q):
    np = pytest.importorskip("numpy")
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


def test_summarize_skips_none_and_reports_all_fields():
    s = summarize([0.1, None, 0.3, 0.2])
    assert s.count == 3
    assert s.mean == pytest.approx(0.2)
    assert (s.min, s.max) == (0.1, 0.3)
    assert s.p50 == pytest.approx(0.2)
    assert s.p99 == pytest.approx(0.298)
    d = s.to_dict(scale=1000)
    assert d["count"] == 3 and d["mean"] == pytest.approx(200.0) and d["p90"] == pytest.approx(280.0)
    empty = summarize([None])
    assert empty.count == 0 and empty.mean is None and empty.p50 is None


def test_summary_unknown_percentile_is_an_error():
    with pytest.raises(KeyError):
        summarize([1.0], percentiles=(50,)).p99


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=1e-5, max_value=100.0, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([1.0, 10.0, 50.0, 90.0, 99.0, 100.0]))
def test_histogram_percentile_within_precision_of_nearest_rank(values, q):
    h = Histogram(precision=0.005)
    h.extend(values)
    exact = sorted(values)[max(1, math.ceil(q / 100 * len(values))) - 1]
    assert h.percentile(q) == pytest.approx(exact, rel=0.0051)
    assert h.count == len(values)
    assert h.mean == pytest.approx(sum(values) / len(values))
    assert (h.min, h.max) == (min(values), max(values))


def test_histogram_bounded_memory_and_merge():
    rng = random.Random(7)
    a, b = Histogram(), Histogram()
    values = [rng.lognormvariate(-4, 1) for _ in range(50_000)]
    a.extend(values[:25_000])
    b.extend(values[25_000:])
    a.merge(b)
    assert a.count == 50_000
    assert len(a._buckets) < 3000  # log buckets, not one per value
    exact = sorted(values)[math.ceil(0.99 * len(values)) - 1]
    assert a.percentile(99) == pytest.approx(exact, rel=0.006)
    assert a.summary().p50 == a.percentile(50)


def test_histogram_rejects_negative_and_handles_zero():
    h = Histogram()
    with pytest.raises(ValueError):
        h.add(-1.0)
    h.add(0.0)
    assert h.percentile(50) == 0.0  # clamped to the exact min/max
    assert Histogram().percentile(50) is None
    assert Histogram().summary().count == 0


def test_throughput_and_format():
    assert throughput(100, 4.0) == 25.0
    assert throughput(100, 0) is None
    assert format_seconds(0.1234) == "123.4"
    assert format_seconds(None) == "-"
    assert format_seconds(12.5) == "12,500"
    assert format_seconds(1.5, unit="s") == "1.50"
