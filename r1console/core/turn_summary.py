"""The line shown after a chat turn: how it ended, its tokens, its timings.

One source for the facts (:class:`TurnFacts`, from a turn or a bare reply) and for their text
(:func:`summary_line`). The three places that show it word it differently, and each keeps its own
wording as a :class:`SummaryStyle`, all three here side by side:

* ``EXPORT_STYLE`` -- the Markdown export (``ChatSession.to_markdown``):
  ``finish: stop · 13 prompt + 21 completion tokens · first token 0.12 s · …``
* ``CLI_STYLE`` -- ``r1console chat``, on stderr after each reply:
  ``stop · 21 tokens · first token 0.12 s · answer after 1.50 s · total 2.00 s``
* ``TUI_STYLE`` -- under each reply on the chat screen:
  ``done · 21 tokens · TTFT 0.12s · first answer token 1.50s · total 2.00s · finish: stop``

A style is the order of its parts (names of :data:`PARTS`), the three timing labels and the
seconds format; parts with nothing to say are left out, and ``empty`` stands for no part at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from r1console.core.chat import Turn, TurnState
from r1console.core.streaming import ChatResult


@dataclass(frozen=True)
class TurnFacts:
    """What a summary line can say of one reply; ``state`` is None for a reply outside a turn."""

    state: TurnState | None
    error: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    ttfot_s: float | None
    e2e_s: float | None

    @classmethod
    def of_result(cls, r: ChatResult, state: TurnState | None = None, error: str | None = None) -> TurnFacts:
        usage = r.usage
        return cls(state=state, error=error, finish_reason=r.finish_reason,
                   prompt_tokens=usage.prompt_tokens if usage else None,
                   completion_tokens=usage.completion_tokens if usage else None,
                   ttft_s=r.ttft_s, ttfot_s=r.ttfot_s, e2e_s=r.e2e_s)

    @classmethod
    def of_turn(cls, turn: Turn) -> TurnFacts:
        return cls.of_result(turn.result, turn.state, turn.error)


@dataclass(frozen=True)
class SummaryStyle:
    parts: tuple[str, ...]
    timing_labels: tuple[str, str, str] = ("first token", "first answer token", "total")
    seconds: str = "{:.2f} s"
    empty: str = ""


def _outcome(f: TurnFacts, style: SummaryStyle) -> list[str]:
    """How the turn ended, when it did not simply finish."""
    if f.state is TurnState.FAILED:
        return [f"failed: {f.error}" if f.error else "failed"]
    if f.state is TurnState.CANCELLED:
        return ["cancelled"]
    return ["still streaming"] if f.state is TurnState.STREAMING else []


def _timings(f: TurnFacts, style: SummaryStyle) -> list[str]:
    values = (f.ttft_s, f.ttfot_s, f.e2e_s)
    return [f"{label} {style.seconds.format(v)}" for label, v in zip(style.timing_labels, values) if v is not None]


def _token_split(f: TurnFacts, style: SummaryStyle) -> list[str]:
    if f.completion_tokens is None:
        return []
    return [f"{f.prompt_tokens} prompt + {f.completion_tokens} completion tokens"]


PARTS: dict[str, Callable[[TurnFacts, SummaryStyle], list[str]]] = {
    "state": lambda f, s: [f.state.value] if f.state is not None else [],  # the state's name, always
    "outcome": _outcome,
    "finish": lambda f, s: [f"finish: {f.finish_reason}"] if f.finish_reason else [],
    "finish_reason": lambda f, s: [f.finish_reason or "no finish reason"],
    "tokens": lambda f, s: [f"{f.completion_tokens} tokens"] if f.completion_tokens is not None else [],
    "token_split": _token_split,
    "timings": _timings,
    "error": lambda f, s: [f"error: {f.error}"] if f.error else [],
}

EXPORT_STYLE = SummaryStyle(parts=("outcome", "finish", "token_split", "timings"), empty="no reply")
CLI_STYLE = SummaryStyle(parts=("finish_reason", "tokens", "timings"),
                         timing_labels=("first token", "answer after", "total"))
TUI_STYLE = SummaryStyle(parts=("state", "tokens", "timings", "finish", "error"),
                         timing_labels=("TTFT", "first answer token", "total"), seconds="{:.2f}s")


def summary_line(facts: TurnFacts, style: SummaryStyle) -> str:
    """The parts of ``style`` that have something to say, joined by `` · ``."""
    bits = [bit for name in style.parts for bit in PARTS[name](facts, style)]
    return " · ".join(bits) if bits else style.empty
