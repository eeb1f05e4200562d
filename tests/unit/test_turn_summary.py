"""The line after a chat turn: one set of facts, worded as the export, the CLI and the TUI each word it."""

from __future__ import annotations

from r1console.core.chat import Turn, TurnState
from r1console.core.streaming import ChatResult, StreamAccumulator, Usage
from r1console.core.turn_summary import CLI_STYLE, EXPORT_STYLE, TUI_STYLE, TurnFacts, summary_line

RESULT = ChatResult(reasoning="r", content="a", finish_reason="stop", usage=Usage(prompt_tokens=13, completion_tokens=21),
                    ttft_s=0.123, ttfot_s=1.5, e2e_s=2.0)


def test_a_finished_reply_in_each_style():
    facts = TurnFacts.of_result(RESULT, TurnState.DONE)
    assert summary_line(facts, EXPORT_STYLE) == \
        "finish: stop · 13 prompt + 21 completion tokens · first token 0.12 s · first answer token 1.50 s · total 2.00 s"
    assert summary_line(facts, CLI_STYLE) == \
        "stop · 21 tokens · first token 0.12 s · answer after 1.50 s · total 2.00 s"
    assert summary_line(facts, TUI_STYLE) == \
        "done · 21 tokens · TTFT 0.12s · first answer token 1.50s · total 2.00s · finish: stop"


def test_a_failed_turn_with_nothing_received():
    turn = Turn("q", stream=StreamAccumulator(), state=TurnState.FAILED, error="connection refused")
    facts = TurnFacts.of_turn(turn)
    assert (facts.finish_reason, facts.completion_tokens, facts.ttft_s) == (None, None, None)
    assert summary_line(facts, EXPORT_STYLE) == "failed: connection refused"
    assert summary_line(facts, TUI_STYLE) == "failed · error: connection refused"
    assert summary_line(TurnFacts.of_result(turn.result), CLI_STYLE) == "no finish reason"


def test_no_part_at_all_is_the_styles_empty_text():
    facts = TurnFacts.of_turn(Turn("q", state=TurnState.DONE))
    assert summary_line(facts, EXPORT_STYLE) == "no reply"
    assert summary_line(TurnFacts.of_turn(Turn("q", state=TurnState.CANCELLED)), EXPORT_STYLE) == "cancelled"
