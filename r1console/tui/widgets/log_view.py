"""The log pane: a virtual, line-API view over a bounded LogBuffer.

Only visible lines are rendered, so a 50,000-line buffer costs the same to draw as 50 lines.
``follow`` keeps the view at the end as lines arrive; scrolling up turns it off, reaching the
end again (or pressing End) turns it back on — the toolong behaviour. Search highlights hits
and moves between them; a filter shows only matching lines.
"""

from __future__ import annotations

import re

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from r1console.core.logbuffer import LogBuffer, SearchResult, next_match

_HIT = Style(bgcolor="yellow", color="black")
_CURRENT = Style(bgcolor="dark_orange", color="black", bold=True)
_STYLES = [
    (re.compile(r"\bFATAL\b|Traceback|Error:|OutOfMemoryError|CANCELLED"), Style(color="red", bold=True)),
    (re.compile(r"\bWARNING\b|\bWARN\b"), Style(color="yellow")),
    (re.compile(r"\[r1console\]"), Style(color="cyan")),
    (re.compile(r"Completed \|"), Style(color="green")),
]


class LogView(ScrollView, can_focus=True):
    """Shows one LogBuffer. Call :meth:`refresh_lines` after feeding the buffer."""

    # n / N / end,G (next match, previous match, follow) are bound by the screen that holds the view
    # (JobScreen), which calls the actions below and updates its status line: one binding per id.
    BINDINGS = [
        Binding("home,g", "scroll_home", "Top", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    """Stick to the end as lines arrive."""

    def __init__(self, buffer: LogBuffer | None = None, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.buffer = buffer if buffer is not None else LogBuffer()  # an empty buffer is falsy
        self._view: list[int] = []  # absolute line numbers shown, in order
        self._filter = ""
        self._search = SearchResult((), "")
        self._search_rx: re.Pattern | None = None
        self.current_match: int | None = None
        self._width = 0

    # ---- data ------------------------------------------------------------------------------
    def set_buffer(self, buffer: LogBuffer) -> None:
        self.buffer = buffer
        self.refresh_lines()

    def refresh_lines(self) -> None:
        """Recompute the visible line list after the buffer changed."""
        if self._filter:
            self._view = self.buffer.filtered(self._filter)
        else:
            self._view = list(range(self.buffer.first_line, self.buffer.end))
        if self._search.pattern:
            self._search = self.buffer.search(self._search.pattern)
        longest = max((len(self.buffer.line(n) or "") for n in self._view[-2000:]), default=0)
        self._width = max(self._width, longest)
        self.virtual_size = Size(self._width, len(self._view))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    @property
    def line_count(self) -> int:
        return len(self._view)

    # ---- filter and search ------------------------------------------------------------------
    @property
    def filter(self) -> str:
        """The pattern lines must match to be shown ("" shows every line)."""
        return self._filter

    def set_filter(self, pattern: str) -> None:
        self._filter = pattern
        self.refresh_lines()

    def search(self, pattern: str) -> SearchResult:
        self._search = self.buffer.search(pattern)
        try:
            self._search_rx = re.compile(pattern, re.IGNORECASE) if pattern else None
        except re.error:
            self._search_rx = re.compile(re.escape(pattern), re.IGNORECASE)
        self.current_match = None
        if self._search.matches:
            self._goto_match(next_match(self._search, self._top_line() - 1))
        self.refresh()
        return self._search

    @property
    def search_result(self) -> SearchResult:
        return self._search

    def _top_line(self) -> int:
        y = int(self.scroll_y)
        return self._view[y] if 0 <= y < len(self._view) else self.buffer.first_line

    def _goto_match(self, absolute: int | None) -> None:
        if absolute is None:
            return
        self.current_match = absolute
        if absolute in self._view:
            self.follow = False
            row = self._view.index(absolute)
            self.scroll_to(y=max(0, row - self.size.height // 2), animate=False)
        self.refresh()

    def action_next_match(self) -> None:
        current = self.current_match if self.current_match is not None else self._top_line() - 1
        self._goto_match(next_match(self._search, current, forward=True))

    def action_previous_match(self) -> None:
        current = self.current_match if self.current_match is not None else self._top_line()
        self._goto_match(next_match(self._search, current, forward=False))

    def match_position(self) -> tuple[int, int]:
        """(1-based index of the current hit, number of hits)."""
        if self.current_match is None or self.current_match not in self._search.matches:
            return 0, self._search.count
        return self._search.matches.index(self.current_match) + 1, self._search.count

    # ---- follow ------------------------------------------------------------------------------
    def action_follow(self) -> None:
        self.follow = True
        self.scroll_end(animate=False, x_axis=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if new < old and not at_end:
            self.follow = False
        elif at_end and not self.follow and self._view:
            self.follow = True

    # ---- rendering ---------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= len(self._view):
            return Strip.blank(width, self.rich_style)
        number = self._view[row]
        text = self.buffer.line(number) or ""
        style = Style()
        for rx, line_style in _STYLES:
            if rx.search(text):
                style = line_style
                break
        segments: list[Segment] = []
        if self._search_rx is not None and number in set(self._search.matches):
            hit_style = _CURRENT if number == self.current_match else _HIT
            pos = 0
            for m in self._search_rx.finditer(text):
                if m.start() > pos:
                    segments.append(Segment(text[pos:m.start()], style))
                segments.append(Segment(m.group(0), hit_style))
                pos = m.end()
            segments.append(Segment(text[pos:], style))
        else:
            segments.append(Segment(text, style))
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, self.rich_style).apply_style(self.rich_style)
