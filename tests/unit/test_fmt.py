"""One function per duration format (core/fmt.py), and the old names still point at them."""

from __future__ import annotations

from r1console.core import fmt, lifecycle, slurm_parse


def test_slurm_duration_is_squeue_text_and_reads_back():
    cases = {None: "-", 0: "0:00", 65: "1:05", 3725: "01:02:05", 90061: "1-01:01:01"}
    assert {s: fmt.slurm_duration(s) for s in cases} == cases
    for seconds in (0, 65, 3725, 90061):
        assert slurm_parse.parse_duration(fmt.slurm_duration(seconds)) == seconds


def test_short_and_clock_durations():
    assert [fmt.short_duration(x) for x in (None, 4.6, 65, 3725)] == ["?", "5s", "1m05s", "1h02m"]
    assert [fmt.clock_duration(x) for x in (0, 65.9, 3725)] == ["0:00", "1:05", "1:02:05"]


def test_the_modules_keep_their_names_for_the_shared_formats():
    assert slurm_parse.format_duration is fmt.slurm_duration
    assert lifecycle.format_duration is fmt.short_duration
