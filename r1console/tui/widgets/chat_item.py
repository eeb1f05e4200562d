"""One exchange in the chat pane: the user's message, the reasoning in its own collapsible
section, and the answer — two Markdown streams (oterm's pattern, with a chunked Markdown that
keeps each update cheap: widgets/stream_markdown.py). The reasoning collapses when the first
answer token arrives; the user can toggle it back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Static

from r1console.tui.widgets.stream_markdown import StreamingMarkdown


class ChatItem(Vertical):
    def __init__(self, user_text: str, index: int) -> None:
        super().__init__(classes="chat-item")
        self.user_text = user_text
        self.index = index
        self._answer_started = False

    def compose(self) -> ComposeResult:
        yield Static(self.user_text, classes="chat-user", markup=False)
        with Collapsible(title="Reasoning", collapsed=False, classes="chat-reasoning"):
            yield StreamingMarkdown(classes="chat-reasoning-body")
        yield StreamingMarkdown(classes="chat-answer")
        yield Static("streaming…", classes="chat-summary")

    @property
    def reasoning_section(self) -> Collapsible:
        return self.query_one(".chat-reasoning", Collapsible)

    @property
    def reasoning_text(self) -> str:
        return self.query_one(".chat-reasoning-body", StreamingMarkdown).text

    @property
    def answer_text(self) -> str:
        return self.query_one(".chat-answer", StreamingMarkdown).text

    async def append(self, reasoning: str, content: str) -> None:
        if reasoning:
            await self.query_one(".chat-reasoning-body", StreamingMarkdown).append(reasoning)
        if content:
            if not self._answer_started:
                self._answer_started = True
                self.reasoning_section.collapsed = True  # the answer starts: fold the thinking away
            await self.query_one(".chat-answer", StreamingMarkdown).append(content)

    async def finish(self, summary: str) -> None:
        if not self.reasoning_text:
            self.reasoning_section.display = False
        self.query_one(".chat-summary", Static).update(summary)

    def toggle_reasoning(self) -> None:
        self.reasoning_section.collapsed = not self.reasoning_section.collapsed
