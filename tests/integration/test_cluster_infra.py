"""The test cluster itself works (tests/infra/slurm-cluster.sh): real SLURM over real OpenSSH.

Plain subprocess + OpenSSH (`ssh -F <ssh_config> r1c-test ...`), no r1console code: if these fail,
the console's integration tests cannot mean anything.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm

SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.used,memory.total,utilization.gpu,power.draw",
             "--format=csv,noheader,nounits"]

JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name=r1c-infra
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=10
#SBATCH -o job.%N.%j.out
#SBATCH -e job.%N.%j.err
echo "batch host: $(hostname) CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
srun -l hostname
srun -l bash -c 'echo "stderr from $(hostname)" >&2'
mkdir -p www
{ hostname; echo "$SLURM_JOB_ID"; } > www/whoami.txt
python3 -m http.server 8000 --bind 0.0.0.0 --directory www > http.log 2>&1 &
while [ ! -e stop ]; do sleep 0.2; done
kill %1
echo "batch done"
"""


RAY_JOB = """#!/bin/bash
#SBATCH --job-name=r1c-ray
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=10
#SBATCH -o ray.%N.%j.out
#SBATCH -e ray.%N.%j.err
# the seed's pattern: one `ray start --block` step per node, the head on the batch host
source "$RAY_VENV/bin/activate"
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_ip=$(getent hosts "${nodes[0]}" | awk '{print $1; exit}')
tmp=/tmp/r1c-ray-$SLURM_JOB_ID
common=(--num-cpus=1 --num-gpus="$SLURM_GPUS_ON_NODE" --object-store-memory=100000000 --block --disable-usage-stats)
srun -N1 -n1 -w "${nodes[0]}" --overlap ray start --head --node-ip-address="$head_ip" --port=6379 \
    --include-dashboard=false --temp-dir="$tmp" "${common[@]}" &
for _ in $(seq 90); do ray status --address "$head_ip:6379" >/dev/null 2>&1 && break; sleep 1; done
for n in "${nodes[@]:1}"; do
  srun -N1 -n1 -w "$n" --overlap ray start --address="$head_ip:6379" \
      --node-ip-address="$(getent hosts "$n" | awk '{print $1; exit}')" "${common[@]}" &
done
for _ in $(seq 120); do
  seen=$(python3 - "$head_ip:6379" <<'PY' 2>/dev/null
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
alive = [n for n in ray.nodes() if n.get("Alive")]
print("RAY", len(alive), int(sum(n.get("Resources", {}).get("GPU", 0) for n in alive)),
      " ".join(sorted(n["NodeManagerAddress"] for n in alive)))
PY
)
  [[ $seen == "RAY 2 8 "* ]] && break
  sleep 1
done
echo "$seen"
ray stop --force >/dev/null 2>&1
rm -rf "$tmp"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_get(port: int, path: str, timeout: float = 20) -> str:
    """GET through the forward; retried, because the local side accepts before the far end connects."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status == 200:
                return body
            last = AssertionError(f"HTTP {resp.status}: {body[:200]}")
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        finally:
            conn.close()
        time.sleep(0.25)
    raise AssertionError(f"no HTTP 200 from 127.0.0.1:{port}{path} within {timeout}s: {last!r}")


@pytest.fixture(scope="module")
def server_job(slurm_cluster):
    """A 2-node, 4-GPU-per-node job submitted over ssh; an http.server on node1:8000; ends on `stop`."""
    cluster = slurm_cluster
    work = cluster.make_workdir("infra")
    cluster.write_file(work / "job.sh", JOB_SCRIPT, 0o755)
    r = cluster.ssh(["sbatch", "--parsable", f"--chdir={work}", str(work / "job.sh")], timeout=60)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(";")[0]
    assert job_id.isdigit(), r.stdout
    try:
        cluster.wait_job_state(job_id, ["RUNNING"], timeout=60)
        deadline = time.monotonic() + 30
        while not (work / "www" / "whoami.txt").exists():
            assert time.monotonic() < deadline, "the job never wrote www/whoami.txt"
            time.sleep(0.2)
        yield job_id, work
    finally:
        (work / "stop").touch()
        try:
            cluster.wait_job_state(job_id, ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"], timeout=60)
        except AssertionError:
            cluster.run(["scancel", job_id])


def test_two_idle_capable_nodes_with_four_gpus_each(slurm_cluster):
    r = slurm_cluster.run(["sinfo", "-h", "-N", "-o", "%N %G %T"], timeout=30)
    assert r.returncode == 0, r.stderr
    rows = sorted(set(r.stdout.split("\n")) - {""})
    assert [row.split()[0] for row in rows] == ["node1", "node2"]
    for row in rows:
        _, gres, state = row.split()
        assert gres == "gpu:4"
        assert state in {"idle", "mixed", "allocated"}, row


def test_ssh_login_is_the_test_user_with_slurm_conf(slurm_cluster):
    r = slurm_cluster.ssh(["sh", "-c", 'id -un; printf "%s\\n" "$SLURM_CONF"; squeue -h --me -o %i | wc -l'])
    assert r.returncode == 0, r.stderr
    user, conf, _ = r.stdout.splitlines()
    assert user == slurm_cluster.user != "root"
    assert conf == slurm_cluster.slurm_conf


def test_ssh_refuses_a_host_key_it_does_not_know(slurm_cluster, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = subprocess.run(slurm_cluster.ssh_argv(["true"], "-o", f"UserKnownHostsFile={empty}"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 255
    assert "Host key verification failed" in r.stderr


def test_two_node_job_runs_on_both_nodes_with_node1_as_batch_host(slurm_cluster, server_job):
    job_id, _ = server_job
    r = slurm_cluster.ssh(["squeue", "-h", "-j", job_id, "-o", "%T %D %N %B %u"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["RUNNING", "2", "node[1-2]", "node1", slurm_cluster.user]


def test_srun_overlap_nvidia_smi_reports_four_gpus_per_node(slurm_cluster, server_job):
    job_id, _ = server_job
    r = slurm_cluster.ssh(["srun", "--jobid", job_id, "--overlap", "-N2", "--ntasks-per-node=1", "-l", *SMI_QUERY],
                          timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 8, r.stdout
    by_task: dict[str, list[int]] = {}
    for line in lines:
        label, rest = line.split(": ", 1)
        index, name, used, total, util, power = [c.strip() for c in rest.split(",")]
        by_task.setdefault(label, []).append(int(index))
        assert name == "NVIDIA H200"
        assert int(total) == 143771 and int(used) == 0 and int(util) == 0   # the idle capture
        assert 100 < float(power) < 700
    assert {k: sorted(v) for k, v in by_task.items()} == {"0": [0, 1, 2, 3], "1": [0, 1, 2, 3]}


def test_stand_in_nvidia_smi_replays_load_and_can_go_missing(slurm_cluster, server_job):
    job_id, _ = server_job
    srun = ["srun", "--jobid", job_id, "--overlap", "-N2", "--ntasks-per-node=1", "-l"]
    # per step, through the environment
    r = slurm_cluster.ssh(["env", "R1C_FAKE_NVIDIA_SMI=load", *srun, *SMI_QUERY], timeout=60)
    assert r.returncode == 0, r.stderr
    util = {(ln.split(": ")[0], ln.split(": ")[1].split(", ")[0]): ln.split(", ")[4] for ln in r.stdout.splitlines()}
    assert util == {(t, i): ("100" if i in "02" else "0") for t in "01" for i in "0123"}
    # for one node, through the mode file: nvidia-smi is then not on that node's PATH at all
    with slurm_cluster.gpu_mode("missing", node="node2"):
        r = slurm_cluster.ssh([*srun, *SMI_QUERY], timeout=60)
    assert r.returncode != 0
    assert "slurmstepd-node2: error: execve(): nvidia-smi: No such file or directory" in r.stderr
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("0: ")]) == 4
    assert not [ln for ln in r.stdout.splitlines() if ln.startswith("1: ")]


def test_port_forward_reaches_the_server_inside_the_job_on_node1(slurm_cluster, server_job):
    job_id, _ = server_job
    port = _free_port()
    fwd = subprocess.Popen(slurm_cluster.ssh_argv((), "-N", "-L", f"127.0.0.1:{port}:node1:8000"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        body = _http_get(port, "/whoami.txt")
    finally:
        fwd.terminate()
        fwd.wait(timeout=10)
    assert body.splitlines() == ["node1", job_id]


def test_dropping_ssh_connections_ends_a_running_session(slurm_cluster):
    argv = slurm_cluster.ssh_argv(["sh", "-c", "echo up; exec sleep 120"])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    other = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert other.stdout.readline().strip() == "up"
        ports = slurm_cluster.client_ports_of(proc.pid)
        assert len(ports) == 1
        assert slurm_cluster.drop_ssh_connections(client_ports=ports) == 2   # monitor + user-side sshd
        assert proc.wait(timeout=15) == 255
        assert "closed by remote host" in proc.stderr.read()
        assert other.poll() is None     # only that connection dropped
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
    assert slurm_cluster.ssh(["true"]).returncode == 0    # the listener is still there


def test_paused_controller_makes_clients_hang_until_resumed(slurm_cluster):
    with slurm_cluster.controller_paused():
        with pytest.raises(subprocess.TimeoutExpired):
            slurm_cluster.run(["squeue", "-h", "--me"], timeout=3)
    r = slurm_cluster.run(["squeue", "-h", "--me"], timeout=30)
    assert r.returncode == 0, r.stderr


def test_finished_job_wrote_one_out_and_err_named_after_the_batch_host(slurm_cluster, server_job):
    job_id, work = server_job
    (work / "stop").touch()
    slurm_cluster.wait_job_state(job_id, ["COMPLETED"], timeout=60)
    names = sorted(p.name for p in work.iterdir() if p.name.startswith("job.") and p.name != "job.sh")
    assert names == [f"job.node1.{job_id}.err", f"job.node1.{job_id}.out"]
    out = (work / f"job.node1.{job_id}.out").read_text()
    err = (work / f"job.node1.{job_id}.err").read_text()
    assert "batch host: node1 CUDA_VISIBLE_DEVICES=0,1,2,3" in out
    assert "0: node1" in out and "1: node2" in out     # node2's step output is relayed into node1's file
    assert "stderr from node2" in err
    assert out.rstrip().endswith("batch done")


def test_sacct_shows_the_finished_job(slurm_cluster, server_job):
    job_id, work = server_job
    (work / "stop").touch()
    slurm_cluster.wait_job_state(job_id, ["COMPLETED"], timeout=60)
    deadline = time.monotonic() + 30   # slurmctld reports to slurmdbd asynchronously
    while True:
        r = slurm_cluster.ssh(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,User,State,ExitCode,NodeList,AllocTRES"])
        assert r.returncode == 0, r.stderr
        if "COMPLETED" in r.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    jid, user, state, exit_code, nodelist, tres = r.stdout.strip().split("|")
    assert (jid, user, state, exit_code, nodelist) == (job_id, slurm_cluster.user, "COMPLETED", "0:0", "node[1-2]")
    assert "gres/gpu=8" in tres.split(",")
    steps = slurm_cluster.ssh(["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,State"]).stdout.split()
    assert f"{job_id}.batch|COMPLETED" in steps


def test_ray_head_and_worker_steps_see_two_nodes_and_eight_gpus(slurm_cluster):
    cluster = slurm_cluster
    if not (cluster.ray_venv / "bin" / "ray").exists():
        if os.environ.get("R1C_SKIP_RAY") == "1":
            pytest.skip("R1C_SKIP_RAY=1 and Ray is not installed")
        pytest.fail(f"Ray is not installed in {cluster.ray_venv}: sudo bash tests/infra/slurm-cluster.sh install-ray "
                    "(~15 s, 284 MB); or R1C_SKIP_RAY=1 to skip", pytrace=False)
    work = cluster.make_workdir("ray")
    cluster.write_file(work / "ray.sh", RAY_JOB, 0o755)
    r = cluster.ssh(["env", f"RAY_VENV={cluster.ray_venv}", "sbatch", "--parsable", f"--chdir={work}",
                     str(work / "ray.sh")])
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(";")[0]
    try:
        state = cluster.wait_job_state(job_id, ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"], timeout=240)
    finally:
        cluster.run(["scancel", job_id])
    out = (work / f"ray.node1.{job_id}.out").read_text()
    err = (work / f"ray.node1.{job_id}.err").read_text()
    assert state == "COMPLETED", err[-3000:]
    assert f"RAY 2 8 {cluster.node_addrs[0]} {cluster.node_addrs[1]}" in out.splitlines(), out[-2000:] + err[-2000:]
