"""`r1console wait --for ready` on the simulated cluster: both logs followed into the live lifecycle,
the server asked over the session's transport (/health, then a test completion) until it is ready,
and an early, explained failure when the job dies on the way."""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest

from r1console.adapters.slurm_client import JobStateError, remember_batch_host
from r1console.commands import wait
from r1console.core.profiles import load_profile
from r1console.demo.cluster import DemoSession, open_demo_session

TIME_SCALE = 0.01  # wall seconds per simulated second


@pytest.fixture
async def demo(tmp_path, monkeypatch) -> DemoSession:
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    session = await open_demo_session(tmp_path / "demo", time_scale=TIME_SCALE, load_seconds=60.0,
                                      pending_priority_s=1.0, pending_resources_s=1.0, isolate_records=False,
                                      first_job_id=5100)
    try:
        yield session
    finally:
        await session.close()


class _Lines:
    """The progress lines ``wait`` would print on stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def show(self, text: str) -> None:
        if not self.lines or self.lines[-1] != text:
            self.lines.append(text)


async def _ready(demo: DemoSession, *, timeout: float = 60.0):
    dep = await demo.submit(load_profile("h200x8"))
    deadline = time.monotonic() + timeout
    info = await demo.job_state(dep.job_id)
    # as `wait` does: --for ready follows the logs once the job runs (or has run: a fault can end it first)
    while not (info.is_running or info.is_finished):
        assert time.monotonic() < deadline, f"job {dep.job_id} stuck in {info.state}"
        await asyncio.sleep(0.02)
        info = await demo.job_state(dep.job_id)
    dep = remember_batch_host(dep, info) or dep
    args = argparse.Namespace(timeout=timeout, interval=0.05)
    progress = _Lines()
    result = await wait._wait_ready(demo.slurm, demo.transport, dep, info, args,
                                    lambda: deadline - time.monotonic(), progress)
    return dep, result, progress.lines


async def test_wait_ready_follows_the_logs_and_asks_the_server_until_it_answers(demo):
    dep, (info, lifecycle, url), lines = await _ready(demo)
    assert info.is_running and info.job_id == dep.job_id
    assert lifecycle["stage"] == "ready" and lifecycle["health_ok"] is True and lifecycle["probe_ok"] is True
    assert url.startswith("http://") and lifecycle["vllm_version"] and lifecycle["shards_total"]
    stages = [line.split(": ", 1)[1].split(" - ")[0] for line in lines if line.startswith(f"job {dep.job_id}: ")]
    assert "loading" in stages and stages[-1] == "ready"
    assert stages.index("loading") < stages.index("ready")


async def test_wait_ready_fails_early_with_the_logged_reason(demo):
    demo.cluster.set_fault("oom")
    # the logged OOM, also when SLURM's FAILED comes before the follower has streamed the log's last lines
    with pytest.raises(JobStateError, match=r"job \d+ will not become ready: cuda_oom: ") as caught:
        await _ready(demo)
    assert caught.value.hint


async def test_a_job_that_ends_just_before_the_server_is_asked_is_explained_by_its_log(demo):
    # the last squeue said RUNNING, but the job has failed since: the server check meets a job that is
    # no longer running, and the verdict is still the logged reason (not "FAILED: its server is not up")
    demo.cluster.set_fault("oom")
    dep = await demo.submit(load_profile("h200x8"))
    deadline = time.monotonic() + 60
    info = await demo.job_state(dep.job_id)
    while not info.is_running:
        assert time.monotonic() < deadline, f"job {dep.job_id} stuck in {info.state}"
        await asyncio.sleep(0.02)
        info = await demo.job_state(dep.job_id)
    running = info
    while not info.is_finished:
        assert time.monotonic() < deadline, f"job {dep.job_id} did not fail"
        await asyncio.sleep(0.05)
        info = await demo.job_state(dep.job_id)
    dep = remember_batch_host(dep, running) or dep
    args = argparse.Namespace(timeout=30.0, interval=0.05)
    with pytest.raises(JobStateError, match=r"will not become ready: cuda_oom: "):
        await wait._wait_ready(demo.slurm, demo.transport, dep, running, args, lambda: 30.0, _Lines())
