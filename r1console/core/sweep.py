"""Concurrency sweeps: levels, per-level workload, the seed-style table and its CSV.

``r1console sweep --concurrency 8,32,64,112`` runs the batch engine once per level and reports,
per level, what the seed's README tabulated (concurrency → tokens/s, docs/facts.md §1.6) plus the
latencies ``vllm bench serve`` reports (§2.9). Two throughputs are given:

* ``output tok/s`` — Σ output tokens / wall time of the level (what a batch of this size gets,
  tail included);
* ``steady tok/s`` — tokens streamed while the window was full / that time (the rate *at* this
  concurrency, which is what the seed's table means).

Pure: the command and the TUI run the levels; this module plans and formats them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Sequence

from r1console.core.batch_engine import BatchProgress
from r1console.core.batch_input import BatchItem
from r1console.core.errors import R1Error

# The seed's default-batching measurements on 16 x H100 (docs/facts.md §1.6): concurrency -> tok/s.
SEED_H100X16: dict[int, float] = {
    1: 10.3, 2: 19.6, 4: 38.8, 8: 78.4, 16: 155.1, 32: 307.1, 64: 607.7, 128: 1164.3,
    256: 2251.8, 512: 4008.5, 1024: 5834.4, 1536: 5836.0, 2048: 5836.0,
}

# A built-in prompt set for sweeps without --prompts: short, varied questions like the seed's.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "What are gravitational waves?",
    "Why is the sky blue?",
    "How does a transistor work?",
    "What is the difference between mitosis and meiosis?",
    "Explain the Pythagorean theorem with an example.",
    "How do vaccines train the immune system?",
    "What causes the seasons on Earth?",
    "Why does ice float on water?",
    "How does public-key cryptography work?",
    "What is entropy in thermodynamics?",
    "How do neural networks learn?",
    "What is the greenhouse effect?",
    "Why do stars twinkle?",
    "How does GPS determine position?",
    "What is a black hole?",
    "Prove that there are infinitely many prime numbers.",
    "How does photosynthesis store energy?",
    "What is the central limit theorem?",
    "Why is the speed of light constant?",
    "How do tides work?",
    "What is CRISPR and how is it used?",
    "How does a refrigerator move heat?",
    "What is quantum entanglement?",
    "Why do we have leap years?",
    "How does a compiler turn code into machine instructions?",
    "What is the Doppler effect?",
    "How are rainbows formed?",
    "What is the halting problem?",
    "How does the heart pump blood?",
    "Why are some materials superconducting?",
    "What limits the efficiency of solar cells?",
    "How do earthquakes happen?",
)


def parse_levels(text: str) -> list[int]:
    """``"8,32,64,112"`` → ``[8, 32, 64, 112]`` (sorted, duplicates dropped)."""
    levels = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            raise R1Error(f"--concurrency {text!r}: {part!r} is not a whole number",
                          hint="e.g. --concurrency 8,32,64,112") from None
        if n < 1:
            raise R1Error(f"--concurrency {text!r}: levels must be at least 1, got {n}")
        levels.add(n)
    if not levels:
        raise R1Error(f"--concurrency {text!r}: no levels given", hint="e.g. --concurrency 8,32,64,112")
    return sorted(levels)


def default_prompt_items() -> list[BatchItem]:
    return [BatchItem(id=f"p{i + 1}", index=i, messages=({"role": "user", "content": q},))
            for i, q in enumerate(DEFAULT_PROMPTS)]


def requests_for_level(concurrency: int, requests: int | None, factor: int = 3, minimum: int = 24) -> int:
    """How many requests a level sends: ``requests`` if given, else ``factor × concurrency``
    (at least ``minimum``): enough for the window to stay full most of the level."""
    if requests is not None:
        return requests
    return max(minimum, factor * concurrency)


def level_items(prompts: Sequence[BatchItem], n: int) -> list[BatchItem]:
    """``n`` requests cycling through ``prompts`` (ids made unique: ``tag#k``)."""
    if not prompts:
        raise R1Error("the sweep has no prompts")
    out = []
    for k in range(n):
        src = prompts[k % len(prompts)]
        rnd = k // len(prompts)
        out.append(BatchItem(id=src.id if rnd == 0 else f"{src.id}#{rnd}", index=k,
                             messages=src.messages, params=src.params, model=src.model))
    return out


@dataclass(frozen=True)
class SweepRow:
    concurrency: int
    summary: BatchProgress

    def as_dict(self) -> dict[str, Any]:
        s = self.summary

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return {
            "concurrency": self.concurrency,
            "requests_ok": s.ok,
            "requests_failed": s.failed,
            "output_tokens": s.output_tokens,
            "wall_time_s": round(s.elapsed_s, 3),
            "output_tok_s": _r(s.output_tok_s),
            "steady_tok_s": _r(s.steady_tok_s),
            "request_per_s": _r(s.request_per_s, 4),
            "ttft_p50_ms": ms(s.ttft.p50), "ttft_p99_ms": ms(s.ttft.p99),
            "ttfot_p50_ms": ms(s.ttfot.p50), "ttfot_p99_ms": ms(s.ttfot.p99),
            "itl_p50_ms": ms(s.itl.p50), "itl_p99_ms": ms(s.itl.p99),
            "e2e_p50_ms": ms(s.e2e.p50), "e2e_p99_ms": ms(s.e2e.p99),
            "tpot_mean_ms": ms(s.tpot.mean),
            "occupancy": _r(s.occupancy_backlogged, 4),
            "seed_h100x16_tok_s": SEED_H100X16.get(self.concurrency),
            "state": s.state.value,
        }


def _r(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


CSV_COLUMNS = ("concurrency", "requests_ok", "requests_failed", "output_tokens", "wall_time_s",
               "output_tok_s", "steady_tok_s", "request_per_s", "ttft_p50_ms", "ttft_p99_ms",
               "ttfot_p50_ms", "ttfot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
               "tpot_mean_ms", "occupancy", "seed_h100x16_tok_s", "state")


def sweep_csv(rows: Sequence[SweepRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        d = row.as_dict()
        writer.writerow({k: "" if d[k] is None else d[k] for k in CSV_COLUMNS})
    return buf.getvalue()


TABLE_HEADER = ("conc", "ok", "fail", "out tok/s", "steady tok/s", "req/s", "TTFT p50", "TTFT p99",
                "answer p50", "ITL p50", "ITL p99", "E2E p50", "E2E p99", "occ %")
TABLE_NOTE = "TTFT, first answer token (after reasoning) and ITL in ms; E2E in s; occ = slot occupancy"


def table_rows(rows: Sequence[SweepRow], *, compare_seed: bool = False) -> list[tuple[str, ...]]:
    """The seed-style table as strings (the command renders it with rich)."""

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    out = []
    for row in rows:
        s = row.summary
        occ = s.occupancy_backlogged
        cells = [
            str(row.concurrency), str(s.ok), str(s.failed),
            f(s.output_tok_s, ",.1f"), f(s.steady_tok_s, ",.1f"), f(s.request_per_s, ".2f"),
            f(_ms(s.ttft.p50), ",.0f"), f(_ms(s.ttft.p99), ",.0f"), f(_ms(s.ttfot.p50), ",.0f"),
            f(_ms(s.itl.p50), ".1f"), f(_ms(s.itl.p99), ".1f"),
            f(s.e2e.p50, ".1f"), f(s.e2e.p99, ".1f"),
            f(None if occ is None else occ * 100, ".1f"),
        ]
        if compare_seed:
            cells.append(f(SEED_H100X16.get(row.concurrency), ",.1f"))
        out.append(tuple(cells))
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000
