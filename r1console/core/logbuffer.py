"""A bounded, terminal-like line buffer for the log pane, with search and filter.

Bytes from a followed log arrive in arbitrary chunks. The buffer keeps at most ``max_lines``
complete lines (oldest dropped first, so memory stays bounded on a 2 GB log) plus the current
partial line. A carriage return rewinds the current line like a terminal does, so tqdm's
``\\r``-updated progress bar shows as one line with its latest value instead of thousands.
ANSI colour codes are removed (the pane draws its own styles).

Line numbers are absolute (counted since the start of the stream), so a search hit stays
valid while old lines are dropped.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A tqdm bar as vLLM writes it ("\r<bar>\n" per update): consecutive updates of one bar collapse
# into one line, as a terminal shows them, instead of 163 lines of shard progress.
_PROGRESS = re.compile(r"^(?P<desc>[^\r\n]{1,120}?):\s+\d{1,3}%(?: Completed)?\s*\|")


def _compact(raw: str) -> str:
    """Drop what a carriage return has overwritten, keeping a trailing \r pending."""
    body = raw.rstrip("\r")
    cut = body.rfind("\r")
    return raw[cut + 1:] if cut >= 0 else raw


def _same_bar(previous: str, line: str) -> bool:
    """``line`` is a later update of the progress bar ``previous`` (same description)."""
    m = _PROGRESS.match(line)
    if not m:
        return False
    p = _PROGRESS.match(previous)
    return p is not None and p.group("desc") == m.group("desc")


def _visible(raw: str) -> str:
    """What a terminal shows for this line: the text after the last carriage return."""
    body = raw.rstrip("\r")
    return body[body.rfind("\r") + 1:]


@dataclass(frozen=True)
class SearchResult:
    matches: tuple[int, ...]  # absolute line numbers, ascending
    pattern: str

    @property
    def count(self) -> int:
        return len(self.matches)


class LogBuffer:
    def __init__(self, max_lines: int = 50_000) -> None:
        self.max_lines = max_lines
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._first = 0  # absolute number of self._lines[0]
        self._partial = ""
        self.bytes_seen = 0

    # ---- writing ---------------------------------------------------------------------------
    def feed(self, text: str) -> int:
        """Add text; returns how many complete lines were added."""
        self.bytes_seen += len(text)
        text = _ANSI.sub("", text)
        parts = text.split("\n")
        added = 0
        for i, part in enumerate(parts):
            current = _compact(self._partial + part)
            if i < len(parts) - 1:
                line = _visible(current)
                if self._lines and _same_bar(self._lines[-1], line):
                    self._lines[-1] = line
                    self._partial = ""
                    continue
                if len(self._lines) == self.max_lines:
                    self._first += 1
                self._lines.append(line)
                self._partial = ""
                added += 1
            else:
                self._partial = current[-10_000:]  # a line that never ends must not grow forever
        return added

    def feed_bytes(self, data: bytes) -> int:
        return self.feed(data.decode("utf-8", errors="replace"))

    # ---- reading ---------------------------------------------------------------------------
    @property
    def first_line(self) -> int:
        return self._first

    def __len__(self) -> int:
        return len(self._lines) + (1 if self._partial else 0)

    @property
    def end(self) -> int:
        """One past the last absolute line number (including the partial line)."""
        return self._first + len(self)

    def line(self, absolute: int) -> str | None:
        index = absolute - self._first
        if 0 <= index < len(self._lines):
            return self._lines[index]
        if index == len(self._lines) and self._partial:
            return _visible(self._partial)
        return None

    def lines(self) -> list[str]:
        return [*self._lines, *([_visible(self._partial)] if self._partial else [])]

    # ---- search and filter ------------------------------------------------------------------
    @staticmethod
    def _matcher(pattern: str):
        if not pattern:
            return None
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error:
            rx = re.compile(re.escape(pattern), re.IGNORECASE)
        return rx

    def search(self, pattern: str) -> SearchResult:
        rx = self._matcher(pattern)
        if rx is None:
            return SearchResult((), pattern)
        hits = tuple(self._first + i for i, line in enumerate(self.lines()) if rx.search(line))
        return SearchResult(hits, pattern)

    def filtered(self, pattern: str) -> list[int]:
        """Absolute numbers of the lines that match (all lines when the pattern is empty)."""
        rx = self._matcher(pattern)
        if rx is None:
            return list(range(self._first, self.end))
        return [self._first + i for i, line in enumerate(self.lines()) if rx.search(line)]


def next_match(result: SearchResult, current: int, forward: bool = True) -> int | None:
    """The next (or previous) hit after ``current``, wrapping around."""
    if not result.matches:
        return None
    if forward:
        for n in result.matches:
            if n > current:
                return n
        return result.matches[0]
    for n in reversed(result.matches):
        if n < current:
            return n
    return result.matches[-1]
