"""The headless chat model: history without reasoning, streaming state, cancel, export."""

from __future__ import annotations

import json

import pytest

from _fake_openai import capture_chunks, stream_chunks
from r1console.core.chat import ChatBusy, ChatSession, TurnState
from r1console.core.errors import R1Error

REASONING = "Okay, the user asks a short question; let me check numbers first"


def stream_reply(turn, chunks=None):
    for i, chunk in enumerate(chunks or stream_chunks()):
        turn.stream.feed(chunk, 0.1 + 0.01 * i)
    turn.stream.mark_done(0.5)


def test_a_turn_from_begin_to_finish():
    s = ChatSession("Be brief.", model="tiny-r1", params={"max_tokens": 64})
    turn = s.begin("What is 2+2?")
    assert s.streaming and s.current is turn and turn.state is TurnState.STREAMING
    assert s.request_messages() == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "What is 2+2?"}]
    stream_reply(turn)
    assert turn.answering and turn.reasoning == REASONING  # live view while streaming
    assert s.finish() is turn
    assert turn.state is TurnState.DONE and not s.streaming and s.current is None
    assert turn.content == " The answer is four." and turn.finish_reason == "stop"
    assert s.params == {"max_tokens": 64}


def test_history_sends_answers_but_never_reasoning():
    s = ChatSession()
    stream_reply(s.begin("What is 2+2?"))
    s.finish()
    s.begin("And 3+3?")
    messages = s.request_messages()
    assert messages == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is four."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert "Okay" not in json.dumps(messages)


def test_one_turn_at_a_time():
    s = ChatSession()
    s.begin("a")
    with pytest.raises(ChatBusy):
        s.begin("b")
    with pytest.raises(ChatBusy):
        s.reset()
    with pytest.raises(ChatBusy):
        s.undo()


def test_cancel_keeps_the_partial_reply_out_of_the_history():
    s = ChatSession()
    turn = s.begin("long question")
    for i, chunk in enumerate(stream_chunks()[:6]):
        turn.stream.feed(chunk, i * 0.01)
    assert s.cancel() is turn
    assert turn.state is TurnState.CANCELLED and turn.reasoning == "Okay, the user asks"
    assert s.cancel() is None  # nothing streaming any more
    s.begin("next")
    assert s.request_messages() == [{"role": "user", "content": "next"}]


def test_fail_and_server_error_in_stream():
    s = ChatSession()
    s.begin("x")
    assert s.fail("the connection was cut").error == "the connection was cut"
    assert s.turns[-1].state is TurnState.FAILED
    turn = s.begin("y")
    turn.stream.feed({"error": {"message": "engine died", "code": 500}}, 0.1)
    s.finish()
    assert turn.state is TurnState.FAILED and turn.error == "engine died"
    assert s.fail("no turn") is None
    with pytest.raises(R1Error):
        s.finish()
    s.begin("z")
    assert s.request_messages() == [{"role": "user", "content": "z"}]


def test_length_finish_is_still_history_with_an_empty_answer():
    s = ChatSession()
    stream_reply(s.begin("q"), capture_chunks("chat_stream_length_sse.txt"))
    s.finish()
    s.begin("again")
    assert s.request_messages()[1] == {"role": "assistant", "content": ""}


def test_empty_message_system_prompt_undo_reset():
    s = ChatSession()
    with pytest.raises(R1Error, match="empty"):
        s.begin("   ")
    s.set_system_prompt("  terse  ")
    assert s.system_prompt == "terse"
    s.set_system_prompt("")
    assert s.system_prompt is None
    stream_reply(s.begin("a"))
    s.finish()
    assert s.undo().user == "a" and s.turns == []
    assert s.undo() is None
    stream_reply(s.begin("b"))
    s.finish()
    s.set_system_prompt("S")
    s.reset()
    assert s.turns == [] and s.system_prompt == "S"


def test_export_markdown_with_and_without_reasoning():
    s = ChatSession("Be brief.", model="tiny-r1")
    stream_reply(s.begin("What is 2+2?"))
    s.finish()
    cancelled = s.begin("Another one")
    cancelled.stream.feed({"choices": [{"index": 0, "delta": {"reasoning": "line one\nline two"}}]}, 0.2)
    s.cancel()
    stream_reply(s.begin("Cut"), capture_chunks("chat_stream_length_sse.txt"))
    s.finish()

    md = s.export_markdown(include_reasoning=True)
    assert md.startswith("# Conversation with tiny-r1\n")
    assert "**System prompt:**\n\nBe brief." in md
    assert "## 1. User\n\nWhat is 2+2?\n\n### tiny-r1\n\n> **Reasoning**\n>\n> " + REASONING in md
    assert "\n\nThe answer is four.\n\n*finish: stop · 13 prompt + 21 completion tokens" in md
    assert "> line one\n> line two" in md          # every reasoning line stays in the quote
    assert "*cancelled" in md
    assert "*(no answer: the reply ended while still reasoning)*" in md
    assert md.endswith("\n") and not md.endswith("\n\n")

    plain = s.export_markdown(include_reasoning=False, title="Notes")
    assert plain.startswith("# Notes\n")
    assert "Reasoning" not in plain and REASONING not in plain and "line one" not in plain
    assert "The answer is four." in plain
