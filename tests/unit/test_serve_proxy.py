"""The endpoint of `r1console serve` (aiohttp) in front of in-process simulated vLLM servers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from r1console.adapters.serve_proxy import ServeProxy
from r1console.core.prometheus import parse_metrics
from r1console.core.replicas import Replica, ReplicaSet
from r1console.demo.sim_server import SimServer

KEY = "local"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "deepseek-ai/DeepSeek-R1", "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 24, "stream": True}


@pytest.fixture
async def two():
    sims = [await SimServer(time_scale=0.0, api_key=f"k{i}", seed=1, vllm_version="0.32.0").start()
            for i in range(2)]
    rs = ReplicaSet()
    for i, sim in enumerate(sims):
        rs.add(Replica(f"j{i}", sim.url, f"k{i}"))
    proxy = await ServeProxy(rs, api_key=KEY, port=0, wait_for_replica_s=1.0).start()
    async with aiohttp.ClientSession() as http:
        yield proxy, sims, rs, http
    await proxy.stop()
    for sim in sims:
        await sim.stop()


async def test_every_route_but_health_needs_the_local_key(two):
    proxy, sims, _rs, http = two
    for method, path in (("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/v1/chat/completions"),
                         ("GET", "/version")):
        for headers in ({}, {"Authorization": "Bearer k0"}):          # a replica's key is not the endpoint's
            async with http.request(method, proxy.url + path, json=CHAT, headers=headers) as r:
                assert r.status == 401, (method, path)
    async with http.get(proxy.url + "/health") as r:
        assert r.status == 200
    assert sum(s.state()["requests_seen"] for s in sims) == 0


async def test_stream_passes_through_byte_for_byte(two):
    proxy, sims, _rs, http = two
    async with http.post(sims[0].url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer k0"}) as r:
        direct = await r.read()
    async with http.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        via = await r.read()
    strip = lambda b: [line for line in b.split(b"\n") if b'"id"' not in line and b"created" not in line]  # noqa: E731
    assert via.count(b"data: ") == direct.count(b"data: ") > 10
    assert via.endswith(b"data: [DONE]\n\n") and len(strip(via)) == len(strip(direct))


async def test_a_dead_replica_loses_no_request(two):
    proxy, sims, rs, http = two
    await sims[0].stop()                                 # refuses connections from now on

    async def ask(i: int) -> int:
        body = {**CHAT, "messages": [{"role": "user", "content": f"q{i}"}]}
        async with http.post(proxy.url + "/v1/chat/completions", json=body, headers=AUTH) as r:
            await r.read()
            return r.status

    assert await asyncio.gather(*(ask(i) for i in range(10))) == [200] * 10
    assert proxy.requests_moved >= 1 and rs.get("j0").state == "down"
    assert sims[1].state()["completed"] == 10


async def test_cut_before_the_first_byte_moves_the_request(two):
    proxy, sims, rs, http = two
    sims[0].set_faults(drop_after_tokens=0)
    sims[1].set_faults(drop_after_tokens=0, limit=0)
    rs.get("j1").last_pick = 10**9                       # j0 is chosen first
    async with http.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": False}, headers=AUTH) as r:
        assert r.status == 200 and (await r.json())["choices"][0]["message"]
    assert proxy.requests_moved == 1


async def test_cut_mid_stream_reaches_the_client(two):
    proxy, sims, rs, http = two
    for sim in sims:
        sim.set_faults(drop_after_tokens=5)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as r:
            await r.read()
    assert proxy.cut_mid_stream == 1


async def test_models_metrics_health_aggregated(two):
    proxy, sims, rs, http = two
    for _ in range(4):
        async with http.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as r:
            await r.read()
    async with http.get(proxy.url + "/v1/models", headers=AUTH) as r:
        models = await r.json()
    assert [m["id"] for m in models["data"]] == ["deepseek-ai/DeepSeek-R1"]
    async with http.get(proxy.url + "/metrics", headers=AUTH) as r:
        merged = parse_metrics(await r.text())
    gen = sum(s.state()["generation_tokens"] for s in sims)
    assert merged.value("vllm:generation_tokens_total") == gen > 0
    assert merged.by_label("r1console_serve_requests_total", "replica") == {"j0": 2, "j1": 2}
    rs.mark_down("j0")
    rs.mark_down("j1")
    async with http.get(proxy.url + "/health") as r:
        assert r.status == 503
    async with http.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as r:
        assert r.status == 503 and "no replica" in (await r.json())["error"]["message"]


async def test_a_replica_that_leaves_has_its_hanging_requests_moved(two):
    """A job's server that never answers nor closes (engine killed, HTTP server alive): when the
    controller sees the job leave, requests not streaming yet move to another replica."""
    proxy, sims, rs, http = two
    sims[0].set_faults(stall_s=30.0)                      # j0 accepts and then says nothing
    rs.get("j1").last_pick = 10**9                        # j0 is chosen first

    async def ask() -> int:
        async with http.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as r:
            await r.read()
            return r.status

    pending = asyncio.ensure_future(ask())
    for _ in range(100):
        if rs.get("j0").outstanding:
            break
        await asyncio.sleep(0.01)
    assert rs.get("j0").outstanding == 1
    rs.remove("j0")
    assert proxy.abort_replica("j0") == 1
    assert await asyncio.wait_for(pending, timeout=5) == 200
    assert proxy.requests_moved == 1 and sims[1].state()["completed"] == 1
