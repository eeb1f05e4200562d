"""One exchange in the chat pane: the user's message, the reasoning in its own collapsible
section, and the answer — two Markdown streams (oterm's pattern). The reasoning collapses
when the first answer token arrives; the user can toggle it back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Markdown, Static


class ChatItem(Vertical):
    def __init__(self, user_text: str, index: int) -> None:
        super().__init__(classes="chat-item")
        self.user_text = user_text
        self.index = index
        self.reasoning_text = ""
        self.answer_text = ""
        self._reasoning_stream = None
        self._answer_stream = None

    def compose(self) -> ComposeResult:
        yield Static(self.user_text, classes="chat-user", markup=False)
        with Collapsible(title="Reasoning", collapsed=False, classes="chat-reasoning"):
            yield Markdown("", classes="chat-reasoning-body")
        yield Markdown("", classes="chat-answer")
        yield Static("streaming…", classes="chat-summary")

    @property
    def reasoning_section(self) -> Collapsible:
        return self.query_one(".chat-reasoning", Collapsible)

    async def append(self, reasoning: str, content: str) -> None:
        if reasoning:
            if self._reasoning_stream is None:
                self._reasoning_stream = Markdown.get_stream(self.query_one(".chat-reasoning-body", Markdown))
            self.reasoning_text += reasoning
            await self._reasoning_stream.write(reasoning)
        if content:
            if self._answer_stream is None:
                self._answer_stream = Markdown.get_stream(self.query_one(".chat-answer", Markdown))
                self.reasoning_section.collapsed = True  # the answer starts: fold the thinking away
            self.answer_text += content
            await self._answer_stream.write(content)

    async def finish(self, summary: str) -> None:
        for stream in (self._reasoning_stream, self._answer_stream):
            if stream is not None:
                await stream.stop()
        self._reasoning_stream = self._answer_stream = None
        if not self.reasoning_text:
            self.reasoning_section.display = False
        self.query_one(".chat-summary", Static).update(summary)

    def toggle_reasoning(self) -> None:
        self.reasoning_section.collapsed = not self.reasoning_section.collapsed
