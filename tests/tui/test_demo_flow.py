"""The whole console on the demo cluster, driven by Pilot: the deployment queues, Ray starts,
163 shards load (the bar moves), the server becomes ready, a chat answer streams, a batch
finishes, and the job is cancelled — every screen over the real SLURM client and parsers."""

from __future__ import annotations

import argparse
import json

import pytest

from r1console.commands.demo import make_opener
from r1console.core.lifecycle import Stage
from r1console.core.userconfig import UserConfig
from r1console.tui.factory import make_app
from r1console.tui.screens.batch import BatchScreen
from r1console.tui.screens.chat import ChatScreen
from r1console.tui.screens.job import JobScreen
from r1console.tui.screens.jobs import JobsScreen
from tests_helpers import wait_until


def demo_args(**kw) -> argparse.Namespace:
    base = dict(profile="h200x8", vllm_version=None, load_seconds=60.0, time_scale=0.15, fault=None)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture
def demo_root(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "no-config.yaml"))
    return tmp_path / "demo"


async def test_launch_to_ready_chat_batch_and_cancel(demo_root, tmp_path):
    app = make_app(UserConfig(), opener=make_opener(demo_root, demo_args()))
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, JobScreen), timeout=30)
        job_screen: JobScreen = app.screen
        seen: set[Stage] = set()

        def stage_is(target: Stage) -> bool:
            stage = job_screen.watch.snapshot().stage
            seen.add(stage)
            return stage is target

        bar = job_screen.query_one("#shard-bar")
        progress_seen: set[float] = set()

        def loading_progress() -> bool:
            stage_is(Stage.LOADING)
            if bar.total == 163:
                progress_seen.add(bar.progress)
            return job_screen.watch.snapshot().stage is Stage.READY

        await wait_until(pilot, loading_progress, timeout=120)
        assert {Stage.STARTING, Stage.LOADING} <= seen, seen
        assert len(progress_seen) > 3 and max(progress_seen) == 163  # the bar moved, then completed
        state = job_screen.watch.snapshot()
        assert state.shards_loaded == state.shards_total == 163
        assert state.health_ok and state.probe_ok
        # both log panes show what the watch followed (the .out has our markers and vLLM's lines)
        out_view, err_view = job_screen.query_one("#log-out"), job_screen.query_one("#log-err")
        await wait_until(pilot, lambda: out_view.line_count == len(job_screen.watch.buffers["out"].lines()) > 10)
        assert err_view.line_count > 0
        assert "Head node: gpu01" in job_screen.watch.buffers["out"].lines()
        # GPUs of both nodes were sampled through srun/nvidia-smi
        await wait_until(pilot, lambda: job_screen.watch.gpus is not None, timeout=30)
        assert len([g for n in job_screen.watch.gpus.nodes for g in n.gpus]) == 8

        # chat with the deployment
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat: ChatScreen = app.screen
        await wait_until(pilot, lambda: chat.session.model is not None, timeout=30)
        chat.query_one("#chat-input").value = "What is 2+2?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: chat.session.turns and not chat.session.streaming, timeout=60)
        turn = chat.session.turns[0]
        assert turn.state.value == "done" and turn.reasoning
        await pilot.press("escape")

        # a batch through the same deployment
        prompts = tmp_path / "input_prompts.json"
        prompts.write_text(json.dumps({"system_prompt": "", "user_prompts": [
            {"question_tag": f"q{i}", "content": f"Question {i}"} for i in range(6)]}))
        output = tmp_path / "out.json"
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchScreen))
        batch: BatchScreen = app.screen
        batch.query_one("#batch-input").value = str(prompts)
        batch.query_one("#batch-output").value = str(output)
        batch.query_one("#batch-max-tokens").value = "64"
        await pilot.press("ctrl+r")
        await wait_until(pilot, output.exists, timeout=60)
        assert len(json.loads(output.read_text())) == 6
        await pilot.press("escape")

        # cancel, confirmed in the modal
        await wait_until(pilot, lambda: isinstance(app.screen, JobScreen))
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: stage_is(Stage.CANCELLED), timeout=60)


async def test_oom_fault_shows_failed_with_explanation(demo_root):
    app = make_app(UserConfig(), opener=make_opener(demo_root, demo_args(fault="oom")))
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, JobScreen), timeout=30)
        screen: JobScreen = app.screen
        await wait_until(pilot, lambda: screen.watch.snapshot().stage is Stage.FAILED, timeout=90)
        state = screen.watch.snapshot()
        assert state.primary_error is not None
        banner = str(screen.query_one("#stage-banner").render())
        assert "FAILED" in banner and state.primary_error.explanation[:30] in banner


async def test_cancel_failure_shows_the_error_dialog(demo_root):
    from r1console.adapters.slurm_client import JobStateError
    from r1console.tui.screens.dialogs import ErrorDialog

    app = make_app(UserConfig(), opener=make_opener(demo_root, demo_args()))
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, JobScreen), timeout=30)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, JobsScreen))
        jobs: JobsScreen = app.screen
        await wait_until(pilot, lambda: jobs.query_one("#jobs-table").row_count > 0, timeout=30)

        async def refuse(job_id: str):
            raise JobStateError(f"scancel {job_id}: Access/permission denied")

        jobs.session.cancel = refuse
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog), timeout=10)
        assert "permission denied" in app.screen.message


async def test_cluster_switcher_lists_configured_clusters(demo_root, tmp_path):
    from r1console.tui.screens.dialogs import ChoiceDialog

    config = UserConfig.model_validate({"clusters": {"alpha": {"ssh_host": "alpha-login"}, "beta": {"transport": "local"}}})
    app = make_app(config, opener=make_opener(demo_root, demo_args()))
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, JobScreen), timeout=30)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        assert app.screen.choices == ["alpha", "beta", "local"]
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, JobsScreen))
