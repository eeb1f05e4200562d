"""SLURM filename patterns, filled once for the client and the simulator (core/slurm_filenames.py)."""

from __future__ import annotations

from r1console.core.slurm_filenames import expand_filename


def fill(pattern: str, **kw) -> str | None:
    args = {"job_id": "42", "name": "r1", "user": "alice", "host": "gpu01.cluster", "workdir": "/w"} | kw
    return expand_filename(pattern, **args)


def test_codes_widths_and_workdir():
    assert fill("job.%N.%j.out") == "/w/job.gpu01.42.out"
    assert fill("%x-%u-%5j-%a-%n-%t-%%.log") == "/w/r1-alice-00042-4294967294-0-0-%.log"
    assert fill("/abs/%A_%a.%3a", job_id="42_7") == "/abs/42_7.007"
    assert fill("odd-%q-%", workdir=None) == "odd-%q-%"
    assert fill("") is None


def test_unknown_host_is_none_or_kept():
    assert fill("%N.out", host=None) is None
    assert fill("%N.%j.out", host=None, keep_unknown_host=True) == "/w/%N.42.out"
