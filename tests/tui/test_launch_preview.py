"""The launch preview is made off the UI thread, after a pause in typing; a submit never uses a stale one."""

from __future__ import annotations

from textual.widgets import Input

from fakes import FrozenSession
from r1console.core.userconfig import UserConfig
from r1console.tui.screens.launch import PREVIEW_DEBOUNCE_S, LaunchScreen
from tests_helpers import Host, wait_until


async def test_preview_follows_the_inputs_after_a_pause():
    screen = LaunchScreen(FrozenSession(), UserConfig())
    async with Host(lambda: screen).run_test(size=(130, 42)) as pilot:
        await wait_until(pilot, lambda: screen.preview_key is not None)
        assert screen.loaded is not None and screen.plan is not None
        profile = screen.preview_key[0]
        screen.query_one("#field-vllm-max_num_seqs", Input).value = "7"
        screen.query_one("#field-vllm-max_num_seqs", Input).value = "72"
        await pilot.pause()
        assert screen.preview_key == (profile, ())  # keystrokes wait for the pause
        await pilot.pause(PREVIEW_DEBOUNCE_S)
        await wait_until(pilot, lambda: screen.preview_key == (profile, ("vllm.max_num_seqs=72",)))
        assert screen.plan.max_num_seqs == 72
        assert "(profile: 72, " in str(screen.query_one("#launch-plan").render())


async def test_submit_right_after_typing_uses_the_new_values():
    screen = LaunchScreen(FrozenSession(), UserConfig())
    submitted = []
    async with Host(lambda: screen).run_test(size=(130, 42)) as pilot:
        await wait_until(pilot, lambda: screen.preview_key is not None)
        screen.submit = submitted.append  # the sbatch worker: record what it would submit
        screen.query_one("#override").value = True
        screen.query_one("#field-slurm-time", Input).value = "0-01:30"
        screen.action_submit()
        assert [loaded.profile.slurm.time for loaded in submitted] == ["0-01:30"]
