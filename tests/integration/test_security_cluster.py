"""On the real test cluster: Ray refuses a client without the job's token (H2); a submit whose sbatch
answer is lost (slurmctld paused) ends with exactly one job and one record, never an orphan (M2).

Ray: a one-node job runs the very ``r1c_ray_auth`` step of the rendered script (cut out of it), starts
a Ray head with the environment it exports, then connects once without the token (as another user
would: no RAY_AUTH_* variables, no ~/.ray token) and once with it. Ray is the cluster's
(``slurm-cluster.sh install-ray``).

Reconcile: SlurmClient over real SSH submits while slurmctld is SIGSTOPped (a few seconds; the cluster
is shared), so sbatch times out on the client side; after SIGCONT the next reconcile (what ``status``
runs) finds the job by its ``--comment=r1c:<deployment>`` tag, or proves it was never created.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from pathlib import Path

import pytest

from r1console.adapters import deployments
from r1console.adapters.slurm_client import SlurmClient, SubmitUnknown
from r1console.adapters.ssh_transport import SSHTransport
from r1console.core.profiles import load_profile
from r1console.core.render import RenderPlan, render_script
from r1console.core.userconfig import ClusterSpec

pytestmark = pytest.mark.slurm


def _ray_auth_step() -> str:
    """The Ray-auth step exactly as a rendered ray profile carries it."""
    profile = load_profile("tiny-cpu", overrides=["vllm.distributed_executor_backend=ray"]).profile
    script = render_script(profile, RenderPlan("/w", "/w/keys/x.key"))
    start = script.index('r1c_ray_token=""')
    end = script.index('if [[ "$R1C_BACKEND" == "ray" ]]; then\n    r1c_ray_auth')
    return script[start:end]


RAY_AUTH_JOB = """#!/bin/bash
#SBATCH --job-name=r1c-ray-auth
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --time=10
#SBATCH -o ray-auth.%j.out
#SBATCH -e ray-auth.%j.err
source "$RAY_VENV/bin/activate"
R1C_WORKDIR=$PWD
r1c_mark() { echo "[r1console] $*"; }
r1c_fatal() { echo "[r1console] FATAL $*"; exit 1; }
@STEP@
r1c_ray_auth
stat -c 'TOKEN_MODE %a' "$RAY_AUTH_TOKEN_PATH"
head_ip=$(getent hosts "$(hostname -s)" | awk '{print $1; exit}')
port=$((15000 + RANDOM % 5000))
tmp=/tmp/r1c-ray-auth-$SLURM_JOB_ID
trap 'ray stop --force >/dev/null 2>&1; rm -rf "$tmp"; rm -f "$RAY_AUTH_TOKEN_PATH"' EXIT
ray start --head --node-ip-address="$head_ip" --port="$port" --include-dashboard=false --temp-dir="$tmp" \
    --num-cpus=1 --num-gpus=0 --object-store-memory=100000000 --disable-usage-stats \
    --min-worker-port=20001 --max-worker-port=30000 >&2 || { echo "HEAD_FAILED"; exit 1; }
mkdir -p "$tmp/stranger"
cat >"$tmp/probe.py" <<'PY'
import sys, ray
try:
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    print("JOINED", len([n for n in ray.nodes() if n.get("Alive")]))
except Exception as err:
    print("REFUSED", type(err).__name__)
PY
t0=$SECONDS
echo "NOTOKEN $(env -u RAY_AUTH_MODE -u RAY_AUTH_TOKEN_PATH -u RAY_AUTH_TOKEN HOME="$tmp/stranger" \
    timeout 90 python3 "$tmp/probe.py" "$head_ip:$port" 2>"$tmp/stranger.err" || echo TIMEOUT) $((SECONDS - t0))s"
grep -o 'InvalidAuthToken' "$tmp/stranger.err" | head -n 1 | sed 's/^/NOTOKEN_ERROR /'
echo "WITHTOKEN $(timeout 90 python3 "$tmp/probe.py" "$head_ip:$port" 2>/dev/null || echo TIMEOUT)"
"""


def test_ray_refuses_a_client_without_the_jobs_token(slurm_cluster):
    cluster = slurm_cluster
    if not (cluster.ray_venv / "bin" / "ray").exists():
        pytest.fail(f"Ray is not installed in {cluster.ray_venv}: sudo bash tests/infra/slurm-cluster.sh install-ray",
                    pytrace=False)
    work = cluster.make_workdir("ray-auth")
    cluster.write_file(work / "ray-auth.sh", RAY_AUTH_JOB.replace("@STEP@", _ray_auth_step()), 0o755)
    r = cluster.ssh(["env", f"RAY_VENV={cluster.ray_venv}", "sbatch", "--parsable", f"--chdir={work}",
                     str(work / "ray-auth.sh")])
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(";")[0]
    try:
        state = cluster.wait_job_state(job_id, ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"], timeout=300)
    finally:
        cluster.run(["scancel", job_id])
    out = (work / f"ray-auth.{job_id}.out").read_text()
    err = (work / f"ray-auth.{job_id}.err").read_text()
    print(f"\n[ray auth] job {job_id}: " + " | ".join(line for line in out.splitlines()
                                                      if line.startswith(("NOTOKEN", "WITHTOKEN", "[r1console]"))))
    assert state == "COMPLETED", out[-2000:] + err[-3000:]
    assert re.search(r"\[r1console\] ray_auth=token ray=2\.\d+\.\d+ token_file=\S+/keys/ray-\d+\.token", out), out
    assert "TOKEN_MODE 600" in out
    assert re.search(r"^NOTOKEN REFUSED \w+", out, re.M), out + err[-2000:]
    assert "NOTOKEN_ERROR InvalidAuthToken" in out, out
    assert "WITHTOKEN JOINED 1" in out, out + err[-2000:]
    assert not list((work / "keys").glob("*.token"))  # the job removed its token at exit


async def test_lost_sbatch_answer_is_reconciled_to_one_job_and_one_record(slurm_cluster, tmp_path, monkeypatch):
    cluster = slurm_cluster
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    work = cluster.make_workdir("reconcile")
    os.chmod(work, 0o755)  # an existing, shared-looking workdir: submit must not chmod it
    spec = ClusterSpec(name="testc", ssh_host=cluster.ssh_host, ssh_config=cluster.ssh_config,
                       known_hosts=cluster.known_hosts, workdir=str(work), partition=cluster.partition)
    # --hold: the job never takes a node; it only has to exist
    loaded = load_profile("tiny-cpu", overrides=[f"slurm.partition={cluster.partition}", 'slurm.extra=["--hold"]'])
    job_ids: list[str] = []
    async with SSHTransport(spec) as tr:
        client = SlurmClient(tr, spec, timeout=6)
        await tr.identity()  # learned before the pause (it is cached)
        t0 = time.monotonic()
        cluster.pause_controller()
        try:
            with pytest.raises(SubmitUnknown, match="recorded as 'submitting'"):
                await client.submit(loaded, workdir=str(work), sbatch_timeout=5)
        finally:
            cluster.resume_controller()
        paused_s = time.monotonic() - t0
        (rec,) = deployments.load_all()[0]
        assert rec.state == "submitting" and rec.job_id == ""
        try:
            found = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = await client.reconcile(rec)  # what the next `status` / `submit` runs
                if found is None or found.job_id:
                    break
                await asyncio.sleep(1)
            listing = cluster.run(["squeue", "-h", "-t", "all", "--me", "-o", "%i %k"], timeout=30).stdout
            tagged = [line.split()[0] for line in listing.splitlines() if line.split()[1:] == [f"r1c:{rec.deployment_id}"]]
            job_ids = tagged
            if found is not None and found.job_id:  # slurmctld processed the buffered request after SIGCONT
                outcome = f"found job {found.job_id}"
                assert tagged == [found.job_id]
                assert [(d.job_id, d.state) for d in deployments.load_all()[0]] == [(found.job_id, "")]
                assert Path(rec.key_path).exists()
            else:  # it never reached slurmctld: once that is certain, the record and key go
                if found is not None:
                    found = await client.reconcile(rec, stale_after_s=0)
                outcome = "never created"
                assert found is None and tagged == []
                assert deployments.load_all()[0] == []
                assert not Path(rec.key_path).exists()
        finally:
            for job_id in job_ids:
                cluster.run(["scancel", job_id], timeout=30)
    print(f"\n[reconcile] slurmctld paused {paused_s:.1f} s; outcome: {outcome}; jobs with the tag: {job_ids}")
    assert stat.S_IMODE(os.stat(work).st_mode) == 0o755  # an existing workdir is left as it was (M7)
    assert stat.S_IMODE(os.stat(work / "keys").st_mode) == 0o700  # the key dir we created is private
