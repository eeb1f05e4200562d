"""The chat screen: streaming Markdown with reasoning apart, system prompt, stop, new
conversation, export. It renders a headless ChatSession (core/chat.py); the worker streams
from the server through VllmClient and posts coalesced deltas."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import AsyncContextManager, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from r1console.adapters.vllm_client import VllmClient
from r1console.core.chat import ChatSession, TurnState
from r1console.core.errors import R1Error
from r1console.core.turn_summary import TUI_STYLE, TurnFacts, summary_line
from r1console.tui.messages import ChatDeltaReceived, ChatTurnEnded
from r1console.tui.screens.dialogs import TextInputDialog
from r1console.tui.widgets.chat_item import ChatItem

ServerOpener = Callable[[], AsyncContextManager[tuple[str, str | None]]]
COALESCE_S = 0.1  # post at most 10 delta messages per second, whatever the token rate


def _summary(turn) -> str:
    return summary_line(TurnFacts.of_turn(turn), TUI_STYLE)


class ChatScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "stop", "Stop", id="chat-stop"),
        Binding("ctrl+n", "new_conversation", "New", id="chat-new"),
        Binding("ctrl+o", "export", "Export", id="chat-export"),
        Binding("ctrl+y", "system_prompt", "System prompt", id="chat-system"),
        Binding("ctrl+r", "toggle_reasoning", "Reasoning", id="chat-toggle-reasoning"),
        Binding("escape", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, title: str, opener: ServerOpener, *, max_tokens: int = 2048,
                 temperature: float | None = 0.6) -> None:
        super().__init__()
        self.chat_title = title
        self.opener = opener
        self.session = ChatSession(params={"max_tokens": max_tokens, "temperature": temperature})
        self.client: VllmClient | None = None
        self._server_ready = asyncio.Event()
        self._leaving = asyncio.Event()
        self._items: list[ChatItem] = []

    def compose(self) -> ComposeResult:
        yield Static(f"Chat — {self.chat_title}  (connecting…)", id="chat-header")
        yield VerticalScroll(id="chat-log")
        yield Input(placeholder="Ask DeepSeek-R1…  (enter to send)", id="chat-input")
        yield Footer()

    def on_mount(self) -> None:
        self.connect()
        self.query_one("#chat-input", Input).focus()

    def on_unmount(self) -> None:
        self._leaving.set()

    @work(group="chat-connection", exit_on_error=False, description="Connecting to the server")
    async def connect(self) -> None:
        header = self.query_one("#chat-header", Static)
        try:
            async with self.opener() as (url, api_key):
                async with VllmClient(url, api_key) as client:
                    model = await client.model_id()
                    self.session.model = model
                    self.client = client
                    header.update(f"Chat — {self.chat_title} · model {model}")
                    self._server_ready.set()
                    await self._leaving.wait()
                    self.client = None
        except R1Error as err:
            header.update(f"Chat — {self.chat_title} · cannot reach the server: {err}")
            raise

    # ---- sending ---------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.session.streaming:
            self.notify("A reply is still streaming — stop it first (ctrl+s).", severity="warning")
            return
        event.input.value = ""
        turn = self.session.begin(text)
        item = ChatItem(text, len(self.session.turns) - 1)
        self._items.append(item)
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(item)
        log.scroll_end(animate=False)
        self.stream_reply(item.index, turn)

    @work(group="chat-stream", exclusive=True, exit_on_error=False, description="Streaming a reply")
    async def stream_reply(self, index: int, turn) -> None:
        try:
            await asyncio.wait_for(self._server_ready.wait(), timeout=60)
        except asyncio.TimeoutError:
            self.session.fail("could not reach the server within 60 s")
            self.post_message(ChatTurnEnded(index, "failed", _summary(turn)))
            return
        pending_r, pending_c, last = [], [], time.monotonic()
        try:
            assert self.client is not None
            stream = self.client.chat_stream(self.session.request_messages(), accumulator=turn.stream,
                                             **self.session.params)
            async with stream:
                async for delta in stream:
                    pending_r.append(delta.reasoning)
                    pending_c.append(delta.content)
                    now = time.monotonic()
                    if now - last >= COALESCE_S:
                        self.post_message(ChatDeltaReceived(index, "".join(pending_r), "".join(pending_c)))
                        pending_r, pending_c, last = [], [], now
            self.session.finish()
        except asyncio.CancelledError:
            self.session.cancel()
            self.post_message(ChatDeltaReceived(index, "".join(pending_r), "".join(pending_c)))
            self.post_message(ChatTurnEnded(index, TurnState.CANCELLED.value, _summary(turn)))
            raise
        except R1Error as err:
            self.session.fail(str(err))
        self.post_message(ChatDeltaReceived(index, "".join(pending_r), "".join(pending_c)))
        self.post_message(ChatTurnEnded(index, turn.state.value, _summary(turn)))

    async def on_chat_delta_received(self, message: ChatDeltaReceived) -> None:
        item = self._items[message.turn_index]
        await item.append(message.reasoning, message.content)
        log = self.query_one("#chat-log", VerticalScroll)
        if log.scroll_y >= log.max_scroll_y - 3:
            log.scroll_end(animate=False)

    async def on_chat_turn_ended(self, message: ChatTurnEnded) -> None:
        await self._items[message.turn_index].finish(message.summary)

    # ---- actions -----------------------------------------------------------------------------
    def action_stop(self) -> None:
        if not self.session.streaming:
            self.notify("Nothing is streaming.")
            return
        self.workers.cancel_group(self, "chat-stream")

    async def action_new_conversation(self) -> None:
        if self.session.streaming:
            self.action_stop()
            await asyncio.sleep(0)
        with contextlib.suppress(R1Error):
            self.session.reset()
        self._items.clear()
        await self.query_one("#chat-log", VerticalScroll).remove_children()
        self.notify("New conversation.")

    def action_toggle_reasoning(self) -> None:
        if self._items:
            self._items[-1].toggle_reasoning()

    def action_system_prompt(self) -> None:
        def apply(value: str | None) -> None:
            if value is not None:
                self.session.set_system_prompt(value)
                self.notify("System prompt set." if value.strip() else "System prompt cleared.")

        self.app.push_screen(TextInputDialog("System prompt", self.session.system_prompt or ""), apply)

    def action_export(self) -> None:
        def write(value: str | None) -> None:
            if not value:
                return
            path = Path(value).expanduser()
            try:
                path.write_text(self.session.export_markdown(include_reasoning=True), encoding="utf-8")
            except OSError as err:
                self.notify(f"{path}: {err.strerror}", severity="error")
                return
            self.notify(f"Conversation written to {path}")

        self.app.push_screen(TextInputDialog("Export conversation to Markdown file", "conversation.md"), write)
