"""Prometheus text exposition parser and vLLM's ``/metrics`` snapshot.

:func:`parse_metrics` reads the text format (``# HELP``/``# TYPE`` lines, ``name{labels} value
[timestamp]`` samples, label escapes, ``+Inf``/``-Inf``/``NaN``) into :class:`MetricSet`.

:class:`ServerMetrics` picks what the console shows out of vLLM's ~600 lines, across versions
(the renames are in :mod:`r1console.core.vllm_versions`):

* running / waiting requests: ``vllm:num_requests_running`` / ``vllm:num_requests_waiting``;
* KV-cache usage, a fraction 0–1: ``vllm:kv_cache_usage_perc`` (0.9+), falling back to
  ``vllm:gpu_cache_usage_perc`` (≤0.8; deprecated 0.9–0.10, hidden in 0.11, gone in 0.12);
* token totals: ``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total`` (counters are
  exposed with ``_total`` in every version; the bare name is accepted as well);
* preemptions: ``vllm:num_preemptions_total``; finished requests by reason:
  ``vllm:request_success_total{finished_reason=…}``;
* histograms: TTFT ``vllm:time_to_first_token_seconds``; ITL ``vllm:inter_token_latency_seconds``
  (0.10+) falling back to ``vllm:time_per_output_token_seconds`` (≤0.14); E2E
  ``vllm:e2e_request_latency_seconds``.

Series of one metric with different label sets (several engines with data parallelism) are
summed. :func:`rates` turns two snapshots into per-second rates (for the TUI sparkline) and
window histograms (quantiles over just that interval).

Pure: text in, values out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from r1console.core import vllm_versions as vv
from r1console.core.errors import R1Error

# Names, in preference order (first present wins).
RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
KV_CACHE_USAGE = (vv.KV_CACHE_USAGE, vv.GPU_CACHE_USAGE)
PROMPT_TOKENS = ("vllm:prompt_tokens_total", "vllm:prompt_tokens")
GENERATION_TOKENS = ("vllm:generation_tokens_total", "vllm:generation_tokens")
PREEMPTIONS = ("vllm:num_preemptions_total", "vllm:num_preemptions")
REQUEST_SUCCESS = ("vllm:request_success_total", "vllm:request_success")
TTFT = ("vllm:time_to_first_token_seconds",)
ITL = (vv.INTER_TOKEN_LATENCY, vv.TIME_PER_OUTPUT_TOKEN)
E2E = ("vllm:e2e_request_latency_seconds",)


class MetricsParseError(R1Error):
    """The /metrics body is not Prometheus text."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"^(?P<name>{_NAME})\s*(?:\{{(?P<labels>.*)\}})?\s+(?P<rest>\S.*)$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parse_labels(text: str, lineno: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m:
            raise MetricsParseError(f"metrics line {lineno}: cannot read labels {{{text}}}")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def _parse_value(text: str, lineno: int) -> float:
    try:
        return float(text)  # float() accepts +Inf, -Inf, NaN, 1e+09
    except ValueError:
        raise MetricsParseError(f"metrics line {lineno}: {text!r} is not a number") from None


@dataclass
class MetricSet:
    """All samples of one scrape, with the ``# TYPE`` and ``# HELP`` of each family."""

    samples: list[Sample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_name: dict[str, list[Sample]] = {}
        for s in self.samples:
            self._by_name.setdefault(s.name, []).append(s)

    def names(self) -> set[str]:
        return set(self._by_name)

    def has(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str, **match: str) -> list[Sample]:
        """Samples called ``name`` whose labels include every ``match`` pair."""
        return [s for s in self._by_name.get(name, ())
                if all(s.labels.get(k) == v for k, v in match.items())]

    def value(self, name: str, **match: str) -> float | None:
        """Sum over the matching series, or None when the metric is absent."""
        found = self.get(name, **match)
        if not found:
            return None
        return sum(s.value for s in found)

    def first_value(self, names: Iterable[str], **match: str) -> tuple[str, float] | None:
        """``(name, value)`` of the first name present (fallback chains), else None."""
        for name in names:
            v = self.value(name, **match)
            if v is not None:
                return name, v
        return None

    def by_label(self, name: str, label: str, **match: str) -> dict[str, float]:
        """Sum of the series per value of ``label`` (e.g. finished_reason → count)."""
        out: dict[str, float] = {}
        for s in self.get(name, **match):
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
        return out

    def histogram(self, base: str, **match: str) -> Histogram | None:
        """The histogram ``base`` (``_bucket``/``_sum``/``_count``), summed over series."""
        buckets: dict[float, float] = {}
        for s in self.get(base + "_bucket", **match):
            le = s.labels.get("le")
            if le is None:
                continue
            bound = float(le)
            buckets[bound] = buckets.get(bound, 0.0) + s.value
        if not buckets:
            return None
        total = self.value(base + "_sum", **match)
        count = self.value(base + "_count", **match)
        pairs = tuple(sorted(buckets.items()))
        if count is None:
            count = pairs[-1][1]
        return Histogram(name=base, buckets=pairs, sum=total or 0.0, count=count)

    def first_histogram(self, names: Iterable[str], **match: str) -> Histogram | None:
        for name in names:
            h = self.histogram(name, **match)
            if h is not None:
                return h
        return None


def parse_metrics(text: str) -> MetricSet:
    """Parse Prometheus text exposition format (version 0.0.4, also OpenMetrics-ish ``# EOF``)."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].strip().split(None, 2)
            if len(parts) >= 2 and parts[0] == "TYPE":
                types[parts[1]] = parts[2].strip() if len(parts) > 2 else "untyped"
            elif len(parts) >= 2 and parts[0] == "HELP":
                helps[parts[1]] = _unescape(parts[2]) if len(parts) > 2 else ""
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise MetricsParseError(f"metrics line {lineno}: not a Prometheus sample: {raw[:120]!r}")
        labels = _parse_labels(m.group("labels"), lineno) if m.group("labels") else {}
        value_text = m.group("rest").split()[0]  # a trailing timestamp is ignored
        samples.append(Sample(m.group("name"), labels, _parse_value(value_text, lineno)))
    return MetricSet(samples=samples, types=types, help=helps)


@dataclass(frozen=True)
class Histogram:
    """A cumulative histogram: ``buckets`` are ``(upper_bound, cumulative_count)``, sorted,
    the last bound normally ``+inf``."""

    name: str
    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """Estimate the q-quantile (0 ≤ q ≤ 1) like PromQL ``histogram_quantile``: linear
        interpolation inside the bucket that holds the rank; a rank in the ``+Inf`` bucket
        returns the highest finite bound. None when the histogram is empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        if not self.buckets:
            return None
        total = self.buckets[-1][1]
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for bound, cum in self.buckets:
            if cum >= rank and cum > lower_count:
                if math.isinf(bound):
                    return lower_bound
                if bound <= 0:
                    return bound
                fraction = (rank - lower_count) / (cum - lower_count)
                return lower_bound + (bound - lower_bound) * fraction
            lower_bound, lower_count = bound, cum
        return lower_bound

    def delta(self, earlier: Histogram | None) -> Histogram:
        """The observations made since ``earlier`` (same bucket bounds). If the counts went
        down (server restart) or the bounds differ, this histogram is returned whole."""
        if earlier is None or [b for b, _ in earlier.buckets] != [b for b, _ in self.buckets]:
            return self
        if self.count < earlier.count:
            return self
        buckets = tuple((b, max(0.0, c - ec)) for (b, c), (_, ec) in zip(self.buckets, earlier.buckets))
        return Histogram(self.name, buckets, self.sum - earlier.sum, self.count - earlier.count)


@dataclass(frozen=True)
class ServerMetrics:
    """What the console shows from one ``/metrics`` scrape. ``None`` means the server does not
    export that value (another vLLM version, or not vLLM at all).

    ``at`` is the caller's clock (``time.monotonic()``) at the scrape; :func:`rates` uses it.
    """

    at: float
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None          # fraction 0..1
    kv_cache_metric: str | None = None           # which name it came from
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    preemptions_total: float | None = None
    requests_finished: Mapping[str, float] = field(default_factory=dict)  # finished_reason → n
    ttft: Histogram | None = None
    itl: Histogram | None = None
    itl_metric: str | None = None
    e2e: Histogram | None = None
    model_names: tuple[str, ...] = ()

    @property
    def is_vllm(self) -> bool:
        """True when the scrape looked like vLLM's (any of the core gauges was present)."""
        return self.running is not None or self.waiting is not None

    @classmethod
    def from_metric_set(cls, ms: MetricSet, *, at: float = 0.0, model: str | None = None) -> ServerMetrics:
        match = {"model_name": model} if model else {}

        def pick(names: tuple[str, ...]) -> tuple[str | None, float | None]:
            found = ms.first_value(names, **match)
            return (found[0], found[1]) if found else (None, None)

        kv_name, kv = pick(KV_CACHE_USAGE)
        if kv is not None and kv_name:
            # Per-engine fractions are averaged, not summed.
            n = len(ms.get(kv_name, **match))
            kv = kv / n if n > 1 else kv
        itl = ms.first_histogram(ITL, **match)
        success_name = next((n for n in REQUEST_SUCCESS if ms.has(n)), None)
        models = sorted({s.labels["model_name"] for s in ms.samples
                         if s.name.startswith("vllm:") and "model_name" in s.labels})
        return cls(
            at=at,
            running=pick(RUNNING)[1],
            waiting=pick(WAITING)[1],
            kv_cache_usage=kv,
            kv_cache_metric=kv_name,
            prompt_tokens_total=pick(PROMPT_TOKENS)[1],
            generation_tokens_total=pick(GENERATION_TOKENS)[1],
            preemptions_total=pick(PREEMPTIONS)[1],
            requests_finished=(ms.by_label(success_name, "finished_reason", **match)
                               if success_name else {}),
            ttft=ms.first_histogram(TTFT, **match),
            itl=itl,
            itl_metric=itl.name if itl else None,
            e2e=ms.first_histogram(E2E, **match),
            model_names=tuple(models),
        )

    @classmethod
    def from_text(cls, text: str, *, at: float = 0.0, model: str | None = None) -> ServerMetrics:
        """Parse a ``/metrics`` body. ``model`` keeps only series with that ``model_name``."""
        return cls.from_metric_set(parse_metrics(text), at=at, model=model)


@dataclass(frozen=True)
class Rates:
    """Change between two scrapes, per second of the caller's clock."""

    interval_s: float
    prompt_tok_s: float | None
    generation_tok_s: float | None
    preemptions: float | None          # preemptions during the interval
    requests_finished: float | None    # requests finished (any reason) during the interval
    ttft: Histogram | None             # observations made during the interval only
    itl: Histogram | None


def _increase(prev: float | None, cur: float | None) -> float | None:
    """Counter increase with Prometheus reset semantics (a drop means the server restarted)."""
    if prev is None or cur is None:
        return None
    return cur - prev if cur >= prev else cur


def rates(prev: ServerMetrics, cur: ServerMetrics) -> Rates:
    """Per-second rates from ``prev`` to ``cur`` (``cur.at`` must be later than ``prev.at``)."""
    interval = cur.at - prev.at
    if interval <= 0:
        raise ValueError(f"the second scrape must be later than the first (interval {interval} s)")

    def per_s(a: float | None, b: float | None) -> float | None:
        inc = _increase(a, b)
        return inc / interval if inc is not None else None

    finished = None
    if cur.requests_finished:
        finished = _increase(sum(prev.requests_finished.values()) if prev.requests_finished else None,
                             sum(cur.requests_finished.values()))
    return Rates(
        interval_s=interval,
        prompt_tok_s=per_s(prev.prompt_tokens_total, cur.prompt_tokens_total),
        generation_tok_s=per_s(prev.generation_tokens_total, cur.generation_tokens_total),
        preemptions=_increase(prev.preemptions_total, cur.preemptions_total),
        requests_finished=finished,
        ttft=cur.ttft.delta(prev.ttft) if cur.ttft else None,
        itl=cur.itl.delta(prev.itl) if cur.itl else None,
    )
