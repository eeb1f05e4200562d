"""One ``/metrics`` for a deployment: the Prometheus text of every replica, merged.

Series with the same name and labels are summed (counters, histogram buckets/sums/counts and
request gauges add up across replicas); fraction gauges (names ending in ``_perc`` or
``_usage``, e.g. ``vllm:kv_cache_usage_perc``) are averaged. ``# HELP``/``# TYPE`` appear once
per family, families in first-seen order. ``extra`` appends the endpoint's own series.
"""

from __future__ import annotations

import math

from r1console.core.prometheus import MetricSet, parse_metrics

_FRACTION_SUFFIXES = ("_perc", "_usage", "_ratio")


def _family(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(value)


def merge_metric_sets(sets: list[MetricSet]) -> str:
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for ms in sets:
        for k, v in ms.types.items():
            types.setdefault(k, v)
        for k, v in ms.help.items():
            helps.setdefault(k, v)
    order: list[str] = []                    # families in first-seen order
    series: dict[str, dict[tuple, list[float]]] = {}
    names_of: dict[str, list[str]] = {}
    for ms in sets:
        for s in ms.samples:
            fam = _family(s.name, types)
            if fam not in series:
                series[fam] = {}
                names_of[fam] = []
                order.append(fam)
            if s.name not in names_of[fam]:
                names_of[fam].append(s.name)
            key = (s.name, tuple(sorted(s.labels.items())))
            series[fam].setdefault(key, []).append(s.value)
    out: list[str] = []
    for fam in order:
        if fam in helps:
            out.append(f"# HELP {fam} {helps[fam]}")
        if fam in types:
            out.append(f"# TYPE {fam} {types[fam]}")
        fraction = types.get(fam) == "gauge" and fam.endswith(_FRACTION_SUFFIXES)
        for (name, labels), values in series[fam].items():
            value = sum(values) / len(values) if fraction else sum(values)
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{name}{{{label_text}}} {_format_value(value)}" if label_text
                       else f"{name} {_format_value(value)}")
    return "\n".join(out) + ("\n" if out else "")


def merge_metrics(texts: list[str], extra: str = "") -> str:
    """Merge the ``/metrics`` bodies of several replicas (MetricsParseError on a bad body)."""
    merged = merge_metric_sets([parse_metrics(t) for t in texts])
    return merged + extra


__all__ = ["merge_metric_sets", "merge_metrics"]
