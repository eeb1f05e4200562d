"""A bounded, terminal-like line buffer for the log pane, with search and filter.

Bytes from a followed log arrive in arbitrary chunks. The buffer keeps at most ``max_lines``
complete lines (oldest dropped first, so memory stays bounded on a 2 GB log) plus the current
partial line. A carriage return rewinds the current line like a terminal does, so tqdm's
``\\r``-updated progress bar shows as one line with its latest value instead of thousands.
ANSI colour codes are removed (the pane draws its own styles).

Line numbers are absolute (counted since the start of the stream), so a search hit stays
valid while old lines are dropped.

Memory is bounded in characters too (M8): a stored line keeps its first ``max_line_chars``
characters plus a ``…[N more characters]`` note (vLLM can log whole prompts on one line), the
unfinished line keeps at most its last 10,000 (where a ``\r`` rewrite lands), and
the oldest lines go once all stored lines exceed ``max_chars``.
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


MAX_LINE_CHARS = 8 * 1024
MAX_CHARS = 64 * 1024 * 1024


class LogBuffer:
    def __init__(self, max_lines: int = 50_000, *, max_line_chars: int = MAX_LINE_CHARS,
                 max_chars: int = MAX_CHARS) -> None:
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self.max_chars = max_chars
        self._lines: deque[str] = deque()
        self._first = 0  # absolute number of self._lines[0]
        self._partial = ""
        self._partial_cut = 0  # characters dropped from the front of the unfinished line
        self._chars = 0        # sum of len() of the stored lines
        self.bytes_seen = 0
        self.lines_cut = 0     # lines stored shortened

    def _clip(self, line: str, dropped: int = 0) -> str:
        if len(line) + dropped <= self.max_line_chars:
            return line
        self.lines_cut += 1
        more = len(line) + dropped - self.max_line_chars
        return line[:self.max_line_chars] + f" …[{more} more characters]"

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._chars += len(line)
        while self._lines and (len(self._lines) > self.max_lines or self._chars > self.max_chars):
            self._chars -= len(self._lines.popleft())
            self._first += 1

    @property
    def chars_stored(self) -> int:
        return self._chars + len(self._partial)

    # ---- writing ---------------------------------------------------------------------------
    def feed(self, text: str) -> int:
        """Add text; returns how many complete lines were added."""
        self.bytes_seen += len(text)
        text = _ANSI.sub("", text)
        parts = text.split("\n")
        added = 0
        keep = max(10_000, self.max_line_chars)
        for i, part in enumerate(parts):
            joined = self._partial + part
            current = _compact(joined)
            if len(current) < len(joined) and "\r" in joined[:len(joined) - len(current)]:
                self._partial_cut = 0  # a carriage return rewound the line: what was cut is overwritten
            if i < len(parts) - 1:
                line = self._clip(_visible(current), self._partial_cut)
                self._partial_cut = 0
                self._partial = ""
                if self._lines and _same_bar(self._lines[-1], line):
                    self._chars += len(line) - len(self._lines[-1])
                    self._lines[-1] = line
                    continue
                self._append(line)
                added += 1
            else:
                if len(current) > keep:  # a line that never ends must not grow forever
                    self._partial_cut += len(current) - keep
                    current = current[-keep:]
                self._partial = current
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
