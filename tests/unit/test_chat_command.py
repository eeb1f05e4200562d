"""``r1console chat`` end to end through the CLI's main(), against the scripted server."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest

from _fake_openai import SHAPES, FakeOpenAI, capture_chunks, stream_chunks
from r1console.cli import main

KEY = "sk-cli-test"
REASONING = "Okay, the user asks a short question; let me check numbers first"


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    return str(path)


def test_streams_reasoning_then_the_answer(server, key_file, capsys):
    rc = main(["chat", "--url", server.url, "--api-key-file", key_file, "What is 2+2?"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out == REASONING + "\n\nThe answer is four.\n"
    assert "[stop · 21 tokens · first token" in err


def test_hide_reasoning(server, key_file, capsys):
    assert main(["chat", "--url", server.url, "--api-key-file", key_file, "--hide-reasoning", "Q"]) == 0
    assert capsys.readouterr().out == "The answer is four.\n"


@pytest.mark.parametrize("shape", SHAPES)
def test_json_output_in_every_field_shape(shape, key_file, capsys):
    with FakeOpenAI(api_key=KEY, shape=shape) as srv:
        rc = main(["chat", "--url", srv.url + "/v1", "--api-key-file", key_file, "--json",
                   "--system", "Be brief.", "--max-tokens", "64", "--temperature", "0", "What is 2+2?"])
        sent = srv.last("/v1/chat/completions").json()
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert set(doc) == {"reasoning", "content", "usage", "finish_reason", "ttft_s", "ttfot_s", "e2e_s", "model"}
    assert doc["reasoning"] == REASONING and doc["content"] == " The answer is four."
    assert doc["finish_reason"] == "stop" and doc["usage"]["completion_tokens"] == 21
    assert 0 < doc["ttft_s"] <= doc["ttfot_s"] <= doc["e2e_s"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.0


def test_export_with_and_without_reasoning(server, key_file, tmp_path, capsys):
    with_r = tmp_path / "with.md"
    without = tmp_path / "without.md"
    assert main(["chat", "--url", server.url, "--api-key-file", key_file, "--export", str(with_r), "Q"]) == 0
    assert main(["chat", "--url", server.url, "--api-key-file", key_file, "--export", str(without),
                 "--no-export-reasoning", "Q"]) == 0
    assert "> " + REASONING in with_r.read_text()
    assert REASONING not in without.read_text() and "The answer is four." in without.read_text()
    assert f"conversation written to {without}" in capsys.readouterr().err


def test_prompt_from_stdin(server, key_file, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 2+2?\nSecond line\n"))
    assert main(["chat", "--url", server.url, "--api-key-file", key_file, "--json", "-"]) == 0
    assert server.last("/v1/chat/completions").json()["messages"][-1]["content"] == "What is 2+2?\nSecond line\n"


def test_interactive_conversation_keeps_history(server, key_file, tmp_path, monkeypatch, capsys):
    export = tmp_path / "talk.md"
    monkeypatch.setattr("sys.stdin", io.StringIO(
        "What is 2+2?\n/system Be brief.\n\n/help\nAnd 3+3?\n/export " + str(tmp_path / "mid.md") + "\n/quit\nnever\n"))
    rc = main(["chat", "--url", server.url, "--api-key-file", key_file, "--export", str(export)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.count("The answer is four.") == 2
    chats = [r.json() for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == 2  # "/quit" stopped before "never"
    assert chats[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is four."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert "/reset" in err  # the help text
    md = export.read_text()
    assert "## 1. User\n\nWhat is 2+2?" in md and "## 2. User\n\nAnd 3+3?" in md
    assert (tmp_path / "mid.md").is_file()


def test_interactive_json_lines_and_errors_do_not_end_the_session(server, key_file, monkeypatch, capsys):
    calls = {"n": 0}
    default = server.routes[("POST", "/v1/chat/completions")]

    async def flaky(request, reply):
        calls["n"] += 1
        if calls["n"] == 1:
            await reply.sse(stream_chunks(), cut_after=4)
        else:
            await default(request, reply)

    server.route("POST", "/v1/chat/completions", flaky)
    monkeypatch.setattr("sys.stdin", io.StringIO("first\nsecond\n"))
    rc = main(["chat", "--url", server.url, "--api-key-file", key_file, "--json"])
    out, err = capsys.readouterr()
    first, second = [json.loads(line) for line in out.splitlines()]
    assert rc == 0
    assert first["reasoning"] == "Okay, the" and "cut mid-stream" in first["error"]
    assert second["content"] == " The answer is four." and "error" not in second
    assert "r1console: error: the connection was cut mid-stream" in err
    # The failed turn is not sent back as history.
    assert [m["content"] for m in server.last("/v1/chat/completions").json()["messages"]] == ["second"]


def test_a_cut_stream_fails_with_the_partial_reply(server, key_file, capsys):
    async def handler(request, reply):
        await reply.sse(stream_chunks(), cut_after=6)

    server.route("POST", "/v1/chat/completions", handler)
    rc = main(["chat", "--url", server.url, "--api-key-file", key_file, "Q"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == "Okay, the user asks\n"
    assert "r1console: error: the connection was cut mid-stream after 6 chunks" in err


def test_length_without_answer_warns(server, key_file, capsys):
    async def handler(request, reply):
        await reply.sse(capture_chunks("chat_stream_length_sse.txt"))

    server.route("POST", "/v1/chat/completions", handler)
    assert main(["chat", "--url", server.url, "--api-key-file", key_file, "--max-tokens", "5", "Q"]) == 0
    err = capsys.readouterr().err
    assert "hit the token limit while still reasoning: no answer (raise --max-tokens)" in err


def test_wrong_key_is_a_clear_401(server, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.write_text("not-the-key")
    assert main(["chat", "--url", server.url, "--api-key-file", str(bad), "Q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("r1console: error: the server refused the API key (401")
    assert "not-the-key" not in err and "Traceback" not in err


def test_no_key_is_a_clear_401(server, capsys):
    assert main(["chat", "--url", server.url, "Q"]) == 1
    assert "requires an API key and none was sent (401" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(None, "cannot read --api-key-file"), ("", "is empty"),
                                              ("a\nb\n", "more than one line")])
def test_bad_key_files(tmp_path, capsys, content, message):
    path = tmp_path / "k"
    if content is not None:
        path.write_text(content)
    assert main(["chat", "--url", "http://127.0.0.1:9", "--api-key-file", str(path), "Q"]) == 2
    assert message in capsys.readouterr().err


def test_export_into_a_missing_directory_fails_before_sending(server, key_file, tmp_path, capsys):
    rc = main(["chat", "--url", server.url, "--api-key-file", key_file, "--export", str(tmp_path / "no/x.md"), "Q"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    assert server.requests == []


def test_server_not_up(capsys):
    assert main(["chat", "--url", "http://127.0.0.1:9", "Q"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to http://127.0.0.1:9: connection refused" in err and "port-forward" in err


@pytest.mark.skipif(importlib.util.find_spec("r1console.adapters.reach") is not None,
                    reason="the cluster layer exists: --job is tested with it")
def test_job_without_the_cluster_layer_is_a_clear_error(capsys):
    assert main(["chat", "--job", "12345", "Q"]) == 2
    assert "--job needs the cluster layer" in capsys.readouterr().err


def test_job_and_url_are_exclusive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["chat", "--job", "1", "--url", "http://x", "Q"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["chat", "--url", "http://x", "--max-tokens", "0", "Q"])


def test_job_uses_the_url_and_key_of_the_cluster_layer(server, key_file, monkeypatch, capsys):
    import contextlib

    import r1console.commands.chat as chat_cmd

    asked = []

    @contextlib.asynccontextmanager
    async def open_job_server(job_id, cluster):
        asked.append((job_id, cluster))
        yield server.url, KEY

    monkeypatch.setattr(chat_cmd, "open_job_server", open_job_server)
    assert main(["chat", "--job", "4242", "--cluster", "lab", "--json", "Q"]) == 0
    assert json.loads(capsys.readouterr().out)["content"] == " The answer is four."
    assert asked == [("4242", "lab")]
    # --api-key-file overrides the job's key.
    bad = key_file + ".bad"
    with open(bad, "w") as f:
        f.write("other")
    assert main(["chat", "--job", "4242", "--api-key-file", bad, "Q"]) == 1
    assert "refused the API key (401" in capsys.readouterr().err
