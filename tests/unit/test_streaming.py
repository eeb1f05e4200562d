"""The per-request stream accumulator on the real vLLM 0.32 stream, rewritten into each historical
field shape, with a scripted clock (chunk i arrives at t = 0.1 + 0.01 i)."""

from __future__ import annotations

import pytest

from _fake_openai import SHAPES, capture_chunks, capture_json, reshape, stream_chunks
from r1console.core.streaming import ChatResult, StreamAccumulator, Usage, reasoning_of, result_from_response

REASONING = "Okay, the user asks a short question; let me check numbers first"
CONTENT = " The answer is four."


def t_of(i: int) -> float:
    return round(0.1 + 0.01 * i, 6)


def feed_all(chunks, *, done=True) -> StreamAccumulator:
    acc = StreamAccumulator()
    for i, chunk in enumerate(chunks):
        acc.feed(chunk, t_of(i))
    if done:
        acc.mark_done(t_of(len(chunks)))
    return acc


@pytest.mark.parametrize("shape", SHAPES)
def test_every_field_shape_gives_the_same_reply(shape):
    r = feed_all(stream_chunks(shape)).result()
    assert r.reasoning == REASONING      # never doubled when both fields are sent
    assert r.content == CONTENT
    assert r.finish_reason == "stop" and r.complete and r.done
    assert r.usage == Usage(prompt_tokens=13, completion_tokens=21, total_tokens=34, reasoning_tokens=0)
    assert r.model == "tiny-r1" and r.id == "chatcmpl-aab007bb01a663cb"


def test_timings_follow_vllm_bench_serve():
    chunks = stream_chunks()
    # chunk 0: role + content "" (no token); 1..14: reasoning; 15..19: content; 20: finish; 21: usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "content" in chunks[15]["choices"][0]["delta"]
    r = feed_all(chunks).result()
    assert r.ttft_s == t_of(1)           # the first reasoning token, not the empty role chunk
    assert r.ttfot_s == t_of(15)         # the first answer token
    assert r.e2e_s == t_of(22)           # [DONE]
    assert len(r.itl_s) == 19 - 1        # 19 token-carrying chunks
    assert r.itl_s == pytest.approx([0.01] * 18)
    assert r.chunks == 22
    assert r.tpot_s == pytest.approx((t_of(22) - t_of(1)) / 20)


def test_a_reply_cut_by_max_tokens_while_reasoning_has_no_content():
    r = feed_all(capture_chunks("chat_stream_length_sse.txt")).result()
    assert r.reasoning == "Okay, the user asks"
    assert r.content is None and r.ttfot_s is None
    assert r.finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_reasoning_only_chunks_do_not_end_anything():
    # elia's bug: stopping at the first chunk whose delta.content is not a string.
    acc = StreamAccumulator()
    d = acc.feed({"choices": [{"index": 0, "delta": {"reasoning": "think", "content": None}}]}, 0.5)
    assert d.reasoning == "think" and d.content == "" and d.has_token
    assert not acc.complete and not acc.answering
    acc.feed({"choices": [{"index": 0, "delta": {"reasoning_content": " more"}}]}, 0.6)
    acc.feed({"choices": [{"index": 0, "delta": {"content": "A"}, "finish_reason": None}]}, 0.7)
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, 0.8)
    r = acc.result()
    assert (r.reasoning, r.content, r.finish_reason) == ("think more", "A", "stop")
    assert r.e2e_s == 0.7  # no end signal: the last token
    assert acc.answering


def test_older_first_chunk_without_content_and_null_fields():
    acc = StreamAccumulator()
    acc.feed({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, 0.1)
    acc.feed({"choices": [{"index": 0, "delta": {"reasoning_content": None, "content": None}}]}, 0.2)
    assert acc.first_token_t is None and acc.result().reasoning is None and acc.result().content is None


def test_usage_chunk_and_in_stream_error():
    acc = StreamAccumulator()
    d = acc.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}, 1.0)
    assert d.usage == Usage(3, 2, 5, None) and not d.has_token
    acc.feed({"error": {"message": "Internal server error", "type": "InternalServerError", "code": 500}}, 1.1)
    assert acc.error.message == "Internal server error" and acc.error.code == 500


def test_completions_stream_text_is_content():
    chunks = capture_chunks("completions_stream_sse.txt")
    r = feed_all(chunks).result()
    assert r.content == " Okay numbers first</think> The answer is four"
    assert r.finish_reason == "length" and r.usage.completion_tokens == 8


def test_end_keeps_the_first_time_and_mark_done_sets_done():
    acc = StreamAccumulator()
    acc.end(2.0)
    acc.mark_done(3.0)
    assert acc.end_t == 2.0 and acc.done


def test_to_json_has_the_cli_keys():
    doc = feed_all(stream_chunks()).result().to_json()
    assert set(doc) == {"reasoning", "content", "usage", "finish_reason", "ttft_s", "ttfot_s", "e2e_s", "model"}
    assert doc["usage"] == {"prompt_tokens": 13, "completion_tokens": 21, "total_tokens": 34, "reasoning_tokens": 0}


@pytest.mark.parametrize("shape", SHAPES)
def test_non_streamed_response_in_every_shape(shape):
    body = reshape(capture_json("chat_nonstream.txt"), shape)
    r = result_from_response(body, e2e_s=0.25)
    assert (r.reasoning, r.content, r.finish_reason) == (REASONING, CONTENT, "stop")
    assert r.ttft_s is None and r.e2e_s == 0.25 and r.usage.completion_tokens == 21
    assert isinstance(r, ChatResult) and r.complete


def test_non_streamed_null_content():
    body = capture_json("chat_nonstream.txt")
    body["choices"][0]["message"]["content"] = None
    body["choices"][0]["finish_reason"] = "length"
    r = result_from_response(body)
    assert r.content is None and r.reasoning == REASONING


def test_reasoning_of_prefers_reasoning_and_ignores_non_strings():
    assert reasoning_of({"reasoning": "a", "reasoning_content": "a"}) == "a"
    assert reasoning_of({"reasoning": None, "reasoning_content": "b"}) == "b"
    assert reasoning_of({"reasoning": 3}) == ""
