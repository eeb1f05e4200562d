"""Byte units, ``format_bytes`` and ``parse_size`` (binary units, as vLLM parses them)."""

from __future__ import annotations

import re

from r1console.core.errors import R1Error

GiB = 1024**3
MiB = 1024**2
GB = 1000**3

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.I)


def parse_size(text: str | int) -> int:
    """``1G`` / ``4M`` / ``1GiB`` / ``1073741824`` -> bytes (binary units, as vLLM parses them)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise R1Error(f"{text!r} is not a size such as 1G, 512M or 1073741824")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024**power)



def gib(n: int | float) -> str:
    """``n`` bytes as ``1,234.56 GiB``."""
    return f"{n / GiB:,.2f} GiB"


def format_bytes(n: int | float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``40.30 GiB``, ``3.38 KiB``)."""
    value = abs(n)
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if value >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n):,} B"
