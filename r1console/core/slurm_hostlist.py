"""SLURM hostlist expressions (``node[1-2,05],gpu-a[1-2]b``) expanded to host names, in SLURM's order."""

from __future__ import annotations

import re
from itertools import product

from r1console.core.slurm_values import _EMPTY, SlurmParseError, _clip
from r1console.core.textnum import is_ascii_int


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: ``a[1-2],b3`` -> [``a[1-2]``, ``b3``]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_range(body: str) -> list[str]:
    out: list[str] = []
    for item in body.split(","):
        item = item.strip()
        if not item:
            continue
        if "-" in item:
            lo, hi = item.split("-", 1)
            if not (is_ascii_int(lo) and is_ascii_int(hi)):
                raise SlurmParseError(f"hostlist range [{body}] is not numeric")
            width = len(lo) if lo.startswith("0") else 0
            start, stop = int(lo), int(hi)
            if stop < start or stop - start > 100_000:
                raise SlurmParseError(f"hostlist range [{body}] is not a sane range")
            out.extend(str(n).zfill(width) for n in range(start, stop + 1))
        else:
            out.append(item)
    return out


MAX_HOSTS = 65536  # more than any real job's node list; n[1-100000][1-100000] would be 10**10


def expand_hostlist(expr: str) -> list[str]:
    """SLURM hostlist -> hostnames, in SLURM's order: ``node[1-2,05],gpu-a[1-2]b`` etc."""
    expr = (expr or "").strip()
    if expr in _EMPTY:
        return []
    hosts: list[str] = []
    for part in _split_top(expr):
        pieces: list[list[str]] = []
        pos = 0
        for m in re.finditer(r"\[([^\]]*)\]", part):
            pieces.append([part[pos:m.start()]])
            pieces.append(_expand_range(m.group(1)))
            pos = m.end()
        pieces.append([part[pos:]])
        count = 1
        for piece in pieces:
            count *= len(piece)
        if len(hosts) + count > MAX_HOSTS:
            raise SlurmParseError(f"hostlist {_clip(expr, 80)} names more than {MAX_HOSTS} hosts")
        hosts.extend("".join(combo) for combo in product(*pieces))
    return hosts
