"""The cheap rows of bench/faults.py, as tests (the full plan with its audit figures: `python3 bench/faults.py`).

Real SSH to the test cluster through our own fault proxy (only our connection is cut), real tail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import faultlib  # noqa: E402
import faults_follow  # noqa: E402
import faults_ssh  # noqa: E402


def _check(result: dict) -> None:
    assert not result.get("skipped"), result["detail"]
    assert result["passed"], result
    assert result["lost"] in (0, None) and result["duplicated"] in (0, None), result


async def test_ssh_cut_during_a_growing_follow_loses_and_repeats_nothing(slurm_cluster):
    result = await faults_follow.ssh_cut(3)
    _check(result)
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["recovery_s"] <= 5.0


async def test_truncation_requeue_replacement_and_a_cut_deliver_each_generation_once(slurm_cluster):
    result = await faults_follow.generations(1)
    _check(result)
    assert result["duplicated"] == 0


async def test_refused_channels_back_off_with_a_clear_error():
    if faultlib.PrivateSshd.available():
        pytest.skip(faultlib.PrivateSshd.available())
    result = await faults_ssh.max_sessions(1, duration_s=14.0)
    _check(result)

