"""SLURM's small values as its clients print them: durations (:func:`parse_duration`), timestamps,
counts and the many spellings of "empty"; and the parse error every SLURM parser raises.
"""

from __future__ import annotations

import re

from r1console.core.errors import R1Error
from r1console.core.fmt import slurm_duration
from r1console.core.textnum import is_ascii_int

_EMPTY = {"", "(null)", "n/a", "N/A", "None", "none", "None assigned", "Unknown", "unknown"}


class SlurmParseError(R1Error):
    """SLURM printed something this parser does not understand; the message quotes it."""


def _clip(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


# ---- small value parsers -------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$")


def parse_duration(text: str | None) -> int | None:
    """SLURM durations -> seconds: ``1-02:03:04``, ``02:03:04``, ``3:04``, ``5`` (minutes).

    ``UNLIMITED``, ``INVALID``, ``N/A``, ``Partition_Limit`` and empty -> None.
    """
    if text is None:
        return None
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INVALID", "N/A", "NONE", "PARTITION_LIMIT", "INFINITE"):
        return None
    if is_ascii_int(text):
        return int(text) * 60  # a bare number is minutes (sbatch --time=5, squeue %l on some versions)
    m = re.match(r"^(\d+)-(\d+)$", text)  # days-hours
    if m:
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600
    m = re.match(r"^(\d+)-(\d+):(\d+)$", text)  # days-hours:minutes
    if m:
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60
    m = _DURATION.match(text)
    if not m:
        return None
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


format_duration = slurm_duration  # the one SLURM duration format lives in core/fmt.py


def _timestamp_text(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if text in _EMPTY or text in ("0", "None"):
        return None
    return text


def _clean(text: str | None) -> str:
    if text is None:
        return ""
    text = text.strip()
    return "" if text in _EMPTY else text


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    m = re.match(r"^\s*(\d+)", text)
    return int(m.group(1)) if m else None
