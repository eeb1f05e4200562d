"""ASCII-only number checks: ``str.isdigit()`` accepts '²' and '٣', which ``int()`` then rejects."""

from __future__ import annotations


def is_ascii_int(text: str) -> bool:
    """``text`` is one or more ASCII digits 0-9 (no sign, no spaces)."""
    return bool(text) and text.isascii() and text.isdecimal()


__all__ = ["is_ascii_int"]
