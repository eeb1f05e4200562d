"""vLLM version strings ("0.8.5", "0.8.5.post1", "0.32.0+cpu") as comparable tuples."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """Leading major.minor[.patch] of ``text``; post/dev/local suffixes are ignored."""
    m = _VERSION.match(str(text).strip())
    if not m:
        raise ValueError(f"not a version: {text!r} (expected e.g. 0.8.5 or 0.11.2)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)
