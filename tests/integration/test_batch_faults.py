"""The batch rows of the fault suite (bench/faults_batch.py, issue 14 item 8) that are cheap (≤ 30 s each) as tests: real
`r1console sim-server` and `r1console batch` processes on 127.0.0.1, server and client SIGKILLed,
results counted from the output file. Each row's detail line is printed (pytest -s) for the note."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import faults_batch  # noqa: E402

CHEAP = [row for row in faults_batch.ROWS if row.cheap]


@pytest.mark.parametrize("row", CHEAP, ids=[row.func.__name__ for row in CHEAP])
async def test_batch_fault_row(row):
    assert row.area == "batch"
    result = await row.run(1)
    print(f"\n{result['fault']}: {result['detail']}")
    assert set(result) == {"fault", "runs", "lost", "duplicated", "recovery_s", "passed", "detail"}
    assert result["lost"] == 0 and result["duplicated"] == 0, result["detail"]
    assert result["passed"], result["detail"]
