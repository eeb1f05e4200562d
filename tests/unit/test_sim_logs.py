"""Simulated vLLM/uvicorn log lines: the console's own log parser understands them for every
version, and the 0.32 ones have the format of the real capture (tests/data/vllm-0.32/startup.*)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from r1console.core import logparse as lp
from r1console.demo.sim_logs import (
    CYAN,
    StartupSpec,
    VllmLogFormat,
    access_line,
    ready_log_lines,
    shard_bar,
    startup_log_lines,
    stats_line,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-0.32"
START = dt.datetime(2026, 6, 3, 21, 0, 0)
# docs/facts.md §2.2 / §2.3
SHARD_RE = re.compile(r"Loading (?:safetensors|pt|np_cache) checkpoint shards(?: \(eager\))?:\s+(\d+)%(?: Completed)?"
                      r"\s*\|?\s*(\d+)/(\d+) \[([^<\]]+)<([^,\]]+)")
READY_RE = re.compile(r"Starting vLLM (?:API )?server(?: \d+)? on (\S+)|Application startup complete")


def events(spec: StartupSpec) -> tuple[list, list]:
    lines = startup_log_lines(spec, START)
    out = "".join(line.render() for line in lines if line.stream == "out").encode()
    err = "".join(line.render() for line in lines if line.stream == "err").encode()
    return lp.parse_bytes(out, "out"), lp.parse_bytes(err, "err")


def of(evs: list, cls: type) -> list:
    return [e for e in evs if isinstance(e, cls)]


@pytest.mark.parametrize("version,wording", [
    ("0.7.3", "api_server"), ("0.8.5.post1", "api_server"), ("0.9.2", "api_server_n"),
    ("0.11.2", "api_server_n"), ("0.18.0", "server"), ("0.32.0", "server"), ("0.33.0", "server"),
])
def test_the_console_parser_follows_a_simulated_startup(version, wording):
    spec = StartupSpec(version=version, shards=163, load_seconds=1200, kv_cache_tokens=300_000, port=8000)
    out, err = events(spec)
    ready = of(out, lp.ServerReady)
    assert [(r.url, r.wording) for r in ready] == [("http://0.0.0.0:8000", wording)]
    assert [r.wording for r in of(err, lp.ServerReady)] == ["uvicorn"]
    shards = of(err, lp.ShardProgress)
    assert [s.n for s in shards] == list(range(164)) and {s.total for s in shards} == {163}
    assert shards[-1].elapsed_s == pytest.approx(1200, abs=1)
    assert of(out, lp.WeightsLoaded)[0].seconds == pytest.approx(1200)
    kv = of(out, lp.KvCache)
    assert 300_000 in {k.tokens for k in kv} and any(k.max_concurrency for k in kv)
    assert of(out, lp.EngineInitDone)
    assert of(out, lp.GraphsCaptured)
    if version != "0.32.0":  # 0.32 prints its version in the banner
        assert version in {e.version for e in of(out, lp.VllmVersion)}
    ray = [e for e in out if e.repeat == 15]
    assert ray and all("RayWorkerWrapper" in e.origin for e in ray)


def test_startup_lines_are_ordered_and_split_like_a_slurm_job():
    lines = startup_log_lines(StartupSpec(shards=10, load_seconds=100, enforce_eager=True), START)
    offsets = [line.offset_s for line in lines]
    assert offsets == sorted(offsets)
    bars = [line for line in lines if SHARD_RE.search(line.text)]
    assert len(bars) == 11 and all(b.stream == "err" and b.cr for b in bars)
    assert bars[0].render().startswith("\rLoading safetensors checkpoint shards:   0% Completed | 0/10 [00:00<?, ?it/s]")
    assert not any("Graph capturing" in line.text for line in lines)  # --enforce-eager
    assert [line.text for line in lines if line.stream == "err"][-3:] == [
        "INFO:     Started server process [4242]", "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete."]
    assert READY_RE.search(lines[-1].text)
    ready = [line for line in lines if line.stream == "out" and READY_RE.search(line.text)]
    assert [READY_RE.search(r.text).group(1) for r in ready] == ["http://0.0.0.0:8000"]


def test_from_profile_reads_an_r1console_profile():
    from r1console.core.profiles import load_profile

    root = Path(__file__).resolve().parents[2]
    profile = load_profile(root / "profiles" / "h100x16.yaml").profile
    spec = StartupSpec.from_profile(profile, load_seconds=60)
    assert (spec.version, spec.tensor_parallel_size, spec.nodes, spec.max_num_seqs) == ("0.8.5", 16, 4, 112)
    assert spec.enforce_eager and spec.backend == "ray" and spec.load_seconds == 60
    text = "\n".join(line.text for line in startup_log_lines(spec, START))
    assert "'max_num_seqs': 112" in text or "max_num_seqs=112" in text


def test_032_lines_have_the_format_of_the_real_capture():
    real = (DATA / "startup.out").read_text().splitlines()
    header = re.compile(r"^\((APIServer|EngineCore|Worker) pid=\d+\) (INFO|WARNING) \d\d-\d\d \d\d:\d\d:\d\d "
                        r"\[[\w.]+\.py:\d+\] ")
    real_ready = next(line for line in real if "Starting vLLM server on" in line)
    assert header.match(real_ready)
    ours = [line.text for line in startup_log_lines(StartupSpec(version="0.32.0"), START) if line.stream == "out"]
    vllm_lines = [line for line in ours if not line.startswith("INFO:")]
    assert vllm_lines and all(header.match(line) for line in vllm_lines if "RayWorkerWrapper" not in line)
    ready = next(line for line in ours if "Starting vLLM server on" in line)
    assert re.sub(r"pid=\d+|\d\d-\d\d \d\d:\d\d:\d\d|http://\S+", "", ready) == \
        re.sub(r"pid=\d+|\d\d-\d\d \d\d:\d\d:\d\d|http://\S+", "", real_ready)
    real_kv = next(line for line in real if "KV cache size" in line)
    our_kv = next(line for line in ours if "KV cache size" in line)
    strip = re.compile(r"^.*?\] (?:CPU|GPU) |[\d,.]+")
    assert strip.sub("", our_kv) == strip.sub("", real_kv)
    assert not any(CYAN in line for line in ours)


def test_colour_prefix_only_where_vllm_colours_files():
    assert VllmLogFormat("0.8.5").line(START, "x.py:1", "m") == "INFO 06-03 21:00:00 [x.py:1] m"
    assert VllmLogFormat("0.7.3").line(START, "x.py:1", "m") == "INFO 06-03 21:00:00 x.py:1] m"
    assert VllmLogFormat("0.11.2", api_pid=7).line(START, "x.py:1", "m") == \
        "\x1b[1;36m(APIServer pid=7)\x1b[0;0m INFO 06-03 21:00:00 [x.py:1] m"
    assert VllmLogFormat("0.32.0", api_pid=7).line(START, "x.py:1", "m") == \
        "(APIServer pid=7) INFO 06-03 21:00:00 [x.py:1] m"


def test_access_stats_and_shard_lines():
    real = (DATA / "startup.out").read_text()
    real_access = re.search(r'^INFO:     127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200 OK$', real, re.M)
    assert real_access and access_line("127.0.0.1:33358", "GET", "/health", 200) == real_access.group(0).replace(
        real_access.group(0).split(" - ")[0], "INFO:     127.0.0.1:33358")
    assert access_line("10.0.0.1:1", "POST", "/v1/chat/completions", 401) == \
        'INFO:     10.0.0.1:1 - "POST /v1/chat/completions HTTP/1.1" 401 Unauthorized'
    line = stats_line(VllmLogFormat("0.32.0", api_pid=1), START, prompt_tps=27.4, gen_tps=115.4, running=8,
                      waiting=0, kv_usage=0.001, prefix_hit_rate=None, device="CPU")
    assert line == ("(APIServer pid=1) INFO 06-03 21:00:00 [loggers.py:335] Engine 000: Avg prompt throughput: "
                    "27.4 tokens/s, Avg generation throughput: 115.4 tokens/s, Running: 8 reqs, Waiting: 0 reqs, "
                    "CPU KV cache usage: 0.1%")
    old = stats_line(VllmLogFormat("0.8.5"), START, prompt_tps=1, gen_tps=2, running=3, waiting=4, kv_usage=0.5)
    assert old.endswith("Running: 3 reqs, Waiting: 4 reqs, GPU KV cache usage: 50.0%, Prefix cache hit rate: 0.0%")
    m = SHARD_RE.search(shard_bar(82, 163, 600.0))
    assert m and m.groups() == ("50", "82", "163", "10:00", "09:52")  # 81 left x 600/82 s
    assert "Starting vLLM API server 0 on http://h:1" in ready_log_lines("0.16.0", "h", 1, START)[0].text


def test_a_one_node_ray_job_repeats_its_worker_lines_from_a_head_node_worker():
    # one node, Ray, 4 GPUs: the deduplicated line comes from rank 1 (no ip); there is no second node to name
    lines = [line.text for line in startup_log_lines(
        StartupSpec(nodes=1, gpus_per_node=4, tensor_parallel_size=4, backend="ray"), START)]
    repeated = [line for line in lines if "[repeated 3x across cluster]" in line]
    assert repeated and all("RayWorkerWrapper pid=934" in line and "ip=" not in line for line in repeated)
