"""Markdown that streams in at hundreds of tokens per second without slowing the console.

Textual's Markdown widget mounts one widget per block, and every update re-lays-out all of them,
so a long R1 answer makes each refresh slower (measured in bench/bench_tui.py). Here the text is
kept in chunks: the growing tail is one Static re-rendered on each update (bounded: at most
``chunk_chars``), and once it is long enough it is frozen at a paragraph boundary (never inside a
code fence) into a Static that is rendered once. Each update costs the same, however long the
answer: the work is linear in the tokens, not quadratic.
"""

from __future__ import annotations

from rich.markdown import Markdown as RichMarkdown
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


def split_point(text: str, min_chars: int) -> int:
    """Where to freeze ``text``: after the last paragraph break past ``min_chars`` that is not inside
    a code fence, or 0 for not yet."""
    if len(text) < min_chars:
        return 0
    cut = text.rfind("\n\n", min_chars // 2)
    while cut > 0:
        head = text[:cut]
        if head.count("```") % 2 == 0:
            return cut + 2
        cut = text.rfind("\n\n", 0, cut)
    return 0


class StreamingMarkdown(Vertical):
    DEFAULT_CSS = """
    StreamingMarkdown { height: auto; }
    StreamingMarkdown > Static { height: auto; }
    """

    def __init__(self, *, chunk_chars: int = 2000, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.chunk_chars = chunk_chars
        self.text = ""
        self._tail = ""
        self._tail_widget: Static | None = None

    def compose(self) -> ComposeResult:
        self._tail_widget = Static("", classes="stream-tail")
        yield self._tail_widget

    async def append(self, fragment: str) -> None:
        if not fragment:
            return
        self.text += fragment
        self._tail += fragment
        cut = split_point(self._tail, self.chunk_chars)
        if cut:
            frozen, self._tail = self._tail[:cut], self._tail[cut:]
            await self.mount(Static(RichMarkdown(frozen)), before=self._tail_widget)
        assert self._tail_widget is not None
        self._tail_widget.update(RichMarkdown(self._tail))
