"""The simulated vLLM server over real HTTP on 127.0.0.1: every endpoint, shapes identical to the
real vLLM 0.32 captures (tests/data/vllm-0.32/), version switches, auth, faults, counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from r1console.core.prometheus import ServerMetrics, parse_metrics
from r1console.core.sse import parse_sse
from r1console.demo.sim_engine import LengthModel
from r1console.demo.sim_server import Faults, SimServer

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-0.32"
SHORT = LengthModel(reasoning_median=14, reasoning_sigma=0.3, reasoning_min=4, reasoning_max=40,
                    answer_median=6, answer_sigma=0.3, answer_min=2, answer_max=20)
LONG = LengthModel(reasoning_median=5000, reasoning_sigma=0.01, reasoning_min=4000,
                   answer_median=500, answer_sigma=0.01)
CHAT = [{"role": "user", "content": "What are gravitational waves?"}]


def capture(name: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a curl -i capture."""
    raw = (DATA / name).read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def shape(obj):
    """Keys (in order) and value types, recursively; lists by their first element."""
    if isinstance(obj, dict):
        return [(k, shape(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return ["list", shape(obj[0]) if obj else None]
    return "null" if obj is None else type(obj).__name__


def chunk_kind(data: str) -> str:
    if data.strip() == "[DONE]":
        return "done"
    chunk = json.loads(data)
    if not chunk["choices"]:
        return "usage"
    choice = chunk["choices"][0]
    if "delta" not in choice:
        return "finish" if choice["finish_reason"] else "text"
    delta = choice["delta"]
    if "role" in delta:
        return "role"
    if choice["finish_reason"]:
        return "finish"
    if "reasoning" in delta or "reasoning_content" in delta:
        return "reasoning"
    return "content"


def by_kind(events) -> dict[str, list]:
    out: dict[str, list] = {}
    for ev in events:
        kind = chunk_kind(ev.data)
        out.setdefault(kind, []).append(None if kind == "done" else json.loads(ev.data))
    return out


def sequence(events) -> list[str]:
    kinds: list[str] = []
    for ev in events:
        kind = chunk_kind(ev.data)
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    return kinds


@contextlib.asynccontextmanager
async def sim(**kw):
    kw.setdefault("time_scale", 0.0)
    kw.setdefault("served_model_name", "tiny-r1")
    kw.setdefault("max_model_len", 1024)
    kw.setdefault("kv_cache_tokens", 310_688)
    kw.setdefault("lengths", SHORT)
    headers = {"Authorization": f"Bearer {kw['api_key']}"} if kw.get("api_key") else {}
    async with SimServer(**kw) as srv:
        async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=20) as client:
            yield srv, client


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


# ---- simple endpoints ---------------------------------------------------------------------

async def test_health_version_models_load_like_vllm_032():
    async with sim(vllm_version="0.32.0") as (srv, c):
        assert srv.url.startswith("http://127.0.0.1:")
        for path, name in (("/version", "version.txt"), ("/v1/models", "models.txt")):
            r = await c.get(path)
            status, headers, body = capture(name)
            assert r.status_code == status
            assert list(r.headers.keys()) == list(headers.keys())  # date, server, content-length, ...
            assert r.headers["server"] == "uvicorn"
            assert shape(r.json()) == shape(json.loads(body))
        assert (await c.get("/version")).json() == {"version": "0.32.0"}
        r = await c.get("/health")  # research capture health.txt: 200, these headers, empty body
        assert r.status_code == 200 and r.content == b""
        assert list(r.headers.keys()) == ["date", "server", "content-length", "vary"]
        models = (await c.get("/v1/models")).json()
        assert models["data"][0]["id"] == "tiny-r1" and models["data"][0]["max_model_len"] == 1024
        assert (await c.get("/load")).json() == {"server_load": 0}
        assert (await c.get("/nope")).status_code == 404
        assert (await c.post("/health")).status_code == 405


# ---- chat: non-streaming and streaming vs the captures -----------------------------------

async def test_chat_nonstream_has_the_032_shape():
    async with sim(vllm_version="0.32.0") as (_, c):
        r = await c.post("/v1/chat/completions", json={"model": "tiny-r1", "messages": CHAT})
        status, headers, body = capture("chat_nonstream.txt")
        assert r.status_code == 200
        assert list(r.headers.keys()) == list(headers.keys())
        real, ours = json.loads(body), r.json()
        assert shape(ours) == shape(real)
        msg = ours["choices"][0]["message"]
        assert ours["choices"][0]["finish_reason"] == "stop"
        assert msg["reasoning"].startswith("Okay") and msg["content"].startswith("\n\n")
        assert "reasoning_content" not in msg
        usage = ours["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


async def test_chat_stream_chunk_types_match_the_032_capture():
    async with sim(vllm_version="0.32.0") as (_, c):
        async with c.stream("POST", "/v1/chat/completions",
                            json={"model": "tiny-r1", "messages": CHAT, "stream": True,
                                  "stream_options": {"include_usage": True}}) as r:
            raw = await r.aread()
            headers = r.headers
        status, real_headers, real_body = capture("chat_stream_sse.txt")
        assert list(headers.keys()) == list(real_headers.keys())
        assert headers["content-type"] == real_headers["content-type"] == "text/event-stream; charset=utf-8"
        assert headers["transfer-encoding"] == "chunked"
        ours, real = parse_sse(raw), parse_sse(real_body)
        assert sequence(ours) == sequence(real) == ["role", "reasoning", "content", "finish", "usage", "done"]
        mine, theirs = by_kind(ours), by_kind(real)
        for kind in ("role", "reasoning", "content", "finish", "usage"):
            assert shape(mine[kind][0]) == shape(theirs[kind][0]), kind
            assert all(shape(x) == shape(mine[kind][0]) for x in mine[kind]), kind
        assert mine["finish"][0]["choices"][0]["delta"] == {"content": ""}
        assert mine["finish"][0]["choices"][0]["finish_reason"] == "stop"
        ids = {json.loads(e.data)["id"] for e in ours if not e.is_done}
        assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
        usage = mine["usage"][0]["usage"]
        tokens = len(mine["reasoning"]) + len(mine["content"]) + 2  # + </think> (no chunk) + EOS
        assert usage["completion_tokens"] == tokens


async def test_chat_stream_cut_by_max_tokens_matches_the_length_capture():
    async with sim(vllm_version="0.32.0") as (_, c):
        async with c.stream("POST", "/v1/chat/completions",
                            json={"messages": CHAT, "stream": True, "max_tokens": 5,
                                  "stream_options": {"include_usage": True}}) as r:
            ours = parse_sse(await r.aread())
        real = parse_sse(capture("chat_stream_length_sse.txt")[2])
        assert sequence(ours) == sequence(real) == ["role", "reasoning", "finish", "usage", "done"]
        mine, theirs = by_kind(ours), by_kind(real)
        for kind in ("role", "reasoning", "finish", "usage"):
            assert shape(mine[kind][0]) == shape(theirs[kind][0]), kind
        last = mine["finish"][0]["choices"][0]
        assert last["finish_reason"] == "length" and "reasoning" in last["delta"]
        assert mine["usage"][0]["usage"]["completion_tokens"] == 5


async def test_nonstream_cut_while_reasoning_has_null_content():
    async with sim(vllm_version="0.32.0") as (_, c):
        r = await c.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 3})
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "length"
        assert choice["message"]["content"] is None and choice["message"]["reasoning"]


async def test_no_usage_chunk_without_stream_options():
    async with sim(vllm_version="0.32.0") as (_, c):
        async with c.stream("POST", "/v1/chat/completions", json={"messages": CHAT, "stream": True}) as r:
            events = parse_sse(await r.aread())
        assert sequence(events)[-2:] == ["finish", "done"]


# ---- completions ------------------------------------------------------------------------

async def test_completions_match_the_032_captures():
    async with sim(vllm_version="0.32.0", lengths=LengthModel(
            reasoning_median=3, reasoning_sigma=0.01, reasoning_min=3, reasoning_max=3,
            answer_median=10, answer_sigma=0.01, answer_min=10)) as (_, c):
        r = await c.post("/v1/completions", json={"model": "tiny-r1", "prompt": "Hi", "max_tokens": 30})
        status, headers, body = capture("completions.txt")
        assert list(r.headers.keys()) == list(headers.keys())
        assert shape(r.json()) == shape(json.loads(body))
        text = r.json()["choices"][0]["text"]
        assert "</think>" in text  # no reasoning parsing on this endpoint, as in real vLLM
        async with c.stream("POST", "/v1/completions",
                            json={"prompt": "Hi", "max_tokens": 8, "stream": True,
                                  "stream_options": {"include_usage": True}}) as s:
            ours = parse_sse(await s.aread())
        real = parse_sse(capture("completions_stream_sse.txt")[2])
        assert sequence(ours) == sequence(real)
        mine, theirs = by_kind(ours), by_kind(real)
        for kind in ("text", "finish", "usage"):
            assert shape(mine[kind][0]) == shape(theirs[kind][0]), kind
        texts = [json.loads(e.data)["choices"][0]["text"] for e in ours if chunk_kind(e.data) in ("text", "finish")]
        assert texts[3] == "</think>" and len(texts) == 8


# ---- errors ------------------------------------------------------------------------------

async def test_errors_match_the_032_captures():
    async with sim(vllm_version="0.32.0") as (_, c):
        r = await c.post("/v1/chat/completions", json={"model": "no-such-model", "messages": CHAT})
        status, _, body = capture("err_bad_model.txt")
        assert (r.status_code, r.content) == (status, body)

        r = await c.post("/v1/chat/completions", json={"model": "tiny-r1", "messages": CHAT, "max_tokens": 5000})
        status, _, body = capture("err_max_tokens_too_big.txt")
        assert (r.status_code, r.content) == (status, body)

        r = await c.post("/v1/chat/completions", json={"model": "tiny-r1"})
        status, _, body = capture("err_missing_messages.txt")
        assert (r.status_code, r.content) == (status, body)

        r = await c.post("/v1/chat/completions", content=b'{"model": "tiny-r1", "messages": ]')
        status, _, body = capture("err_bad_json.txt")
        assert r.status_code == status and shape(r.json()) == shape(json.loads(body))
        assert r.json()["error"]["type"] == "Bad Request" and "json_invalid" in r.json()["error"]["message"]

        long_prompt = [{"role": "user", "content": "word " * 1100}]
        for path, payload in (("/v1/chat/completions", {"messages": long_prompt}),
                              ("/v1/completions", {"prompt": "word " * 1100})):
            r = await c.post(path, json=payload)
            status, _, body = capture("err_too_long_chat.txt")
            assert r.status_code == status and shape(r.json()) == shape(json.loads(body))
            # the same text; only our token count (the capture's 1025) differs
            pattern = re.escape(json.loads(body)["error"]["message"]).replace("1025", r"(\d+)")
            m = re.fullmatch(pattern, r.json()["error"]["message"])
            assert m and int(m.group(1)) > 1024


async def test_old_versions_use_the_flat_error_body():
    async with sim(vllm_version="0.8.5.post1") as (_, c):
        r = await c.post("/v1/chat/completions", json={"model": "nope", "messages": CHAT})
        assert r.status_code == 404
        assert r.json() == {"object": "error", "message": "The model `nope` does not exist.",
                            "type": "NotFoundError", "param": None, "code": 404}


# ---- versions ----------------------------------------------------------------------------

async def _stream_delta_keys(c: httpx.AsyncClient) -> set[str]:
    async with c.stream("POST", "/v1/chat/completions", json={"messages": CHAT, "stream": True}) as r:
        events = parse_sse(await r.aread())
    keys: set[str] = set()
    for ev in events:
        if chunk_kind(ev.data) == "reasoning":
            keys |= set(json.loads(ev.data)["choices"][0]["delta"])
    return keys


@pytest.mark.parametrize("version,fields,kv_metric,itl_metric", [
    ("0.8.5.post1", {"reasoning_content"}, "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"),
    ("0.11.2", {"reasoning", "reasoning_content"}, "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
    ("0.16.0", {"reasoning"}, "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
    ("0.32.0", {"reasoning"}, "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
])
async def test_reasoning_field_and_metric_names_follow_the_version(version, fields, kv_metric, itl_metric):
    async with sim(vllm_version=version) as (_, c):
        assert await _stream_delta_keys(c) == fields
        message = (await c.post("/v1/chat/completions", json={"messages": CHAT})).json()["choices"][0]["message"]
        assert fields <= set(message) and not ({"reasoning", "reasoning_content"} - fields) & set(message)
        assert (await c.get("/version")).json() == {"version": version}
        text = (await c.get("/metrics")).text
        names = {s.name for s in parse_metrics(text).samples}
        assert kv_metric in names
        assert ("vllm:gpu_cache_usage_perc" in names) == (version == "0.8.5.post1")
        assert ("vllm:kv_cache_usage_perc" in names) == (version != "0.8.5.post1")
        assert f"{itl_metric}_count" in names
        parsed = ServerMetrics.from_text(text)
        assert parsed.kv_cache_metric == kv_metric and parsed.itl.count > 0
        assert parsed.model_names == ("tiny-r1",)


async def test_metrics_032_have_the_captured_series_names():
    real = {s.name for s in parse_metrics(capture_body("metrics_under_load.txt")).samples
            if s.name.startswith("vllm:")}
    async with sim(vllm_version="0.32.0") as (_, c):
        ours = {s.name for s in parse_metrics((await c.get("/metrics")).text).samples}
    assert real - ours == set()


def capture_body(name: str) -> str:
    return (DATA / name).read_text()


# ---- /metrics moves with the load ---------------------------------------------------------

async def test_metrics_show_running_waiting_kv_then_totals():
    async with sim(vllm_version="0.32.0", max_num_seqs=2, time_scale=0.05, lengths=LONG,
                   max_model_len=16384, kv_cache_tokens=65536) as (srv, c):
        async def one(i: int) -> None:
            async with c.stream("POST", "/v1/chat/completions",
                                json={"messages": [{"role": "user", "content": f"question {i}"}],
                                      "stream": True}) as r:
                async for _ in r.aiter_bytes():
                    pass

        tasks = [asyncio.create_task(one(i)) for i in range(6)]
        await wait_for(lambda: srv.engine.num_running == 2 and srv.engine.num_waiting == 4)
        await wait_for(lambda: srv.engine.metrics.generation_tokens > 20)
        m = ServerMetrics.from_text((await c.get("/metrics")).text)
        assert (m.running, m.waiting) == (2, 4)
        assert 0 < m.kv_cache_usage < 1
        assert m.generation_tokens_total >= 20 and m.prompt_tokens_total > 0
        assert m.ttft.count == 2
        state = (await c.get("/_sim/state")).json()
        assert state["in_flight"] == 6 and state["running"] == 2 and state["waiting"] == 4
        for t in tasks:  # clients go away: the engine aborts their requests
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wait_for(lambda: srv.in_flight == 0 and not srv.engine.has_work())
        state = (await c.get("/_sim/state")).json()
        assert state["aborted"] == 6 and state["completed"] == 0
        m = ServerMetrics.from_text((await c.get("/metrics")).text)
        assert (m.running, m.waiting, m.kv_cache_usage) == (0, 0, 0)
        assert sum(m.requests_finished.values()) == 0  # aborts are not "successes" (as in 0.32)


async def test_metric_totals_equal_the_usage_of_the_responses():
    async with sim(vllm_version="0.32.0", max_num_seqs=3) as (_, c):
        prompts = [f"Explain topic number {i} in detail." for i in range(7)]
        results = await asyncio.gather(*(c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": p}], "max_tokens": 12 + i}) for i, p in enumerate(prompts)))
        usages = [r.json()["usage"] for r in results]
        m = ServerMetrics.from_text((await c.get("/metrics")).text)
        assert m.generation_tokens_total == sum(u["completion_tokens"] for u in usages)
        assert m.prompt_tokens_total == sum(u["prompt_tokens"] for u in usages)
        assert sum(m.requests_finished.values()) == 7 and m.ttft.count == 7 and m.e2e.count == 7
        reasons = [r.json()["choices"][0]["finish_reason"] for r in results]
        assert m.requests_finished["length"] == reasons.count("length")


# ---- auth --------------------------------------------------------------------------------

async def test_api_key_guards_every_route_but_health_like_the_job():
    async with sim(vllm_version="0.32.0", api_key="s3cret") as (srv, c):
        assert (await c.get("/v1/models")).status_code == 200
        async with httpx.AsyncClient(base_url=srv.url) as anon:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
                for path in ("/v1/models", "/version", "/load", "/metrics", "/invocations", "/tokenize", "/docs"):
                    r = await anon.get(path, headers=headers)
                    assert r.status_code == 401 and r.content == b'{"error":"Unauthorized"}', path
                r = await anon.post("/v1/chat/completions", headers=headers, json={"messages": CHAT})
                assert r.status_code == 401
                assert (await anon.request("OPTIONS", "/v1/models", headers=headers)).status_code == 401
            for path in ("/health", "/_sim/state"):  # /_sim/* is the simulator's control plane
                assert (await anon.get(path)).status_code == 200
            assert (await anon.get("/v1/models", headers={"Authorization": "bearer s3cret"})).status_code == 200
            assert (await c.get("/version")).json() == {"version": "0.32.0"}


async def test_identity_route_proves_the_key_without_it():
    from r1console.core.exposure import IdentityError, check_identity, new_challenge

    async with sim(vllm_version="0.32.0", api_key="s3cret", job_id="4242") as (srv, _c):
        async with httpx.AsyncClient(base_url=srv.url) as anon:
            challenge = new_challenge()
            r = await anon.get("/r1c/identity", params={"challenge": challenge})
            assert r.status_code == 200 and r.json()["job_id"] == "4242"
            check_identity(r.status_code, r.json(), key="s3cret", job_id="4242", challenge=challenge, where="sim")
            with pytest.raises(IdentityError, match="could not prove"):
                check_identity(r.status_code, r.json(), key="other", job_id="4242", challenge=challenge,
                               where="sim")
            with pytest.raises(IdentityError, match="not job 4243"):
                check_identity(r.status_code, r.json(), key="s3cret", job_id="4243", challenge=challenge,
                               where="sim")
            assert (await anon.get("/r1c/identity", params={"challenge": "x; rm"})).status_code == 400


# ---- faults ------------------------------------------------------------------------------

async def test_5xx_fault_from_the_constructor_with_a_limit():
    async with sim(vllm_version="0.32.0", faults=Faults(status_5xx_rate=1.0, limit=2)) as (srv, c):
        codes = [(await c.post("/v1/chat/completions", json={"messages": CHAT})).status_code for _ in range(4)]
        assert codes == [500, 500, 200, 200]
        r = await c.get("/_sim/state")
        assert r.json()["faults_injected"]["status_5xx"] == 2 and r.json()["completed"] == 2
        srv.set_faults(status_5xx_rate=1.0, status_5xx_code=503, limit=None)
        r = await c.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == 503


async def test_drop_fault_toggled_at_runtime_cuts_the_stream_after_n_tokens():
    async with sim(vllm_version="0.32.0") as (srv, c):
        r = await c.post("/_sim/faults", json={"drop_after_tokens": 3})
        assert r.status_code == 200 and r.json()["drop_after_tokens"] == 3
        assert srv.faults.drop_after_tokens == 3
        received: list[str] = []
        with pytest.raises(httpx.HTTPError):
            async with c.stream("POST", "/v1/chat/completions", json={"messages": CHAT, "stream": True}) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data: "):
                        received.append(line)
        kinds = [chunk_kind(line[6:]) for line in received]
        assert kinds == ["role", "reasoning", "reasoning", "reasoning"]
        with pytest.raises(httpx.HTTPError):  # non-streaming: no response at all
            await c.post("/v1/chat/completions", json={"messages": CHAT})
        await wait_for(lambda: srv.in_flight == 0 and not srv.engine.has_work())
        assert srv.state()["faults_injected"]["dropped"] == 2
        assert [rec["status"] for rec in srv.records()] == ["dropped", "dropped"]
        assert (await c.delete("/_sim/faults")).json()["drop_after_tokens"] is None
        assert (await c.post("/v1/chat/completions", json={"messages": CHAT})).status_code == 200


async def test_stall_fault_makes_a_client_time_out_and_the_request_is_aborted():
    async with sim(vllm_version="0.32.0", faults=Faults(stall_s=30.0)) as (srv, c):
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/v1/chat/completions", json={"messages": CHAT}, timeout=0.3)
        await wait_for(lambda: srv.in_flight == 0)
        state = srv.state()
        assert state["faults_injected"]["stalled"] == 1 and state["aborted"] == 1
        srv.set_faults(stall_s=0.2, stall_after_tokens=2)
        async with c.stream("POST", "/v1/chat/completions", json={"messages": CHAT, "stream": True}) as s:
            events = parse_sse(await s.aread())
        assert sequence(events)[-1] == "done"  # a mid-stream stall delays, it does not break
        assert srv.state()["faults_injected"]["stalled"] == 2


async def test_unhealthy_and_invalid_faults():
    async with sim(vllm_version="0.32.0") as (srv, c):
        await c.post("/_sim/faults", json={"unhealthy": True})
        assert (await c.get("/health")).status_code == 503
        r = await c.post("/_sim/faults", json={"status_5xx_rate": 2})
        assert r.status_code == 400 and "status_5xx_rate" in r.json()["detail"]
        r = await c.post("/_sim/faults", json={"explode": True})
        assert r.status_code == 400 and "unknown fault" in r.json()["detail"]
        assert (await c.get("/_sim/faults")).json()["unhealthy"] is True
    async with sim(vllm_version="0.8.5.post1", faults=Faults(unhealthy=True)) as (_, c):
        assert (await c.get("/health")).status_code == 500
    with pytest.raises(ValueError):
        SimServer(faults=Faults(drop_rate=-1))


# ---- counters for the batch reliability tests -----------------------------------------------

async def test_state_counts_requests_duplicates_and_records():
    async with sim(vllm_version="0.32.0") as (srv, c):
        for content in ("a question", "another question", "a question"):
            r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]},
                             headers={"X-Request-Id": content})
            assert r.status_code == 200
        await c.post("/v1/chat/completions", json={"model": "wrong", "messages": CHAT})
        state = (await c.get("/_sim/state")).json()
        assert state["requests_seen"] == 4 and state["completed"] == 3 and state["rejected"] == 1
        assert state["duplicates"] == 1 and state["completed_duplicates"] == 1
        assert state["in_flight"] == 0 and state["by_endpoint"] == {"/v1/chat/completions": 4}
        records = (await c.get("/_sim/requests")).json()["requests"]
        assert [r["status"] for r in records] == ["completed", "completed", "completed", "rejected"]
        assert records[0]["fingerprint"] == records[2]["fingerprint"] != records[1]["fingerprint"]
        assert records[1]["x_request_id"] == "another question" and records[3]["http_status"] == 404
        assert (await c.post("/_sim/reset")).json()["requests_seen"] == 0


async def test_same_seed_same_answers_and_temperature_zero_is_repeatable():
    payload = {"messages": [{"role": "user", "content": "Why is the sky blue?"}], "temperature": 0}
    answers = []
    for _ in range(2):
        async with sim(vllm_version="0.32.0", seed=9, lengths=LengthModel()) as (_, c):
            first = (await c.post("/v1/chat/completions", json=payload)).json()
            again = (await c.post("/v1/chat/completions", json=payload)).json()
            assert first["choices"][0]["message"] == again["choices"][0]["message"]
            answers.append(first["choices"][0]["message"])
    assert answers[0] == answers[1]
    assert answers[0]["content"] and len(answers[0]["reasoning"]) > 200


# ---- HTTP details ------------------------------------------------------------------------

async def _raw(url: str, data: bytes, *, until_close: bool = True) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(-1), 10) if until_close else b""
    writer.close()
    return out


async def test_keep_alive_chunked_upload_and_http10_streaming():
    async with sim(vllm_version="0.32.0") as (srv, _):
        two = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = await _raw(srv.url, two)
        assert out.count(b"HTTP/1.1 200 OK") == 2 and out.endswith(b'{"version":"0.32.0"}')

        body = json.dumps({"messages": CHAT, "max_tokens": 4}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        out = await _raw(srv.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        assert out.startswith(b"HTTP/1.1 200 OK") and b'"finish_reason":"length"' in out

        req = json.dumps({"messages": CHAT, "stream": True}).encode()
        out = await _raw(srv.url, b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(req), req))
        head, _, payload = out.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower() and b"connection: close" in head
        assert sequence(parse_sse(payload))[-1] == "done"

        out = await _raw(srv.url, b"NONSENSE\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 Bad Request")


async def test_access_and_ready_log_lines(tmp_path):
    out, err = (tmp_path / "out").open("w+"), (tmp_path / "err").open("w+")
    async with sim(vllm_version="0.32.0", log_stream=out, err_stream=err, stats_interval_s=0.0) as (srv, c):
        await c.get("/health")
        await c.post("/v1/chat/completions", json={"messages": CHAT})
    out.seek(0), err.seek(0)
    log, errlog = out.read(), err.read()
    port = srv.port
    assert re.search(rf"^\(APIServer pid=\d+\) INFO \d\d-\d\d \d\d:\d\d:\d\d \[entry\.py:140\] "
                     rf"Starting vLLM server on http://127\.0\.0\.1:{port}$", log, re.M)
    assert re.search(r'^INFO:     127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200 OK$', log, re.M)
    assert re.search(r'^INFO:     127\.0\.0\.1:\d+ - "POST /v1/chat/completions HTTP/1\.1" 200 OK$', log, re.M)
    assert re.search(r"Engine 000: Avg prompt throughput: [\d.]+ tokens/s, Avg generation throughput: [\d.]+ "
                     r"tokens/s, Running: \d+ reqs, Waiting: \d+ reqs, GPU KV cache usage: [\d.]+%", log)
    assert errlog.splitlines()[-1] == "INFO:     Application startup complete."


def test_cli_sim_server_starts_serves_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "r1console", "sim-server", "--port", "0", "--time-scale", "0",
                             "--vllm-version", "0.16.0", "--api-key", "k"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            # docs/facts.md §2.3 readiness regex; 0.16 says "Starting vLLM API server 0 on URL"
            m = re.search(r"Starting vLLM (?:API )?server(?: \d+)? on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "no ready line"
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/v1/models").status_code == 401
        r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer k"},
                       json={"messages": CHAT, "max_tokens": 20}, timeout=10)
        assert r.json()["choices"][0]["message"]["reasoning"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_options():
    result = subprocess.run([sys.executable, "-m", "r1console", "sim-server", "--vllm-version", "latest"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "--vllm-version" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "r1console", "sim-server", "--max-num-seqs", "64",
                             "--max-num-batched-tokens", "8"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "max_num_batched_tokens" in result.stderr
