"""The incremental SSE parser, on the real vLLM 0.32 stream and on every way a network can cut it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _fake_openai import capture_body
from r1console.core.sse import SSEEvent, SSEParser, parse_sse

CAPTURE = capture_body("chat_stream_sse.txt").encode()


def feed_pieces(pieces) -> tuple[list[SSEEvent], bool]:
    parser = SSEParser()
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events, parser.truncated


def test_the_real_vllm_stream_gives_one_event_per_chunk_and_done():
    events = parse_sse(CAPTURE)
    assert len(events) == 23
    assert events[-1].is_done and events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 21


def test_every_split_point_gives_the_same_events():
    whole = parse_sse(CAPTURE)
    for cut in range(1, len(CAPTURE)):
        events, leftover = feed_pieces([CAPTURE[:cut], CAPTURE[cut:]])
        assert events == whole, cut
        assert leftover is False


def test_byte_by_byte():
    events, _ = feed_pieces([CAPTURE[i:i + 1] for i in range(len(CAPTURE))])
    assert events == parse_sse(CAPTURE)


def test_crlf_and_lone_cr_line_endings():
    lf = parse_sse(CAPTURE)
    assert parse_sse(CAPTURE.replace(b"\n", b"\r\n")) == lf
    assert parse_sse(CAPTURE.replace(b"\n", b"\r")) == lf


def test_crlf_split_between_cr_and_lf_is_one_line_ending():
    events, _ = feed_pieces([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert [e.data for e in events] == ["a", "b"]


def test_a_lone_cr_at_the_end_of_a_piece_waits_for_the_next():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == []                     # the second CR might still be a CRLF...
    assert [e.data for e in parser.feed(b"x")] == ["a"]  # ...dispatched once it is known not to be


def test_a_final_lone_cr_ends_the_last_event_at_close():
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == []
    assert [e.data for e in parser.close()] == ["a"]
    assert parser.truncated is False


def test_multibyte_utf8_split_across_pieces():
    payload = 'data: {"reasoning":"思考 — ok"}\n\n'.encode()
    cut = payload.index("考".encode()) + 1  # inside the 3-byte character
    events, _ = feed_pieces([payload[:cut], payload[cut:]])
    assert json.loads(events[0].data) == {"reasoning": "思考 — ok"}


def test_comments_are_ignored_and_do_not_dispatch():
    events = parse_sse(b": ping\n\n:keep-alive\ndata: x\n\n")
    assert [e.data for e in events] == ["x"]


def test_field_rules():
    events = parse_sse(b"data:no-space\n\ndata:  two spaces\n\ndata\n\nevent: usage\nid: 7\nretry: 1500\n"
                       b"data: a\ndata: b\n\nbogus: 1\n\n")
    assert [e.data for e in events] == ["no-space", " two spaces", "", "a\nb"]
    assert events[3].event == "usage" and events[3].id == "7" and events[3].retry == 1500
    assert events[0].event == "message"


def test_bom_at_start_is_dropped():
    assert parse_sse(b"\xef\xbb\xbfdata: x\n\n")[0].data == "x"


def test_a_cut_stream_keeps_whole_events_and_reports_the_fragment():
    cut = CAPTURE.index(b'"content":" The"') + 5
    events, leftover = feed_pieces([CAPTURE[:cut]])
    assert leftover is True
    assert not any(e.is_done for e in events)
    assert all(json.loads(e.data) for e in events)  # no half JSON document dispatched
    assert len(events) == 15  # role chunk + 14 reasoning chunks


def test_data_lines_without_the_final_blank_line_are_not_dispatched():
    events, leftover = feed_pieces([b"data: [DONE]\n"])
    assert events == [] and leftover is True


@settings(max_examples=200, deadline=None)
@given(
    datas=st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                           max_size=30), min_size=1, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_chunking_of_any_stream(datas, newline, cuts):
    stream = "".join(f"data: {d}{newline}{newline}" for d in datas).encode()
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    events, leftover = feed_pieces(pieces)
    expected = [d for d in datas]
    assert [e.data for e in events] == expected
    assert leftover is False


def test_a_line_without_end_is_capped_not_buffered_for_ever():
    from r1console.core.sse import SSELimitError

    parser = SSEParser(max_line=1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSELimitError, match="longer than 1000"):
        parser.feed(b"y" * 200)


def test_an_event_of_many_data_lines_is_capped():
    from r1console.core.sse import SSELimitError

    parser = SSEParser(max_event=10_000)
    with pytest.raises(SSELimitError, match="larger than 10000"):
        for _ in range(200):
            parser.feed(b"data: " + b"z" * 100 + b"\n")


def test_a_long_line_in_many_pieces_is_scanned_once(monkeypatch):
    """L8: the unfinished line used to be re-scanned from its start on every feed (O(n^2) CPU)."""
    parser = SSEParser()
    scanned = 0
    real = SSEParser._drain

    def counting(self):
        nonlocal scanned
        scanned += len(self._buffer) - max(0, self._scanned - 1)
        return real(self)

    monkeypatch.setattr(SSEParser, "_drain", counting)
    parser.feed(b"data: ")
    for _ in range(4_000):              # a 256 kB line in 64-byte pieces, then its end
        parser.feed(b"q" * 64)
    events = parser.feed(b"\n\n")
    assert [e.data for e in events] == ["q" * 256_000]
    assert scanned < 2 * 256_000        # each character looked at about once (was ~33 million)


def test_crlf_split_across_feeds_after_a_long_unfinished_line():
    parser = SSEParser()
    assert parser.feed(b"data: " + b"a" * 5000) == []
    assert parser.feed(b"\r") == []
    events = parser.feed(b"\n\r\n")
    assert [e.data for e in events] == ["a" * 5000]
