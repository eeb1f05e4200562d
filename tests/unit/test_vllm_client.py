"""VllmClient against a scripted server on 127.0.0.1 (tests/unit/_fake_openai.py) that replays
real vLLM 0.32 answers, rewrites them into older field shapes, cuts streams, stalls, and
refuses keys like vLLM's middleware."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from _fake_openai import SHAPES, FakeOpenAI, capture_json, error_capture, stall, stream_chunks
from r1console.adapters.chat_runner import run_turn
from r1console.adapters.vllm_client import VllmClient, normalize_base_url
from r1console.core.api_errors import (
    AuthError,
    ContextLengthError,
    ModelNotFoundError,
    ProtocolError,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
    StreamInterrupted,
)
from r1console.core.chat import ChatSession, TurnState
from r1console.core.errors import R1Error

KEY = "sk-test-123"
QUESTION = [{"role": "user", "content": "What is 2+2?"}]
REASONING = "Okay, the user asks a short question; let me check numbers first"
CONTENT = " The answer is four."


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def client_for(srv, key=KEY, **kw) -> VllmClient:
    return VllmClient(srv.url, key, **kw)


@pytest.mark.parametrize("given, expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
    ("127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://gw.example/r1/v1", "https://gw.example/r1"),
])
def test_normalize_base_url(given, expected):
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://x", "http://", "http://h:99999", "http://h:1/?q=1"])
def test_normalize_base_url_rejects(bad):
    with pytest.raises(R1Error):
        normalize_base_url(bad)


async def test_small_endpoints(server):
    async with client_for(server) as c:
        assert await c.health() is True and await c.is_healthy()
        assert await c.version() == "0.32.0"
        (model,) = await c.models()
        assert (model.id, model.max_model_len) == ("tiny-r1", 1024)
        assert await c.model_id() == "tiny-r1"
        snap = await c.metrics()
        assert snap.running == 8.0 and snap.kv_cache_metric == "vllm:kv_cache_usage_perc"
    assert server.last("/v1/models").headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("shape", SHAPES)
async def test_stream_in_every_historical_field_shape(shape):
    with FakeOpenAI(api_key=KEY, shape=shape) as srv:
        async with client_for(srv) as c:
            stream = c.chat_stream(QUESTION, max_tokens=64, temperature=None)
            deltas = [d async for d in stream]
        sent = srv.last("/v1/chat/completions").json()
    r = stream.result
    assert (r.reasoning, r.content, r.finish_reason) == (REASONING, CONTENT, "stop")
    assert r.usage.completion_tokens == 21 and r.done
    assert 0 < r.ttft_s <= r.ttfot_s <= r.e2e_s
    assert "".join(d.reasoning for d in deltas) == REASONING
    assert "".join(d.content for d in deltas) == CONTENT
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "tiny-r1" and sent["max_tokens"] == 64 and "temperature" not in sent


async def test_stream_split_into_tiny_network_pieces_with_crlf(server):
    async def handler(request, reply):
        await reply.sse(stream_chunks("reasoning_content"), split=7, newline="\r\n")

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        r = await c.chat_stream(QUESTION).collect()
    assert (r.reasoning, r.content, r.finish_reason) == (REASONING, CONTENT, "stop")


async def test_non_streaming_chat_and_probe(server):
    async with client_for(server) as c:
        r = await c.chat(QUESTION, max_tokens=64)
        probe = await c.probe()
    assert (r.reasoning, r.content) == (REASONING, CONTENT) and r.e2e_s > 0
    assert probe.model == "tiny-r1" and probe.finish_reason == "stop" and probe.latency_s > 0
    sent = server.last("/v1/completions").json()
    assert sent == {"model": "tiny-r1", "prompt": "Hello", "max_tokens": 1, "temperature": 0}


async def test_a_stream_cut_mid_way_keeps_the_partial_reply(server):
    async def handler(request, reply):
        await reply.sse(stream_chunks(), cut_after=8)

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        stream = c.chat_stream(QUESTION)
        with pytest.raises(StreamInterrupted, match="cut mid-stream") as info:
            async for _ in stream:
                pass
    partial = info.value.partial
    assert partial.reasoning == "Okay, the user asks a short"  # the role chunk + 7 reasoning chunks
    assert partial.content is None and not partial.complete
    assert stream.result.reasoning == partial.reasoning


async def test_a_stream_that_ends_without_finishing(server):
    async def handler(request, reply):
        await reply.sse(stream_chunks()[:10], done=False)  # clean end of body, but no finish

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        with pytest.raises(StreamInterrupted, match="before finishing") as info:
            await c.chat_stream(QUESTION).collect()
    assert info.value.partial.reasoning.startswith("Okay")


async def test_finished_reply_without_done_is_complete(server):
    async def handler(request, reply):
        await reply.sse(stream_chunks()[:21], done=False)  # finish_reason, no usage, no [DONE]

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        r = await c.chat_stream(QUESTION).collect()
    assert r.finish_reason == "stop" and r.content == CONTENT and r.usage is None and not r.done


async def test_slow_server_times_out_on_small_endpoints(server):
    server.route("GET", "/health", stall(30))
    async with client_for(server, timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerTimeout, match=r"no answer from .*/health within 0.3 s"):
            await c.health()
        assert time.monotonic() - t0 < 5
        assert await c.is_healthy() is False


async def test_slow_server_before_the_first_chunk(server):
    async def handler(request, reply):
        await reply.sse(stream_chunks(), first_delay=30)

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server, stream_timeout=0.3) as c:
        with pytest.raises(ServerTimeout, match="within 0.3 s"):
            await c.chat_stream(QUESTION).collect()


async def test_a_stream_that_stalls_mid_way(server):
    async def handler(request, reply):
        await reply.start_stream()
        for chunk in stream_chunks()[:4]:
            await reply.chunk(reply._event(chunk, "\n"))
        await asyncio.sleep(30)

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server, stream_timeout=0.3) as c:
        with pytest.raises(StreamInterrupted, match="stalled: nothing for 0.3 s after 4 chunks") as info:
            await c.chat_stream(QUESTION).collect()
    assert info.value.partial.reasoning == "Okay, the"


async def test_wrong_api_key_is_a_clear_401(server):
    async with client_for(server, key="wrong") as c:
        assert await c.health()  # vLLM does not guard /health
        with pytest.raises(AuthError) as info:
            await c.chat_stream(QUESTION, model="tiny-r1").collect()
    err = info.value
    assert err.status == 401
    assert str(err).startswith("the server refused the API key (401")
    assert "--api-key-file" in str(err) and "wrong" not in str(err)  # never echo the key


async def test_missing_api_key_is_a_clear_401(server):
    async with client_for(server, key=None) as c:
        with pytest.raises(AuthError, match=r"requires an API key and none was sent \(401"):
            await c.model_id()


async def test_prompt_too_long_names_the_context_length(server):
    server.route("POST", "/v1/chat/completions", error_capture("err_too_long_chat.txt"))
    async with client_for(server) as c:
        with pytest.raises(ContextLengthError) as info:
            await c.chat_stream(QUESTION).collect()
    err = info.value
    assert (err.status, err.max_context, err.prompt_tokens) == (400, 1024, 1025)
    assert "1025 tokens" in str(err) and "context length is 1024 tokens (400)" in str(err)


async def test_max_tokens_too_big(server):
    server.route("POST", "/v1/chat/completions", error_capture("err_max_tokens_too_big.txt"))
    async with client_for(server) as c:
        with pytest.raises(ContextLengthError, match=r"--max-tokens 5000 is more than the model's context length \(1024"):
            await c.chat(QUESTION, max_tokens=5000)


async def test_other_400_quotes_the_server(server):
    server.route("POST", "/v1/chat/completions", error_capture("err_missing_messages.txt"))
    async with client_for(server) as c:
        with pytest.raises(ServerError, match=r"(?s)rejected the request \(400\).*Field required"):
            await c.chat(QUESTION)


async def test_unknown_model_is_404(server):
    async with client_for(server) as c:
        with pytest.raises(ModelNotFoundError, match=r"does not serve the model `no-such-model` \(404\)"):
            await c.chat_stream(QUESTION, model="no-such-model").collect()


async def test_wrong_base_path_is_404_not_openai(server):
    async with VllmClient(server.url + "/api", KEY) as c:
        with pytest.raises(ServerError, match="not an OpenAI-compatible endpoint") as info:
            await c.version()
    assert info.value.status == 404 and not isinstance(info.value, ModelNotFoundError)


@pytest.mark.parametrize("status, match", [(500, r"the server failed \(500"), (503, r"engine died \(503")])
async def test_5xx(server, status, match):
    async def handler(request, reply):
        await reply.json(status, {"error": {"message": "EngineCore died", "type": "InternalServerError",
                                            "code": status}})

    server.route("GET", "/health", handler)
    server.route("POST", "/v1/completions", handler)
    async with client_for(server) as c:
        with pytest.raises(ServerError, match=match) as info:
            await c.health()
        assert info.value.status == status and "EngineCore died" in str(info.value)
        with pytest.raises(ServerError, match=match):
            await c.probe()


async def test_error_sent_inside_the_stream(server):
    async def handler(request, reply):
        await reply.sse([*stream_chunks()[:3],
                         {"error": {"message": "Internal server error", "type": "InternalServerError",
                                    "code": 500}}])

    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        with pytest.raises(ServerError, match=r"mid-stream \(500\): Internal server error"):
            await c.chat_stream(QUESTION).collect()


async def test_not_json(server):
    async def handler(request, reply):
        await reply.text(200, "<html>login</html>", "text/html")

    server.route("GET", "/version", handler)
    server.route("POST", "/v1/chat/completions", handler)
    async with client_for(server) as c:
        with pytest.raises(ProtocolError, match="did not answer JSON"):
            await c.version()
        with pytest.raises(ProtocolError, match="not an event stream"):
            await c.chat_stream(QUESTION).collect()


async def test_connection_refused_says_the_server_is_not_up():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with VllmClient(f"http://127.0.0.1:{port}") as c:
        with pytest.raises(ServerUnreachable, match="connection refused") as info:
            await c.health()
    assert "SSH port-forward" in str(info.value)


async def test_a_forward_with_nothing_behind_it():
    # An SSH -L forward accepts the connection, then closes it when the far side refuses.
    async def close_at_once(reader, writer):
        writer.close()

    srv = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with VllmClient(f"http://127.0.0.1:{port}") as c:
            with pytest.raises(ServerUnreachable, match="closed the connection without answering"):
                await c.health()
    finally:
        srv.close()
        await srv.wait_closed()


async def test_a_proxy_in_the_environment_does_not_capture_loopback(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with client_for(server) as c:
        assert await c.version() == "0.32.0"


async def test_cancelling_the_consumer_closes_the_connection(server):
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handler(request, reply):
        await reply.start_stream()
        for chunk in stream_chunks()[:3]:
            await reply.chunk(reply._event(chunk, "\n"))
        if await reply.client_gone(10):
            loop.call_soon_threadsafe(gone.set)

    server.route("POST", "/v1/chat/completions", handler)
    session = ChatSession(model="tiny-r1")
    async with client_for(server) as c:
        got = asyncio.Event()

        def on_delta(turn, delta):
            # all three chunks the server sent (aiohttp may hand them over one by one)
            if turn.reasoning == "Okay,":
                got.set()

        task = asyncio.create_task(run_turn(c, session, "slow one", on_delta=on_delta))
        await asyncio.wait_for(got.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(gone.wait(), 5)  # vLLM aborts a request whose client left
    turn = session.turns[-1]
    assert turn.state is TurnState.CANCELLED and turn.reasoning == "Okay,"


async def test_run_turn_keeps_history_without_reasoning(server):
    session = ChatSession("Be brief.", params={"max_tokens": 64})
    seen = []
    async with client_for(server) as c:
        first = await run_turn(c, session, "What is 2+2?", on_delta=lambda t, d: seen.append(d))
        second = await run_turn(c, session, "And 3+3?", temperature=0)
    assert session.model == "tiny-r1"
    assert first.state is second.state is TurnState.DONE
    assert "".join(d.content for d in seen) == CONTENT
    sent = server.last("/v1/chat/completions").json()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is four."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0


async def test_run_turn_marks_failures(server):
    server.route("POST", "/v1/chat/completions", error_capture("err_too_long_chat.txt"))
    session = ChatSession(model="tiny-r1")
    async with client_for(server) as c:
        with pytest.raises(ContextLengthError):
            await run_turn(c, session, "x" * 10)
    turn = session.turns[-1]
    assert turn.state is TurnState.FAILED and "context length is 1024" in turn.error
    assert not session.streaming


async def test_models_capture_is_what_the_fake_serves():
    # Guard: the fake's default answers are the real captures, not invented data.
    with FakeOpenAI() as srv:
        async with VllmClient(srv.url) as c:
            models = await c.models()
    assert models[0].id == capture_json("models.txt")["data"][0]["id"]
