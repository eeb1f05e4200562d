"""Prometheus text parsing and vLLM's /metrics snapshot, on real vLLM 0.32 scrapes.

Older vLLM versions are tested by renaming series in the real scrape the way those versions
named them (docs/facts.md §2.6), so the format stays real.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from _fake_openai import capture_body
from r1console.core.prometheus import (
    Histogram,
    MetricsParseError,
    ServerMetrics,
    parse_metrics,
    rates,
)

UNDER_LOAD = capture_body("metrics_under_load.txt")
AFTER_LOAD = capture_body("metrics_after_load.txt")
KV4M = capture_body("metrics_under_load_kv4M.txt")


def drop_metric(text: str, name: str) -> str:
    """Remove every line (samples and comments) of a metric family from a scrape."""
    pat = re.compile(rf"^(# (HELP|TYPE) )?{re.escape(name)}(_bucket|_sum|_count|_created)?[ {{]")
    return "\n".join(line for line in text.splitlines() if not pat.match(line)) + "\n"


def test_real_scrape_under_load():
    m = ServerMetrics.from_text(UNDER_LOAD, at=5.0)
    assert m.is_vllm
    assert (m.running, m.waiting) == (8.0, 8.0)
    assert m.kv_cache_usage == pytest.approx(0.0008240201884945897)
    assert m.kv_cache_metric == "vllm:kv_cache_usage_perc"
    assert (m.prompt_tokens_total, m.generation_tokens_total) == (182.0, 106.0)
    assert m.preemptions_total == 0.0
    assert dict(m.requests_finished) == {"stop": 3.0, "length": 2.0, "abort": 0.0, "error": 0.0,
                                         "repetition": 0.0}
    assert m.ttft.count == 13 and m.ttft.sum == pytest.approx(1.1251885890960693)
    assert m.itl_metric == "vllm:inter_token_latency_seconds" and m.itl.count == 101
    assert m.e2e is not None and m.e2e.count == m.e2e.buckets[-1][1]
    assert m.model_names == ("tiny-r1",)
    assert m.at == 5.0


def test_real_scrape_with_a_small_kv_cache():
    m = ServerMetrics.from_text(KV4M)
    assert m.kv_cache_usage == pytest.approx(0.21621621621621623)
    assert 0.0 <= m.kv_cache_usage <= 1.0  # a fraction despite "perc" in the name


def test_kv_cache_falls_back_to_gpu_cache_usage_perc():
    old = UNDER_LOAD.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # vLLM <= 0.8
    m = ServerMetrics.from_text(old)
    assert m.kv_cache_metric == "vllm:gpu_cache_usage_perc"
    assert m.kv_cache_usage == pytest.approx(0.0008240201884945897)


def test_kv_cache_prefers_the_new_name_when_both_exist():
    # 0.9–0.10 export both; the deprecated one is given a different value here to tell them apart.
    both = UNDER_LOAD + 'vllm:gpu_cache_usage_perc{engine="0",model_name="tiny-r1"} 0.5\n'
    m = ServerMetrics.from_text(both)
    assert m.kv_cache_metric == "vllm:kv_cache_usage_perc"
    assert m.kv_cache_usage == pytest.approx(0.0008240201884945897)


def test_itl_falls_back_to_time_per_output_token_seconds():
    # vLLM <= 0.9 had only time_per_output_token_seconds.
    old = UNDER_LOAD.replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
    m = ServerMetrics.from_text(old)
    assert m.itl_metric == "vllm:time_per_output_token_seconds"
    assert m.itl.count == 101


def test_itl_prefers_inter_token_latency_when_both_exist():
    # 0.10–0.14 export both names; make the old one differ to tell them apart.
    old_copy = "\n".join(
        line.replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
        .replace("} 101.0", "} 7.0")
        for line in UNDER_LOAD.splitlines() if "vllm:inter_token_latency_seconds" in line)
    m = ServerMetrics.from_text(UNDER_LOAD + old_copy + "\n")
    assert m.itl_metric == "vllm:inter_token_latency_seconds" and m.itl.count == 101


def test_missing_metrics_are_none_not_zero():
    text = drop_metric(drop_metric(UNDER_LOAD, "vllm:kv_cache_usage_perc"), "vllm:inter_token_latency_seconds")
    m = ServerMetrics.from_text(text)
    assert m.kv_cache_usage is None and m.kv_cache_metric is None
    assert m.itl is None and m.itl_metric is None
    assert m.running == 8.0


def test_a_non_vllm_server():
    text = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 3\n"
    m = ServerMetrics.from_text(text)
    assert not m.is_vllm
    assert m.running is None and m.ttft is None and m.requests_finished == {}


def test_series_of_several_engines_are_summed_and_kv_usage_averaged():
    engine1 = "\n".join(line.replace('engine="0"', 'engine="1"') for line in UNDER_LOAD.splitlines()
                        if line.startswith("vllm:") and 'engine="0"' in line)
    engine1 = engine1.replace('vllm:kv_cache_usage_perc{engine="1",model_name="tiny-r1"} 0.0008240201884945897',
                              'vllm:kv_cache_usage_perc{engine="1",model_name="tiny-r1"} 0.5008240201884946')
    m = ServerMetrics.from_text(UNDER_LOAD + engine1 + "\n")
    assert m.running == 16.0 and m.generation_tokens_total == 212.0
    assert m.kv_cache_usage == pytest.approx((0.0008240201884945897 + 0.5008240201884946) / 2)
    assert m.ttft.count == 26


def test_model_filter():
    assert ServerMetrics.from_text(UNDER_LOAD, model="tiny-r1").running == 8.0
    other = ServerMetrics.from_text(UNDER_LOAD, model="other")
    assert other.running is None and other.ttft is None


def test_parser_details():
    ms = parse_metrics(
        '# HELP x_total A "quoted" help\\nline\n'
        "# TYPE x_total counter\n"
        'x_total{path="/v1",q="a\\"b\\\\c\\nd",} 1e+09 1700000000000\n'
        "up 1\n"
        "g +Inf\n"
        "h -Inf\n"
        "n NaN\n"
        "# EOF\n"
    )
    (s,) = ms.get("x_total")
    assert s.labels == {"path": "/v1", "q": 'a"b\\c\nd'}
    assert s.value == 1e9
    assert ms.types["x_total"] == "counter"
    assert ms.help["x_total"] == 'A "quoted" help\nline'
    assert ms.value("up") == 1.0
    assert math.isinf(ms.value("g")) and ms.value("h") < 0 and math.isnan(ms.value("n"))
    assert ms.value("absent") is None
    assert ms.get("x_total", path="/v1") == [s] and ms.get("x_total", path="/v2") == []


@pytest.mark.parametrize("line", ["garbage line here", 'x{a="unterminated} 1', "x notanumber"])
def test_parse_errors_name_the_line(line):
    with pytest.raises(MetricsParseError, match="metrics line 2"):
        parse_metrics("ok 1\n" + line + "\n")


def test_quantile_of_the_real_ttft_histogram():
    ttft = ServerMetrics.from_text(UNDER_LOAD).ttft
    # 13 observations: 6 are <= 0.08 s (and <= 0.1 s), all 13 <= 0.25 s.
    # The median (rank 6.5) is in (0.1, 0.25]: 0.1 + 0.15 * 0.5/7.
    assert ttft.quantile(0.5) == pytest.approx(0.1 + 0.15 * 0.5 / 7)
    assert ttft.quantile(1.0) == pytest.approx(0.25)
    assert ttft.quantile(0.0) == pytest.approx(0.01)  # lower edge of the first non-empty bucket
    assert ttft.mean == pytest.approx(1.1251885890960693 / 13)


def test_quantile_edge_cases():
    inf = float("inf")
    h = Histogram("h", ((1.0, 0.0), (2.0, 2.0), (inf, 10.0)), sum=50.0, count=10.0)
    assert h.quantile(0.9) == 2.0            # rank in the +Inf bucket → highest finite bound
    assert h.quantile(0.1) == pytest.approx(1.5)
    empty = Histogram("e", ((1.0, 0.0), (inf, 0.0)), sum=0.0, count=0.0)
    assert empty.quantile(0.5) is None and empty.mean is None
    with pytest.raises(ValueError):
        h.quantile(1.5)


def test_quantile_estimate_lies_in_the_bucket_of_the_true_quantile():
    rng = random.Random(7)
    bounds = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf")]
    obs = sorted(rng.lognormvariate(-2.5, 1.0) for _ in range(2000))
    buckets = tuple((b, float(sum(1 for o in obs if o <= b))) for b in bounds)
    h = Histogram("x", buckets, sum=sum(obs), count=len(obs))
    for q in (0.1, 0.5, 0.9, 0.99):
        true = obs[math.ceil(q * len(obs)) - 1]
        upper = next(b for b in bounds if true <= b)
        lower = max([0.0] + [b for b in bounds if b < upper])
        est = h.quantile(q)
        assert lower <= est <= (upper if math.isfinite(upper) else lower), (q, true, est)


def test_rates_between_two_real_scrapes():
    before = ServerMetrics.from_text(UNDER_LOAD, at=100.0)
    after = ServerMetrics.from_text(AFTER_LOAD, at=110.0)
    r = rates(before, after)
    assert r.interval_s == 10.0
    assert r.generation_tok_s == pytest.approx((2121 - 106) / 10)
    assert r.prompt_tok_s == pytest.approx((327 - 182) / 10)
    assert r.preemptions == 0.0
    assert r.requests_finished == sum(after.requests_finished.values()) - sum(before.requests_finished.values())
    assert r.ttft.count == after.ttft.count - before.ttft.count == 8
    assert r.ttft.buckets[-1][1] == 8
    assert r.itl.count == after.itl.count - before.itl.count


def test_rates_after_a_server_restart_count_from_zero():
    before = ServerMetrics.from_text(AFTER_LOAD, at=0.0)
    after = ServerMetrics.from_text(UNDER_LOAD, at=2.0)  # counters went down: a new server
    r = rates(before, after)
    assert r.generation_tok_s == pytest.approx(106 / 2)
    assert r.ttft.count == after.ttft.count


def test_rates_need_time_to_pass():
    m = ServerMetrics.from_text(UNDER_LOAD, at=1.0)
    with pytest.raises(ValueError):
        rates(m, m)
