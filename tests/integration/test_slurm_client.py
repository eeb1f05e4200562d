"""The SLURM client and the headless commands against the REAL test cluster over REAL SSH.

asyncssh with host-key verification against the cluster's known_hosts, the cluster's OpenSSH
config (Host alias r1c-test), real slurmctld/slurmd/slurmdbd (tests/infra/slurm-cluster.sh).
Jobs are tiny profiles whose ``env.setup`` lines do the work and exit, so no vLLM is needed.
Every test uses its own work directory and state dir, and cancels what it submitted.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import asyncssh
import httpx
import pytest

from r1console.adapters import deployments
from r1console.adapters.reach import open_server
from r1console.adapters.slurm_client import JobNotFound, JobStateError, SlurmClient, load_profile_for_cluster
from r1console.adapters.ssh_transport import SSHTransport
from r1console.adapters.transport import TransportError, TransportTimeout
from r1console.core.api_errors import ServerUnreachable
from r1console.core.errors import EXIT_CLUSTER, RemoteError
from r1console.core.userconfig import ClusterSpec

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
FIRST_JOB: dict[str, str] = {}  # a completed job, reused by the history test at the end


# ---- fixtures / helpers ------------------------------------------------------------------------------

@pytest.fixture
def env(slurm_cluster, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(state))
    workdir = slurm_cluster.make_workdir("r1c-client")
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        default_cluster: testc
        clusters:
          testc:
            ssh_host: {slurm_cluster.ssh_host}
            ssh_config: {slurm_cluster.ssh_config}
            workdir: {workdir}
            partition: {slurm_cluster.partition}
        """))
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(config))
    spec = ClusterSpec(name="testc", ssh_host=slurm_cluster.ssh_host, ssh_config=slurm_cluster.ssh_config,
                       workdir=str(workdir), partition=slurm_cluster.partition)
    jobs: list[str] = []
    ns = SimpleNamespace(cluster=slurm_cluster, spec=spec, workdir=workdir, config=config, tmp=tmp_path,
                         state=state, jobs=jobs)
    yield ns
    for job in jobs:
        slurm_cluster.run(["scancel", job], timeout=30)


def profile(env, name: str, setup: list[str], **slurm) -> Path:
    spec = {"nodes": 1, "gpus_per_node": 0, "time": "00:10:00", "job_name": f"r1c-{name}", **slurm}
    path = env.tmp / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "slurm": spec, "env": {"setup": setup},
                                "model": {"path": "/nonexistent"}, "vllm": {"version": "0.8.5"}}))
    return path


def cli(env, *args: str, timeout: float = 120, check_clean: bool = True) -> subprocess.CompletedProcess:
    run_env = dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state))
    result = subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, timeout=timeout,
                            env=run_env, cwd=REPO, stdin=subprocess.DEVNULL)
    if check_clean:
        assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


async def wait_state(client: SlurmClient, job_id: str, done, timeout: float = 90):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await client.job_state(job_id)
        if not seen or seen[-1] != info.state:
            seen.append(info.state)
        if done(info):
            return info, seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} stuck: states seen {seen}")


async def remote_mode(tr, path: str) -> int:
    result = await tr.run(["stat", "-c", "%a", "--", path])
    result.check()
    return int(result.stdout.strip(), 8)


# ---- submit -> PENDING/RUNNING -> COMPLETED ----------------------------------------------------------

async def test_submit_runs_to_completion_with_private_files(env):
    lines = ['for i in $(seq 1 20); do printf "out %03d\\n" "$i"; printf "err %03d\\n" "$i" >&2; sleep 0.05; done',
             "exit 0"]
    loaded = load_profile_for_cluster(str(profile(env, "quick", lines)), env.spec)
    assert loaded.profile.slurm.partition == env.cluster.partition  # the cluster's default filled in
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        workdir_mode = await remote_mode(tr, str(env.workdir))  # it exists already: submit must not chmod it
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        FIRST_JOB["id"] = dep.job_id
        assert deployments.find(dep.job_id) == dep and deployments.find(dep.job_id, "testc") == dep
        assert dep.workdir == str(env.workdir) and dep.log_out == f"{env.workdir}/job.%N.{dep.job_id}.out"
        assert await remote_mode(tr, dep.workdir) == workdir_mode
        assert await remote_mode(tr, f"{dep.workdir}/keys") == 0o700
        assert await remote_mode(tr, dep.key_path) == 0o600
        assert await remote_mode(tr, dep.script_path) == 0o600
        key = (await tr.read_file(dep.key_path)).decode().strip()
        assert len(key) >= 40

        first = await client.job_state(dep.job_id)
        assert first.state in ("PENDING", "RUNNING", "COMPLETING", "COMPLETED")
        final, seen = await wait_state(client, dep.job_id, lambda j: j.is_finished)
        assert final.state == "COMPLETED" and final.exit_code in ("0:0", ""), (final, seen)
        assert [s for s in seen if s in ("PENDING", "RUNNING", "COMPLETED")][-1] == "COMPLETED"

        details = await client.job(dep.job_id)  # scontrol: batch host, workdir, %N left to us
        assert details.batch_host in env.cluster.nodes and details.workdir == dep.workdir
        assert "%N" in details.stdout or details.stdout.endswith(f"job.{details.batch_host}.{dep.job_id}.out")
        out_path = client.log_path(details, "out", dep)
        assert out_path == f"{dep.workdir}/job.{details.batch_host}.{dep.job_id}.out"
        out = (await client.read_from(out_path)).decode()
        err = (await client.read_from(client.log_path(details, "err", dep))).decode()
        assert "out 020" in out and f"[r1console] job_id={dep.job_id}" in out
        assert "err 020" in err and "out 001" not in err
        queue = await client.queue([dep.job_id])
        assert [j.job_id for j in queue] == [dep.job_id]  # squeue --json (22.05 shape) still holds it


async def test_cli_submit_wait_status_logs(env):
    lines = ['printf "hello from %s\\n" "$(hostname)"', "sleep 1", "exit 0"]
    result = cli(env, "submit", str(profile(env, "clijob", lines)), "--json")
    assert result.returncode == 0, result.stderr.decode()
    dep = json.loads(result.stdout)
    env.jobs.append(dep["job_id"])
    assert cli(env, "wait", dep["job_id"], "--for", "end", "--timeout", "90", "-q").returncode == 0
    status = json.loads(cli(env, "status", dep["job_id"], "--json").stdout)
    assert status["state"] == "COMPLETED" and status["deployment"]["deployment_id"] == dep["deployment_id"]
    assert status["stdout_path"] == f"{env.workdir}/job.{status['batch_host']}.{dep['job_id']}.out"
    logs = cli(env, "logs", dep["job_id"])
    assert logs.returncode == 0 and f"hello from {status['batch_host']}".encode() in logs.stdout
    listing = json.loads(cli(env, "status", "--json").stdout)
    assert dep["job_id"] in [j["job_id"] for j in listing]


# ---- cancel ------------------------------------------------------------------------------------------

async def test_cancel_confirms_and_refuses_unknown_or_ended_jobs(env):
    loaded = load_profile_for_cluster(str(profile(env, "sleeper", ["sleep 300"])), env.spec)
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        await wait_state(client, dep.job_id, lambda j: j.is_running)
        info = await client.cancel(dep.job_id)
        assert info.state == "CANCELLED"
        with pytest.raises(JobStateError, match="already ended"):
            await client.cancel(dep.job_id)
        with pytest.raises(JobNotFound, match="not known to SLURM"):
            await client.cancel("99999999")
    again = cli(env, "cancel", dep.job_id)
    assert again.returncode == 1 and b"already ended (CANCELLED)" in again.stderr
    unknown = cli(env, "cancel", "99999999")
    assert unknown.returncode == 1 and b"not known to SLURM" in unknown.stderr


# ---- GPUs --------------------------------------------------------------------------------------------

async def test_gpus_parses_every_fake_gpu_of_a_two_node_job(env):
    cluster = env.cluster
    loaded = load_profile_for_cluster(
        str(profile(env, "gpus", ["sleep 300"], nodes=len(cluster.nodes), gpus_per_node=cluster.gpus_per_node)),
        env.spec)
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        await wait_state(client, dep.job_id, lambda j: j.is_running)
        report = await client.gpus(dep.job_id)
        assert [n.node for n in report.nodes] == cluster.nodes and report.missing_nodes == ()
        assert [[g.index for g in n.gpus] for n in report.nodes] == [list(range(cluster.gpus_per_node))] * len(cluster.nodes)
        samples = [g for n in report.nodes for g in n.gpus]
        assert len(samples) == len(cluster.nodes) * cluster.gpus_per_node
        assert all(g.name == "NVIDIA H200" and g.memory_total_mib == 143771 for g in samples)
        assert len({g.uuid for g in samples}) == len(samples)  # the stand-in's uuids differ per node and GPU
        with cluster.gpu_mode("load"):
            loaded_report = await client.gpus(dep.job_id)
        g0 = loaded_report.nodes[0].gpus[0]
        assert (g0.utilization_pct, g0.memory_used_mib, g0.power_limit_w) == (100, 41843, 700)
        with cluster.gpu_mode("missing", cluster.nodes[-1]):
            with pytest.raises(RemoteError, match=f"nvidia-smi is not installed.*{cluster.nodes[-1]}"):
                await client.gpus(dep.job_id)
        cli_report = cli(env, "gpus", dep.job_id, "--json")
        assert cli_report.returncode == 0
        assert sum(len(n["gpus"]) for n in json.loads(cli_report.stdout)["nodes"]) == len(samples)
        await client.cancel(dep.job_id)
        with pytest.raises(JobStateError, match="has ended"):
            await client.gpus(dep.job_id)


async def test_gpus_of_a_pending_job_is_a_clear_message(env):
    loaded = load_profile_for_cluster(str(profile(env, "held", ["sleep 300"], extra=["--hold"])), env.spec)
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        with pytest.raises(JobStateError, match="not running yet"):
            await client.gpus(dep.job_id)
    result = cli(env, "gpus", dep.job_id)
    assert result.returncode == 1 and b"not running yet (PENDING, JobHeldUser)" in result.stderr
    logs = cli(env, "logs", dep.job_id)
    assert logs.returncode == 1 and b"no log yet" in logs.stderr


# ---- logs --follow across a killed SSH connection ----------------------------------------------------

FOLLOW_LINES = [
    # ~120 KB over ~6 s with CR, tabs and bytes that are not UTF-8 — compared byte for byte
    'for i in $(seq 1 1500); do printf "line %05d\\t%s\\r\\n\\xff\\xfe" "$i" "$(printf "%0.sx" $(seq 1 60))"; '
    'if [ $((i % 50)) = 0 ]; then sleep 0.2; fi; done',
    "exit 0",
]


async def test_follow_survives_a_killed_connection_byte_exact(env):
    loaded = load_profile_for_cluster(str(profile(env, "follow", FOLLOW_LINES)), env.spec)
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        info, _ = await wait_state(client, dep.job_id, lambda j: j.batch_host != "" or j.is_finished)
        path = client.log_path(info, "out", dep)
        follower = client.follow(path, 0)
        got = bytearray()
        dropped = []

        async def pump():
            async for chunk in follower:
                got.extend(chunk)
                if not dropped and len(got) > 20_000:
                    ports = tr.client_ports()
                    dropped.append(env.cluster.drop_ssh_connections(ports))

        task = asyncio.create_task(pump())
        final, _ = await wait_state(client, dep.job_id, lambda j: j.is_finished, timeout=120)
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await follower.aclose()
        got.extend(await client.read_from(path, follower.offset))
        assert final.state == "COMPLETED"
        assert dropped and dropped[0] >= 1, "the connection was not dropped mid-stream"
        assert follower.reconnects >= 1 and tr.stats.connects >= 2
        expected = Path(path).read_bytes()  # the cluster's home is on this machine: the file itself
        assert len(expected) > 100_000
        assert bytes(got) == expected


async def test_cli_logs_follow_survives_a_killed_connection(env):
    result = cli(env, "submit", str(profile(env, "clifollow", FOLLOW_LINES)), "--json")
    assert result.returncode == 0, result.stderr.decode()
    job_id = json.loads(result.stdout)["job_id"]
    env.jobs.append(job_id)
    run_env = dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state))
    out_file = env.tmp / "followed.out"
    with open(out_file, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "r1console", "logs", job_id, "--follow", "--interval", "1"],
                                stdout=sink, stderr=subprocess.PIPE, env=run_env, cwd=REPO,
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while out_file.stat().st_size < 20_000 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            killed = env.cluster.drop_ssh_connections(env.cluster.client_ports_of(proc.pid))
            _, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert killed >= 1 and proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"ended: COMPLETED" in err
    status = json.loads(cli(env, "status", job_id, "--json").stdout)
    assert out_file.read_bytes() == Path(status["stdout_path"]).read_bytes()


# ---- injection ---------------------------------------------------------------------------------------

async def test_metacharacters_in_job_name_and_workdir_cannot_inject(env):
    canary = env.tmp / "canary"
    canary.mkdir()
    os.chmod(canary, 0o777)
    evil_dir = f"{env.workdir}/w $(touch {canary}/p1); `touch {canary}/p2` 'q\"&|;<x> $HOME *"
    name = "r1c;touch|(x)&!*"
    loaded = load_profile_for_cluster(str(profile(env, "evil", ['printf "ran in %s\\n" "$PWD"', "exit 0"])),
                                      env.spec, overrides=[f"slurm.job_name={name}"])
    assert loaded.profile.slurm.job_name == name
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded, workdir=evil_dir)
        env.jobs.append(dep.job_id)
        assert dep.workdir == evil_dir
        final, _ = await wait_state(client, dep.job_id, lambda j: j.is_finished)
        assert final.state == "COMPLETED" and final.name == name
        details = await client.job(dep.job_id)
        assert details.workdir == evil_dir and details.name == name
        [queued] = await client.queue([dep.job_id])
        assert queued.name == name
        out = (await client.read_from(client.log_path(details, "out", dep))).decode()
        assert f"ran in {evil_dir}" in out
    assert list(canary.iterdir()) == []
    assert Path(evil_dir).is_dir() and stat.S_IMODE(Path(evil_dir).stat().st_mode) == 0o700
    # '%' is not an injection but SLURM expands it inside the log path (JobLaunchFailure): refused up front
    percent = cli(env, "submit", str(profile(env, "pct", ["exit 0"])), "--workdir", f"{env.workdir}/a%jb")
    assert percent.returncode == 2 and b"contains '%'" in percent.stderr


# ---- faults ------------------------------------------------------------------------------------------

async def test_slurmctld_not_answering_times_out(env):
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec, timeout=3)
        await client.queue()  # connected and answering first
        with env.cluster.controller_paused():
            started = time.monotonic()
            with pytest.raises(TransportTimeout, match="did not finish within 3 s") as info:
                await client.job_state("1")
            assert time.monotonic() - started < 12
            assert "slurmctld" in str(info.value)
            started = time.monotonic()
            result = cli(env, "status", "--timeout-cmd", "3", timeout=60)
            elapsed = time.monotonic() - started
        assert result.returncode == 1 and elapsed < 20
        assert b"did not finish within 3 s" in result.stderr
        await client.queue()  # and fine again afterwards, on the same connection
        assert tr.stats.connects == 1


async def test_sbatch_rejections_carry_slurms_own_message(env):
    quick = str(profile(env, "reject", ["exit 0"]))
    bad_partition = cli(env, "submit", quick, "--set", "slurm.partition=nosuch")
    assert bad_partition.returncode == 1
    assert b"sbatch: error: Batch job submission failed: Invalid partition name specified" in bad_partition.stderr
    too_many = cli(env, "submit", quick, "--set", f"slurm.nodes={len(env.cluster.nodes) + 1}")
    assert too_many.returncode == 1 and b"Node count specification invalid" in too_many.stderr
    leftovers = [p.name for p in env.workdir.iterdir() if p.suffix == ".sbatch"]
    assert leftovers == [] and list((env.workdir / "keys").iterdir()) == []  # rejected: nothing left behind
    assert deployments.load_all()[0] == []


async def test_unknown_job_ids_are_clear_errors(env):
    for args in (["status", "99999999"], ["logs", "99999999"], ["gpus", "99999999"], ["wait", "99999999"],
                 ["cancel", "99999999"]):
        result = cli(env, *args)
        assert result.returncode == 1, args
        assert b"job 99999999 is not known to SLURM" in result.stderr, (args, result.stderr)


async def test_unknown_host_key_and_failed_login_are_refused(env, tmp_path):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    other = asyncssh.generate_private_key("ssh-ed25519")
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(f"[{env.cluster.ssh_addr}]:{env.cluster.ssh_port} {other.export_public_key().decode()}")
    wrong_key = tmp_path / "wrong_id"
    other.write_private_key(str(wrong_key))
    wrong_key.chmod(0o600)
    with open(env.config, "a") as fh:
        base = f"ssh_host: {env.cluster.ssh_host}, ssh_config: {env.cluster.ssh_config}"
        fh.write(f"  unknownkey: {{{base}, known_hosts: {empty}}}\n"
                 f"  changedkey: {{{base}, known_hosts: {changed}}}\n"
                 f"  badlogin: {{{base}, identity_file: {wrong_key}}}\n")
    unknown = cli(env, "status", "--cluster", "unknownkey")
    assert unknown.returncode == EXIT_CLUSTER and b"is unknown" in unknown.stderr and b"never accepts a host key" in unknown.stderr
    changed_r = cli(env, "status", "--cluster", "changedkey")
    assert changed_r.returncode == EXIT_CLUSTER and b"has CHANGED" in changed_r.stderr
    login = cli(env, "status", "--cluster", "badlogin")
    assert login.returncode == EXIT_CLUSTER and b"was refused" in login.stderr
    with pytest.raises(TransportError, match="is unknown"):
        await SSHTransport(ClusterSpec(name="x", ssh_host=env.cluster.ssh_host, ssh_config=env.cluster.ssh_config,
                                       known_hosts=str(empty))).connect()


# ---- reach: forward + key over the same connection ---------------------------------------------------

async def test_open_server_forwards_to_the_head_node_and_reads_the_key(env):
    port = 20000 + os.getpid() % 5000
    env.cluster.write_file(env.workdir / "stand_in.py", STAND_IN_SERVER)
    # a stand-in server in vllm's place (it proves the job's identity as the auth middleware does)
    serve = ['vllm() { exec python3 "$R1C_WORKDIR/stand_in.py" "$R1C_PORT" 0; }']
    loaded = load_profile_for_cluster(str(profile(env, "serve", serve)), env.spec,
                                      overrides=[f"server.port={port}"])
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        dep = await client.submit(loaded)
        env.jobs.append(dep.job_id)
        info, _ = await wait_state(client, dep.job_id, lambda j: j.is_running)
        key = (await tr.read_file(dep.key_path)).decode().strip()
        for _ in range(100):  # the console checks the job's identity first: wait until the server answers
            try:
                async with open_server(dep.job_id, transport=tr):
                    break
            except ServerUnreachable:
                await asyncio.sleep(0.3)
        async with open_server(dep.job_id, transport=tr) as (url, api_key):
            assert url.startswith("http://127.0.0.1:") and api_key == key
            body = None
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                for _ in range(50):  # the server may still be starting
                    try:
                        response = await http.get("/whoami")
                        if response.status_code == 200:
                            body = response.json()["host"]
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
            assert body == info.batch_host
        assert tr.stats.connects == 1  # forward and key read used the one connection
        assert deployments.find(dep.job_id).batch_host == info.batch_host  # learned and recorded
        await client.cancel(dep.job_id)
        with pytest.raises(JobStateError, match="server is not up"):
            async with open_server(dep.job_id, transport=tr):
                pass


# ---- history after the job left squeue (slow: waits for MinJobAge) -----------------------------------

async def test_history_after_the_job_left_squeue(env):
    async with SSHTransport(env.spec) as tr:
        client = SlurmClient(tr, env.spec)
        job_id = FIRST_JOB.get("id")
        if job_id is None:
            loaded = load_profile_for_cluster(str(profile(env, "hist", ["exit 0"])), env.spec)
            job_id = (await client.submit(loaded)).job_id
            env.jobs.append(job_id)
        deadline = time.monotonic() + 420  # MinJobAge: 30 s on the test cluster (300 s is SLURM's default)
        while True:
            r = await tr.run(["squeue", "-h", "-j", job_id, "-o", "%T"])
            if r.returncode != 0 and "Invalid job id" in r.stderr:
                break
            assert time.monotonic() < deadline, "the job never left squeue"
            await asyncio.sleep(5)
        info = await client.job_state(job_id)
        assert info.source in ("sacct", "sacct-c") and info.state == "COMPLETED"
        past = await client.history()
        assert job_id in [j.job_id for j in past]
    shown = json.loads(cli(env, "history", job_id, "--json").stdout)
    assert [j["state"] for j in shown] == ["COMPLETED"]
    detail = cli(env, "status", job_id, "--json")
    assert detail.returncode == 0 and json.loads(detail.stdout)["source"] in ("sacct", "sacct-c")


# ---- wait --------------------------------------------------------------------------------------------

STAND_IN_SERVER = r'''
import hashlib, hmac, http.server, json, os, socket, sys, time, urllib.parse
KEY = os.environ.get("VLLM_API_KEY", "")   # the script exports it from the deployment's 0600 key file
JOB = os.environ.get("SLURM_JOB_ID", "")
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 3)   # "loading": /health refused until then
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def authorised(self):
        if self.headers.get("Authorization") == "Bearer " + KEY and KEY:
            return True
        self.reply(401, {"error": "bad key"})
        return False
    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/health":
            return self.reply(200)
        if path == "/whoami":                # open, like a static file: which node answers
            return self.reply(200, {"host": socket.gethostname()})
        if path == "/r1c/identity":          # what the job's auth middleware answers (slurm/r1c_auth.py)
            challenge = urllib.parse.parse_qs(query).get("challenge", [""])[0]
            message = f"r1console-identity-v1\n{JOB}\n{challenge}".encode()
            return self.reply(200, {"r1console_identity": 1, "job_id": JOB,
                                    "proof": hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()})
        if self.authorised() and self.path == "/v1/models":
            return self.reply(200, {"object": "list", "data": [{"id": "stand-in", "object": "model"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.authorised() and self.path == "/v1/completions":
            return self.reply(200, {"id": "c", "object": "text_completion", "model": "stand-in",
                                    "choices": [{"index": 0, "text": "!", "finish_reason": "length"}],
                                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    def log_message(self, *args):
        pass
print("stand-in OpenAI server on port", sys.argv[1], flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
'''


async def test_wait_for_ready_running_and_timeouts(env):
    """wait --for ready over the real forward with the deployment's real key. The model server is a
    stand-in (stdlib, checks the key) that keeps this test fast; the real vLLM job is
    tests/integration/test_e2e_tiny_cpu.py."""
    env.cluster.write_file(env.workdir / "stand_in.py", STAND_IN_SERVER)
    port = 21000 + os.getpid() % 5000
    # the stand-in takes vllm's place in the rendered script: after the API key is exported from its file
    serve = str(profile(env, "ready", ['vllm() { exec python3 "$R1C_WORKDIR/stand_in.py" "$R1C_PORT"; }']))
    result = cli(env, "submit", serve, "--set", f"server.port={port}", "--json")
    assert result.returncode == 0, result.stderr.decode()
    job_id = json.loads(result.stdout)["job_id"]
    env.jobs.append(job_id)
    ready = cli(env, "wait", job_id, "--for", "ready", "--timeout", "120", "--interval", "1", timeout=240)
    assert ready.returncode == 0, ready.stderr.decode()
    assert f"job {job_id} is ready".encode() in ready.stdout
    assert b"starting" in ready.stderr or b"initialising" in ready.stderr  # it saw the server come up
    assert cli(env, "wait", job_id, "--for", "running", "-q").returncode == 0
    slow = cli(env, "wait", job_id, "--for", "end", "--timeout", "2", "-q")
    assert slow.returncode == 3 and b"still RUNNING after 2 s (waiting for end)" in slow.stderr

    dying = str(profile(env, "dying", ['echo "bad interpreter: Permission denied" >&2', "exit 126"]))
    result = cli(env, "submit", dying, "--json")
    job_id = json.loads(result.stdout)["job_id"]
    env.jobs.append(job_id)
    failed = cli(env, "wait", job_id, "--for", "ready", "--timeout", "120", "--interval", "1", timeout=240)
    assert failed.returncode == 1
    assert b"before it was ready" in failed.stderr and b"bad interpreter: Permission denied" in failed.stderr

    held = str(profile(env, "held2", ["exit 0"], extra=["--hold"]))
    job_id = json.loads(cli(env, "submit", held, "--json").stdout)["job_id"]
    env.jobs.append(job_id)
    waiting = cli(env, "wait", job_id, "--for", "running", "--timeout", "3", "--interval", "1", "-q")
    assert waiting.returncode == 3 and b"still PENDING (JobHeldUser) after 3 s" in waiting.stderr
