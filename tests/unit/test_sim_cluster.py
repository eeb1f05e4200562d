"""The demo's simulated cluster under the REAL SlurmClient, parsers, FileFollower and ClusterSession.

Everything goes through ``open_demo_session`` exactly as the console does; the simulated clock
runs 100x faster (``time_scale=0.01``), so a whole DeepSeek-R1 startup (Ray, 163 shards, KV cache,
server) takes about two seconds of wall time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from r1console.adapters.slurm_client import JobStateError
from r1console.core.api_errors import ServerUnreachable
from r1console.core.errors import RemoteError
from r1console.core.lifecycle import JobLifecycle, LifecycleState, Stage
from r1console.core.logparse import LogParser
from r1console.core.planner import builtin_model_for, make_plan
from r1console.core.profiles import load_profile
from r1console.core.slurm_parse import (
    SQUEUE_FORMAT,
    parse_sacct,
    parse_scontrol_jobs,
    parse_squeue_format,
    parse_squeue_json,
)
from r1console.demo.cluster import DemoSession, open_demo_session

TIME_SCALE = 0.01  # wall seconds per simulated second
MiB = 1024**2


def read(path: str) -> str:
    """The file as written (Path.read_text would turn tqdm's \\r into \\n)."""
    return Path(path).read_bytes().decode("utf-8")


@pytest.fixture
async def demo(tmp_path, monkeypatch) -> DemoSession:
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    session = await open_demo_session(tmp_path / "demo", time_scale=TIME_SCALE, load_seconds=60.0,
                                      pending_priority_s=15.0, pending_resources_s=15.0, nccl_timeout_s=20.0,
                                      min_job_age_s=300.0, isolate_records=False, first_job_id=4240)
    try:
        yield session
    finally:
        await session.close()


async def wait_for(session, job_id: str, predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        info = await session.job_state(job_id)
        if predicate(info):
            return info
        assert time.monotonic() < deadline, f"job {job_id} stuck in {info.state} ({info.reason})"
        await asyncio.sleep(0.02)


async def follow_until(session, path: str, lifecycle: JobLifecycle, parser: LogParser, done, *,
                       offset: int = 0, timeout: float = 30.0, on_state=None) -> tuple[LifecycleState, int]:
    """Feed the real FileFollower's chunks to the real parser + lifecycle until ``done(state)``."""
    follower = session.follow(path, offset)

    async def run() -> LifecycleState:
        async for chunk in follower:
            lifecycle.on_events(parser.feed(chunk), time.monotonic())
            state = lifecycle.snapshot(time.monotonic())
            if on_state is not None:
                on_state(state)
            if done(state):
                return state
        raise AssertionError("the follow ended")

    try:
        state = await asyncio.wait_for(run(), timeout)
        return state, follower.offset
    finally:
        await follower.aclose()


async def start_running(session, profile: str = "h200x8", overrides=()):
    dep = await session.submit(load_profile(profile, overrides=list(overrides)))
    info = await wait_for(session, dep.job_id, lambda i: i.is_running or i.is_finished)
    return dep, info


# ---- the whole life of a deployment ------------------------------------------------------------
async def test_h200x8_pending_running_loading_ready_server_cancel_history(demo):
    loaded = load_profile("h200x8")
    dep = await demo.submit(loaded)

    info = await demo.job_state(dep.job_id)          # squeue -h -t all -j ID -o SQUEUE_FORMAT
    assert (info.state, info.reason, info.batch_host) == ("PENDING", "Priority", "")
    queue = (await demo.jobs()).queue                 # squeue --json (>= 23.02 shape)
    assert [(j.state, j.reason, j.user) for j in queue if j.job_id == dep.job_id] == [("PENDING", "Priority", "demo")]
    info = await wait_for(demo, dep.job_id, lambda i: i.reason == "Resources" or not i.is_pending)
    assert info.state == "PENDING"

    info = await wait_for(demo, dep.job_id, lambda i: i.is_running)
    assert info.batch_host == "gpu01" and info.node_list == ["gpu01", "gpu02"] and info.node_count == 2
    assert info.time_limit == 3 * 86400
    details = await demo.slurm.job(dep.job_id)        # scontrol show job -o
    assert details.source == "scontrol" and details.batch_host == "gpu01"
    assert details.stdout == f"{dep.workdir}/job.%N.{dep.job_id}.out"  # %N left for us to fill, as SLURM does
    err_path = await demo.log_path(dep.job_id, "err")
    out_path = await demo.log_path(dep.job_id, "out")
    assert err_path == details.stderr_path() == f"{dep.workdir}/job.gpu01.{dep.job_id}.err"
    assert out_path == details.stdout_path()

    plan = make_plan(loaded.profile, builtin_model_for(loaded.profile.model.path))
    settled_mib = (plan.weights_bytes_per_gpu + plan.kv_cache_bytes_per_gpu + plan.non_torch_bytes_per_gpu) / MiB
    reports = []

    async def sample_gpus() -> None:
        while True:
            reports.append(await demo.gpus(dep.job_id))  # srun --overlap ... -l nvidia-smi --query-gpu
            await asyncio.sleep(0.03)

    sampler = asyncio.create_task(sample_gpus())
    lifecycle, parser = JobLifecycle(live=False), LogParser("err")
    loading: list[tuple[int | None, int | None]] = []

    def note(state: LifecycleState) -> None:
        if state.stage is Stage.LOADING:
            loading.append((state.shards_loaded, state.shards_total))

    state, offset = await follow_until(demo, err_path, lifecycle, parser, lambda s: s.stage is Stage.READY,
                                       on_state=note)
    await asyncio.sleep(0.1)
    sampler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sampler

    assert state.log_ready and state.shards_loaded == state.shards_total == 163
    assert any(total == 163 and 0 < n < 163 for n, total in loading), loading
    assert all(len(r.nodes) == 2 and [len(n.gpus) for n in r.nodes] == [4, 4] for r in reports)
    assert {g.name for r in reports for n in r.nodes for g in n.gpus} == {"NVIDIA H200"}
    assert {g.memory_total_mib for r in reports for n in r.nodes for g in n.gpus} == {143771}
    per_gpu = [[g.memory_used_mib for n in r.nodes for g in n.gpus] for r in reports]
    assert any(settled_mib * 0.1 < mem[0] < settled_mib * 0.6 for mem in per_gpu), "no sample while loading"
    for gpu in range(8):
        series = [mem[gpu] for mem in per_gpu]
        assert series == sorted(series), f"GPU {gpu} memory went down while starting: {series}"
    assert all(abs(m - settled_mib) / settled_mib < 0.01 for m in per_gpu[-1]), (per_gpu[-1], settled_mib)

    out_text = read(out_path)
    for marker in ("[r1console] rendered_by=r1console", f"[r1console] job_id={dep.job_id} nodelist=gpu[01-02]",
                   "Head node: gpu01", "[r1console] head_node=gpu01", "[r1console] port=8000",
                   "[r1console] ray_worker node=gpu02", "[r1console] ray_waiting nodes=1/2 gpus=4/8",
                   "[r1console] ray_ready nodes=2 gpus=8", "[r1console] vllm_starting",
                   "(RayWorkerWrapper pid=955, ip=10.31.0.12)", "vLLM API server version 0.8.5",
                   "Starting vLLM API server on http://0.0.0.0:8000"):
        assert marker in out_text, marker
    err_text = read(err_path)
    assert "\rLoading safetensors checkpoint shards: 100% Completed | 163/163 [01:00<00:00," in err_text
    # Ray 2.60's `ray start` CLI output goes to the step's stdout (tests/data/ray-2node/ captures)
    assert "\tSUCC scripts.py:1085 -- Ray runtime started." in out_text
    assert "\tSUCC scripts.py:1251 -- Ray runtime started." in out_text
    assert "\tWARNING authentication_token_setup.py:73 -- Token authentication is disabled" in err_text

    # The server, through the session's forward and the API key file the submit wrote.
    async with demo.open_server(dep.job_id) as (url, key):
        assert key == Path(dep.key_path).read_text().strip()
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(url + "/health")).status_code == 200
            assert (await client.get(url + "/v1/models")).status_code == 401
            models = await client.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
            assert models.status_code == 200 and models.json()["data"][0]["id"] == "/path/to/DeepSeek-R1"
    assert '"GET /health HTTP/1.1" 200 OK' in read(out_path)  # the server's access log

    # scancel: SlurmClient.cancel confirms CANCELLED; slurmstepd's line reaches the lifecycle.
    cancelled = await demo.cancel(dep.job_id)
    assert cancelled.state == "CANCELLED"
    state, _ = await follow_until(demo, err_path, lifecycle, parser, lambda s: s.stage.terminal, offset=offset)
    assert state.stage is Stage.CANCELLED and not state.errors
    assert f"slurmstepd-gpu01: error: *** JOB {dep.job_id} ON gpu01 CANCELLED AT " in read(err_path)

    past = await demo.slurm.history([dep.job_id])      # sacct -X -P -o ... -j ID
    assert [(j.state, j.reason, j.nodes, j.exit_code) for j in past] == [
        ("CANCELLED", f"by {os.getuid()}", "gpu[01-02]", "0:0")]
    view = await demo.jobs()                           # squeue --json + sacct -S ... -u demo
    assert [j.state for j in view.queue if j.job_id == dep.job_id] == ["CANCELLED"]
    assert dep.job_id in view.deployments
    assert dep.job_id in [j.job_id for j in await demo.slurm.history()]


async def test_oom_while_loading_fails_like_a_real_job(demo):
    demo.cluster.set_fault("oom")
    dep, info = await start_running(demo)
    err_path = await demo.log_path(dep.job_id, "err")
    lifecycle, parser = JobLifecycle(live=False), LogParser("err")
    stages: list[Stage] = []
    state, _ = await follow_until(demo, err_path, lifecycle, parser, lambda s: s.stage is Stage.FAILED,
                                  on_state=lambda s: stages.append(s.stage))
    assert Stage.LOADING in stages
    assert state.errors[0].kind == "cuda_oom" and "CUDA out of memory" in state.errors[0].line
    assert 0 < state.shards_loaded < 163
    info = await wait_for(demo, dep.job_id, lambda i: i.is_finished)
    assert (info.state, info.reason) == ("FAILED", "NonZeroExitCode")
    assert (await demo.slurm.job(dep.job_id)).exit_code == "1:0"
    assert [(j.state, j.exit_code) for j in await demo.slurm.history([dep.job_id])] == [("FAILED", "1:0")]
    out = read(await demo.log_path(dep.job_id, "out"))
    assert "[r1console] vllm_exited code=1" in out
    assert "(RayWorkerWrapper pid=969, ip=10.31.0.12) ERROR" in out  # the failing rank, on gpu02
    with pytest.raises(JobStateError, match="has ended"):
        await demo.gpus(dep.job_id)


async def test_oom_rank_gpu_is_already_busy_before_loading(demo):
    demo.cluster.set_fault("oom")
    dep, _ = await start_running(demo)
    report = await demo.gpus(dep.job_id)
    gpu02 = {g.index: g for n in report.nodes if n.node == "gpu02" for g in n.gpus}
    assert gpu02[2].memory_used_mib > 80_000           # the leftover process the traceback names
    assert all(gpu02[i].memory_used_mib < 5_000 for i in (0, 1, 3))


async def test_nccl_watchdog_timeout_fails_the_job(demo):
    demo.cluster.set_fault("nccl")
    dep, _ = await start_running(demo)
    err_path = await demo.log_path(dep.job_id, "err")
    lifecycle, parser = JobLifecycle(live=False), LogParser("err")
    state, _ = await follow_until(demo, err_path, lifecycle, parser, lambda s: s.stage is Stage.FAILED)
    assert state.errors[0].kind == "nccl_timeout" and "Watchdog caught collective operation timeout" in \
        state.errors[0].line
    assert state.shards_loaded == 163 and not state.log_ready
    info = await wait_for(demo, dep.job_id, lambda i: i.is_finished)
    assert (info.state, info.reason) == ("FAILED", "NonZeroExitCode")


async def test_ray_node_lost_mid_serve_reads_like_the_real_2node_capture(demo):
    demo.cluster.set_fault("ray_node_lost")
    dep, _ = await start_running(demo)
    err_path = await demo.log_path(dep.job_id, "err")
    lifecycle, parser = JobLifecycle(live=False), LogParser("err")
    stages: list[Stage] = []
    state, _ = await follow_until(demo, err_path, lifecycle, parser, lambda s: s.stage is Stage.FAILED,
                                  on_state=lambda s: stages.append(s.stage))
    assert state.errors[0].kind == "ray_step_died" and "node=gpu02" in state.errors[0].explanation
    info = await wait_for(demo, dep.job_id, lambda i: i.is_finished)
    assert (info.state, info.reason) == ("FAILED", "NonZeroExitCode")
    # the same lines, in the same order, as the test cluster printed when node2's Ray step was killed
    real = (Path(__file__).resolve().parents[1] / "data/ray-2node/worker-step-killed/job.node1.7.err").read_text()
    real_tail = real[real.index("srun: error: node2"):].replace("node2", "gpu02").replace("node1", "gpu01")
    sim = read(err_path)
    sim_tail = sim[sim.index("srun: error: gpu02"):]
    assert sim_tail == real_tail.replace("StepId=7.", f"StepId={dep.job_id}.").replace("STEP 7.", f"STEP {dep.job_id}.")
    assert "vllm_exited" not in read(await demo.log_path(dep.job_id, "out"))


async def test_time_limit_ends_the_job_as_timeout(demo):
    dep, _ = await start_running(demo, overrides=["slurm.time=00:01:30"])
    info = await wait_for(demo, dep.job_id, lambda i: i.is_finished)
    assert (info.state, info.reason) == ("TIMEOUT", "TimeLimit")
    err_path = await demo.log_path(dep.job_id, "err")
    text = read(err_path)
    assert f"*** JOB {dep.job_id} ON gpu01 CANCELLED AT " in text and " DUE TO TIME LIMIT ***" in text
    lifecycle, parser = JobLifecycle(live=False), LogParser("err")
    lifecycle.on_events(parser.feed(text.encode()) + parser.flush())
    lifecycle.on_slurm_state(info.state, info.reason)
    assert lifecycle.snapshot().errors[0].kind == "slurm_time_limit"
    assert [(j.state, j.time_limit) for j in await demo.slurm.history([dep.job_id])] == [("TIMEOUT", 90)]


async def test_second_job_waits_for_resources_until_the_first_ends(demo):
    first, _ = await start_running(demo)
    second = await demo.submit(load_profile("h200x8"))
    waiting = await wait_for(demo, second.job_id, lambda i: i.reason == "Resources")
    assert waiting.state == "PENDING"
    await asyncio.sleep(40 * TIME_SCALE)
    assert (await demo.job_state(second.job_id)).reason == "Resources"  # both nodes are still taken
    await demo.cancel(first.job_id)
    info = await wait_for(demo, second.job_id, lambda i: not i.is_pending)
    assert info.state == "RUNNING" and info.node_list == ["gpu01", "gpu02"]
    assert int(second.job_id) == int(first.job_id) + 1


# ---- SLURM's own output, errors included -------------------------------------------------------
async def test_formats_parse_with_the_real_parsers_and_match_the_captures(demo):
    dep, _ = await start_running(demo)
    run = demo.transport.run
    # `squeue` with no options as SLURM 22.05.8 printed it (a capture), verbatim
    header = "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    default = await run(["squeue"])
    assert default.ok and default.stdout.splitlines()[0] == header
    row = default.stdout.splitlines()[1].split()
    assert row[:5] == [dep.job_id, "gpu", "r1consol", "demo", "R"] and row[-2:] == ["2", "gpu[01-02]"]

    fmt = await run(["squeue", "-h", "-t", "all", "-j", dep.job_id, "-o", SQUEUE_FORMAT])
    (job,) = parse_squeue_format(fmt.stdout)
    (json_job,) = [j for j in parse_squeue_json((await run(["squeue", "--json"])).stdout) if j.job_id == dep.job_id]
    assert json_job.state_flags == () and json_job.time_limit == job.time_limit == 3 * 86400
    assert (json_job.batch_host, json_job.nodes, json_job.workdir) == (job.batch_host, job.nodes, job.workdir)
    assert json_job.stdout == f"{dep.workdir}/job.%N.%j.out"      # squeue --json keeps the raw pattern

    oneline = parse_scontrol_jobs((await run(["scontrol", "show", "job", "-o", dep.job_id])).stdout)
    multiline = parse_scontrol_jobs((await run(["scontrol", "show", "job", dep.job_id])).stdout)
    same = [dataclasses.replace(j, time_used=None) for j in oneline]  # RunTime moves at 100x speed
    assert same == [dataclasses.replace(j, time_used=None) for j in multiline]
    assert oneline[0].node_list == ["gpu01", "gpu02"]

    sacct = await run(["sacct", "-P", "-j", dep.job_id])   # default fields, with the steps
    assert sacct.stdout.splitlines()[0] == "JobID|JobName|Partition|Account|AllocCPUS|State|ExitCode"
    assert [j.state for j in parse_sacct(sacct.stdout)] == ["RUNNING"]
    assert [j.job_id for j in parse_sacct(sacct.stdout, include_steps=True)][1:] == [f"{dep.job_id}.0",
                                                                                     f"{dep.job_id}.1"]
    units = await run(["srun", f"--jobid={dep.job_id}", "--overlap", "-w", "gpu02", "nvidia-smi",
                       "--query-gpu=index,memory.used,memory.total", "--format=csv"])
    assert units.stdout.splitlines()[0] == "index, memory.used [MiB], memory.total [MiB]"
    assert units.stdout.splitlines()[1].endswith(" MiB, 143771 MiB")


async def test_error_outputs_are_slurms(demo):
    run = demo.transport.run
    for argv in (["squeue", "-h", "-t", "all", "-j", "99999", "-o", SQUEUE_FORMAT],
                 ["scontrol", "show", "job", "-o", "99999"]):
        result = await run(argv)
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", "slurm_load_jobs error: Invalid job id specified\n")
    result = await run(["scancel", "99999"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    result = await run(["srun", "--jobid=99999", "--overlap", "hostname"])
    assert result.returncode == 1 and result.stderr == (
        "srun: error: Unable to confirm allocation for job 99999: Invalid job id specified\n"
        "srun: Check SLURM_JOB_ID environment variable. Expired or invalid job 99999\n")
    assert (await run(["sacct", "-X", "-P", "-o", "JobID,State", "-j", "99999"])).stdout == "JobID|State\n"

    dep = await demo.submit(load_profile("h200x8"))
    result = await run(["srun", f"--jobid={dep.job_id}", "--overlap", "hostname"])
    assert result.returncode == 1 and result.stderr.startswith(
        f"srun: error: Unable to confirm allocation for job {dep.job_id}: Job is pending execution\n")
    with pytest.raises(JobStateError, match="not running yet"):
        await demo.gpus(dep.job_id)
    await demo.cancel(dep.job_id)                     # cancelled while pending
    result = await run(["srun", f"--jobid={dep.job_id}", "--overlap", "hostname"])
    assert result.stderr.startswith(f"srun: error: Slurm job {dep.job_id} has expired\n")
    (past,) = await demo.slurm.history([dep.job_id])
    assert (past.state, past.reason, past.nodes) == ("CANCELLED", "Priority", "")  # NodeList: None assigned

    cases = {"slurm.partition=nosuch": "sbatch: error: invalid partition specified: nosuch\n"
                                       "sbatch: error: Batch job submission failed: Invalid partition name specified",
             "slurm.nodes=3": "sbatch: error: Batch job submission failed: Node count specification invalid",
             "slurm.gpus_per_node=8": "sbatch: error: Batch job submission failed: Requested node configuration "
                                      "is not available"}
    for override, message in cases.items():
        with pytest.raises(RemoteError) as info:
            await demo.submit(load_profile("h200x8", overrides=[override]))
        assert info.value.stderr.strip() == message


async def test_server_port_refuses_connections_until_vllm_listens(demo):
    dep, _ = await start_running(demo)
    # nothing listens yet: the identity check cannot pass, so the key is not handed out
    with pytest.raises(ServerUnreachable, match="not answering yet"):
        async with demo.open_server(dep.job_id):
            pass


async def test_history_and_job_ids_survive_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    before = os.environ["R1CONSOLE_STATE_DIR"] = str(tmp_path / "user-state")
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", before)
    session = await open_demo_session(tmp_path / "demo", time_scale=TIME_SCALE, pending_priority_s=1,
                                      pending_resources_s=1)
    assert os.environ["R1CONSOLE_STATE_DIR"] == str((tmp_path / "demo" / "state").resolve())
    dep = await session.submit(load_profile("h200x8"))
    await wait_for(session, dep.job_id, lambda i: i.is_running)
    await session.close()                              # a running job ends as CANCELLED
    assert os.environ["R1CONSOLE_STATE_DIR"] == before

    session = await open_demo_session(tmp_path / "demo", time_scale=TIME_SCALE)
    try:
        (past,) = await session.slurm.history([dep.job_id])
        assert past.state == "CANCELLED"
        info = await session.job_state(dep.job_id)     # gone from squeue: the client falls back to sacct
        assert (info.state, info.source) == ("CANCELLED", "sacct")
        again = await session.submit(load_profile("h200x8"))
        assert int(again.job_id) == int(dep.job_id) + 1
    finally:
        await session.close()


def test_demo_modules_never_import_textual():
    code = ("import sys\n"
            "import r1console.demo.cluster, r1console.demo.sim_cluster, r1console.demo.sim_transport\n"
            "import r1console.demo.sim_job\n"
            "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


async def test_open_server_refuses_a_job_id_that_is_no_longer_ours(demo):
    """Audit L5: a record whose job id SLURM handed out again (other workdir or user) gets no key."""
    from r1console.adapters import deployments
    from r1console.core.errors import R1Error

    dep, _ = await start_running(demo)
    deployments.update(deployments.find(dep.job_id), workdir="/somewhere/else")
    with pytest.raises(R1Error, match="SLURM reused the id. The key was not sent"):
        async with demo.open_server(dep.job_id):
            pass
