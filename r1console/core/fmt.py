"""Durations as text: one function per format, each named for where it is shown.

* :func:`slurm_duration`: SLURM's own ``[D-]HH:MM:SS`` / ``M:SS`` (squeue ``%M``/``%l``), ``-`` for none;
  :func:`r1console.core.slurm_parse.parse_duration` reads it back.
* :func:`short_duration`: compact ``5s`` / ``1m05s`` / ``1h02m`` for ETAs and load times, ``?`` for unknown.
* :func:`clock_duration`: a stopwatch ``M:SS`` / ``H:MM:SS`` for a run's elapsed time and ETA.
"""

from __future__ import annotations


def slurm_duration(seconds: int | None) -> str:
    """``65`` -> ``1:05``, ``3725`` -> ``01:02:05``, ``90061`` -> ``1-01:01:01``; None -> ``-``."""
    if seconds is None:
        return "-"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    core = f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes}:{secs:02d}"
    return f"{days}-{core}" if days else core


def short_duration(seconds: float | None) -> str:
    """``5`` -> ``5s``, ``65`` -> ``1m05s``, ``3725`` -> ``1h02m`` (rounded to the second); None -> ``?``."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def clock_duration(seconds: float) -> str:
    """``65.9`` -> ``1:05``, ``3725`` -> ``1:02:05`` (whole seconds, hours unpadded)."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
