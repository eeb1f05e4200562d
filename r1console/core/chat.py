"""The chat conversation: history, system prompt, the streaming turn, cancel, Markdown export.

Headless, so that the TUI's chat screen only renders it and ``r1console chat`` drives the same
object. A conversation is a list of :class:`Turn` (a user message and the assistant's reply);
the reply of the turn in flight lives in its :class:`StreamAccumulator`, which the HTTP client
feeds chunk by chunk (``VllmClient.chat_stream(..., accumulator=turn.stream)``).

The life of a turn::

    turn = session.begin("question")        # STREAMING; session.streaming is True
    messages = session.request_messages()   # what to send for it
    ... the client feeds turn.stream ...
    session.finish()                        # DONE   (or FAILED if the server sent an error)
    session.cancel()                        # CANCELLED: the user stopped it; partial text kept
    session.fail("message")                 # FAILED: transport error, cut stream, ...

What is sent back (DeepSeek-R1 practice, and vLLM's R1 chat template drops it anyway): the
system prompt, then for every *finished* earlier turn the user message and the assistant's
**answer only** — never its reasoning. Cancelled and failed turns stay visible (and are
exported) but are not sent.

Pure: no I/O, no clock (timings come from the accumulator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from r1console.core.errors import R1Error
from r1console.core.streaming import ChatResult, StreamAccumulator


class ChatBusy(R1Error):
    """A turn is still streaming; cancel or finish it first."""


class TurnState(str, Enum):
    STREAMING = "streaming"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass
class Turn:
    """One exchange. ``reasoning``/``content`` read the live accumulator while streaming."""

    user: str
    stream: StreamAccumulator = field(default_factory=StreamAccumulator)
    state: TurnState = TurnState.STREAMING
    error: str | None = None

    @property
    def reasoning(self) -> str:
        return self.stream.reasoning

    @property
    def content(self) -> str:
        return self.stream.content

    @property
    def finish_reason(self) -> str | None:
        return self.stream.finish_reason

    @property
    def result(self) -> ChatResult:
        return self.stream.result()

    @property
    def answering(self) -> bool:
        """The answer has started (the TUI collapses the reasoning then)."""
        return self.stream.answering

    @property
    def sent_in_history(self) -> bool:
        """Finished turns are part of the context of later turns."""
        return self.state is TurnState.DONE


class ChatSession:
    """A conversation with one model.

    ``params`` are extra request fields (``max_tokens``, ``temperature``, ``top_p``…) the
    caller passes to the client with :meth:`request_messages`.
    """

    def __init__(self, system_prompt: str | None = None, *, model: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.system_prompt = system_prompt or None
        self.model = model
        self.params: dict[str, Any] = dict(params or {})
        self.turns: list[Turn] = []

    # -- state -------------------------------------------------------------------------------

    @property
    def current(self) -> Turn | None:
        """The turn being streamed, if any."""
        if self.turns and self.turns[-1].state is TurnState.STREAMING:
            return self.turns[-1]
        return None

    @property
    def streaming(self) -> bool:
        return self.current is not None

    def set_system_prompt(self, text: str | None) -> None:
        """Applies to the next request (the system message is sent with every request)."""
        self.system_prompt = (text or "").strip() or None

    # -- a turn ------------------------------------------------------------------------------

    def begin(self, user_text: str) -> Turn:
        """Start a turn for ``user_text``; its reply arrives in ``turn.stream``."""
        if self.streaming:
            raise ChatBusy("a reply is still streaming; cancel it first")
        if not user_text or not user_text.strip():
            raise R1Error("the message is empty")
        turn = Turn(user=user_text)
        self.turns.append(turn)
        return turn

    def request_messages(self) -> list[dict[str, str]]:
        """The ``messages`` for the turn in flight (or, with none, the history so far)."""
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for turn in self.turns:
            if turn.state is TurnState.STREAMING:
                messages.append({"role": "user", "content": turn.user})
                break
            if turn.sent_in_history:
                messages.append({"role": "user", "content": turn.user})
                # The answer only: R1's reasoning is never sent back.
                messages.append({"role": "assistant", "content": turn.content.strip()})
        return messages

    def finish(self) -> Turn:
        """The stream ended normally. A server error inside the stream makes the turn FAILED."""
        turn = self._require_current()
        turn.state = TurnState.DONE
        if turn.stream.error is not None:
            turn.state = TurnState.FAILED
            turn.error = turn.stream.error.message
        return turn

    def cancel(self) -> Turn | None:
        """The user stopped the reply: keep what arrived, mark it, leave it out of the history.
        Returns the cancelled turn, or None if nothing was streaming. (Stopping the network
        request is the caller's job: cancel the task that runs the stream.)"""
        turn = self.current
        if turn is None:
            return None
        turn.state = TurnState.CANCELLED
        return turn

    def fail(self, message: str) -> Turn | None:
        """The request failed (transport error, cut stream, server error)."""
        turn = self.current
        if turn is None:
            return None
        turn.state = TurnState.FAILED
        turn.error = message
        return turn

    def undo(self) -> Turn | None:
        """Remove the last finished turn (e.g. to edit and resend it). Not while streaming."""
        if self.streaming:
            raise ChatBusy("a reply is still streaming; cancel it first")
        return self.turns.pop() if self.turns else None

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        if self.streaming:
            raise ChatBusy("a reply is still streaming; cancel it first")
        self.turns.clear()

    def _require_current(self) -> Turn:
        turn = self.current
        if turn is None:
            raise R1Error("no reply is streaming")
        return turn

    # -- export ------------------------------------------------------------------------------

    def export_markdown(self, include_reasoning: bool = True, *, title: str | None = None) -> str:
        """The conversation as Markdown. Reasoning, when included, is a block quote before the
        answer; cancelled/failed turns say so; each reply ends with a one-line summary."""
        name = self.model or "assistant"
        lines = [f"# {title or f'Conversation with {name}'}", ""]
        if self.system_prompt:
            lines += ["**System prompt:**", "", self.system_prompt.strip(), ""]
        for i, turn in enumerate(self.turns, start=1):
            lines += [f"## {i}. User", "", turn.user.strip(), "", f"### {name}", ""]
            reasoning = turn.reasoning.strip()
            if include_reasoning and reasoning:
                lines.append("> **Reasoning**")
                lines.append(">")
                lines += [f"> {ln}".rstrip() for ln in reasoning.splitlines()]
                lines.append("")
            answer = turn.content.strip()
            if answer:
                lines += [answer, ""]
            elif turn.state is TurnState.DONE:
                why = ("the reply ended while still reasoning"
                       if turn.finish_reason == "length" else "the model gave no answer")
                lines += [f"*(no answer: {why})*", ""]
            lines += [f"*{_summary(turn)}*", ""]
        return "\n".join(lines).rstrip() + "\n"


def _summary(turn: Turn) -> str:
    from r1console.core.turn_summary import EXPORT_STYLE, TurnFacts, summary_line  # it imports this module

    return summary_line(TurnFacts.of_turn(turn), EXPORT_STYLE)
