"""One generation request inside the simulated engine: its lifecycle states, the kinds of its output
tokens (reasoning, ``</think>``, answer, EOS) and its counters (generated, computed, KV blocks, times)."""

from __future__ import annotations

from typing import Any

WAITING, RUNNING, PREEMPTED, FINISHED, ABORTED = "waiting", "running", "preempted", "finished", "aborted"

# Token kinds of an R1 output: reasoning..., </think>, answer..., EOS.
REASONING, THINK_END, ANSWER, EOS = "reasoning", "think_end", "answer", "eos"


class SimRequest:
    """One generation request inside the engine. Token ``i`` of the output (0-based) is reasoning for
    ``i < reasoning_tokens``, then ``</think>``, then the answer, then EOS."""

    __slots__ = (
        "request_id", "prompt_tokens", "max_tokens", "reasoning_tokens", "answer_tokens", "ignore_eos",
        "output_len", "finish_reason", "generated", "computed", "blocks", "status", "arrival",
        "scheduled_at", "first_token_at", "last_token_at", "finished_at", "num_preemptions", "user_data",
    )

    def __init__(self, request_id: str, prompt_tokens: int, max_tokens: int, reasoning_tokens: int,
                 answer_tokens: int, *, ignore_eos: bool = False, user_data: Any = None) -> None:
        if prompt_tokens < 1 or max_tokens < 1:
            raise ValueError("prompt_tokens and max_tokens must be at least 1")
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.reasoning_tokens = max(0, reasoning_tokens)
        self.ignore_eos = ignore_eos
        if ignore_eos:  # bench tools: exactly max_tokens; the answer never reaches EOS
            self.answer_tokens = max_tokens
            self.output_len, self.finish_reason = max_tokens, "length"
        else:
            self.answer_tokens = max(0, answer_tokens)
            natural = self.reasoning_tokens + 1 + self.answer_tokens + 1
            self.output_len = min(natural, max_tokens)
            self.finish_reason = "stop" if natural <= max_tokens else "length"
        self.generated = 0
        self.computed = 0
        self.blocks = 0
        self.status = WAITING
        self.arrival = 0.0
        self.scheduled_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.finished_at: float | None = None
        self.num_preemptions = 0
        self.user_data = user_data

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def finished(self) -> bool:
        return self.status in (FINISHED, ABORTED)

    def token_kind(self, i: int) -> str:
        r = self.reasoning_tokens
        if i < r:
            return REASONING
        if i == r:
            return THINK_END
        if i <= r + self.answer_tokens:
            return ANSWER
        return EOS

    @property
    def content_is_null(self) -> bool:
        """True when the output stops before any answer token (no ``</think>`` or nothing after it)."""
        return self.output_len <= self.reasoning_tokens + 1

    def __repr__(self) -> str:
        return (f"SimRequest({self.request_id!r}, {self.status}, {self.generated}/{self.output_len} "
                f"tokens, prompt={self.prompt_tokens})")


__all__ = ["ABORTED", "ANSWER", "EOS", "FINISHED", "PREEMPTED", "REASONING", "RUNNING", "THINK_END", "WAITING",
           "SimRequest"]
