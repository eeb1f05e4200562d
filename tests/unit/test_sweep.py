"""Sweep planning and formatting (levels, per-level requests, CSV, table, plot)."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from r1console.commands.sweep import render_plot
from r1console.core.batch_engine import BatchEngine, EngineState, RetryPolicy
from r1console.core.batch_input import BatchItem
from r1console.core.errors import R1Error
from r1console.core.streaming import StreamAccumulator
from r1console.core.sweep import (
    CSV_COLUMNS,
    SEED_H100X16,
    TABLE_HEADER,
    SweepRow,
    default_prompt_items,
    level_items,
    parse_levels,
    requests_for_level,
    sweep_csv,
    table_rows,
)


def test_parse_levels():
    assert parse_levels("64, 8,32,8,") == [8, 32, 64]
    for bad, msg in (("8,x", "'x' is not a whole number"), ("0,8", "at least 1"), (",", "no levels")):
        with pytest.raises(R1Error, match=msg):
            parse_levels(bad)


def test_requests_per_level_and_cycled_unique_items():
    assert requests_for_level(4, None) == 24
    assert requests_for_level(64, None) == 192
    assert requests_for_level(64, 10) == 10
    prompts = default_prompt_items()[:3]
    got = level_items(prompts, 7)
    assert [i.id for i in got] == ["p1", "p2", "p3", "p1#1", "p2#1", "p3#1", "p1#2"]
    assert [i.index for i in got] == list(range(7))
    assert got[3].messages == prompts[0].messages
    with pytest.raises(R1Error):
        level_items([], 3)


async def _send(item, ctx):
    acc = StreamAccumulator()
    await asyncio.sleep(0.005)
    for k, t in enumerate((0.1, 0.11, 0.12)):
        ctx.chunk(answer=k == 2)
        delta = {"content": "a"} if k == 2 else {"reasoning": "r"}
        acc.feed({"choices": [{"index": 0, "delta": delta}]}, t)
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
              "usage": {"completion_tokens": 3}}, 0.12)
    acc.mark_done(0.12)
    return acc.result()


async def _summary(concurrency: int):
    items = [BatchItem(id=f"q{i}", index=i, messages=({"role": "user", "content": "x"},)) for i in range(12)]
    return await BatchEngine(items, _send, concurrency=concurrency, policy=RetryPolicy(base_delay=0.001)).run()


async def test_csv_table_and_plot_from_real_summaries():
    rows = [SweepRow(4, await _summary(4)), SweepRow(8, await _summary(8))]
    assert rows[0].summary.state is EngineState.FINISHED
    assert rows[0].summary.steady_tok_s is not None and rows[0].summary.backlog_tokens > 0
    parsed = list(csv.DictReader(io.StringIO(sweep_csv(rows))))
    assert list(parsed[0]) == list(CSV_COLUMNS)
    assert [r["concurrency"] for r in parsed] == ["4", "8"]
    assert parsed[0]["requests_ok"] == "12" and parsed[0]["ttft_p50_ms"] == "100.0"
    assert parsed[0]["seed_h100x16_tok_s"] == str(SEED_H100X16[4])
    cells = table_rows(rows, compare_seed=True)
    assert len(cells[0]) == len(TABLE_HEADER) + 1
    assert cells[0][0] == "4" and cells[0][1] == "12" and cells[0][6] == "100"
    plotext = pytest.importorskip("plotext")
    assert plotext is not None
    text = render_plot(rows, width=70, height=15, compare_seed=True, color=False)
    assert "output tok/s by concurrency" in text and "\x1b[" not in text
