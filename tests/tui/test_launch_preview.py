"""The launch preview is made off the UI thread, after a pause in typing; a submit never uses a stale one."""

from __future__ import annotations

from textual.widgets import Input

from fakes import FrozenSession
from r1console.core.userconfig import UserConfig
from r1console.tui.screens import launch
from r1console.tui.screens.launch import LaunchScreen
from tests_helpers import Host, wait_until


async def test_preview_follows_the_inputs_after_a_pause(monkeypatch):
    made = []

    def counted(key, cluster, dirs):
        made.append(key)
        return launch.build_preview.__wrapped__(key, cluster, dirs)

    counted.__wrapped__ = launch.build_preview
    monkeypatch.setattr(launch, "build_preview", counted)
    monkeypatch.setattr(launch, "PREVIEW_DEBOUNCE_S", 1.0)  # longer than any pause below, even on a busy machine
    screen = LaunchScreen(FrozenSession(), UserConfig())
    async with Host(lambda: screen).run_test(size=(130, 42)) as pilot:
        await wait_until(pilot, lambda: screen.preview_key is not None and screen._preview_timer is None)
        assert screen.loaded is not None and screen.plan is not None
        profile = screen.preview_key[0]
        seen = len(made)
        assert made == [(profile, ())]  # the first Changed after mounting asks for no second one
        for value in ("7", "72"):  # two keystrokes: one preview, for the last value
            screen.query_one("#field-vllm-max_num_seqs", Input).value = value
            await pilot.pause()
        assert screen.preview_key == (profile, ()) and len(made) == seen
        await wait_until(pilot, lambda: screen.preview_key == (profile, ("vllm.max_num_seqs=72",)))
        assert made[seen:] == [(profile, ("vllm.max_num_seqs=72",))]
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
