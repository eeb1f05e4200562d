"""Snapshots of each screen at a fixed state (pytest-textual-snapshot; SVGs in __snapshots__/).

Update after a deliberate UI change with `python -m pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the SVGs before committing them."""

from __future__ import annotations

import contextlib

import pytest
from textual.widgets import Input

from fakes import DATA, DEPLOYMENT, FrozenSession, gpu_nodes
from r1console.core.userconfig import UserConfig
from r1console.tui.app import R1ConsoleApp
from r1console.tui.messages import GpusSampled, JobsRefreshed, LifecycleChanged, LogGrew
from r1console.tui.screens.batch import BatchScreen
from r1console.tui.screens.chat import ChatScreen
from r1console.tui.screens.job import JobScreen
from r1console.tui.screens.jobs import JobsScreen
from r1console.tui.screens.launch import LaunchScreen
from r1console.tui.widgets.status_bar import ResourceUsage
from tests_helpers import Host

SIZE = (130, 42)


@pytest.fixture(autouse=True)
def fixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("R1CONSOLE_CONFIG", "/home/alice/.config/r1console/config.yaml")
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))

    def sample(self) -> None:  # the console's own CPU / RSS differ every run
        self.cpu_percent, self.rss_mib = 0.7, 61.0

    monkeypatch.setattr(ResourceUsage, "sample", sample)


def test_welcome(snap_compare):
    assert snap_compare(R1ConsoleApp(None, UserConfig()), terminal_size=SIZE)


def test_help(snap_compare):
    assert snap_compare(R1ConsoleApp(None, UserConfig()), press=["f1"], terminal_size=SIZE)


def test_jobs(snap_compare):
    session = FrozenSession()
    screen = JobsScreen(session)

    async def fill(pilot) -> None:
        view = await session.jobs()
        screen.post_message(JobsRefreshed(view.queue, view.history, view.deployments))
        await pilot.pause()

    assert snap_compare(Host(lambda: screen), terminal_size=SIZE, run_before=fill)


def loading_job_screen() -> JobScreen:
    screen = JobScreen(FrozenSession(), "4240", DEPLOYMENT)
    screen.watch.clock = lambda: 1_000_000.0
    for stream in ("out", "err"):
        data = (DATA / "logs" / "0.8.5-ray" / "loading" / f"job.holygpu8a11301.4240.{stream}").read_bytes()
        screen.watch._feed(stream, data)
    screen.watch.lifecycle.on_slurm_state("RUNNING", None, 1_000_000.0)
    return screen


def test_job_loading(snap_compare):
    screen = loading_job_screen()

    async def fill(pilot) -> None:
        screen.post_message(LifecycleChanged("4240"))
        screen.post_message(LogGrew("4240", "out"))
        screen.post_message(LogGrew("4240", "err"))
        screen.post_message(GpusSampled("4240", gpu_nodes()))
        await pilot.pause()

    assert snap_compare(Host(lambda: screen), terminal_size=SIZE, run_before=fill)


def test_job_log_search(snap_compare):
    screen = loading_job_screen()

    async def fill(pilot) -> None:
        screen.post_message(LifecycleChanged("4240"))  # a determinate bar (the indeterminate one animates)
        screen.post_message(LogGrew("4240", "out"))
        screen.post_message(LogGrew("4240", "err"))
        await pilot.pause()
        screen.query_one("#log-err").search("Completed")
        screen._log_status()
        await pilot.pause()

    assert snap_compare(Host(lambda: screen), terminal_size=SIZE, run_before=fill)


def test_launch(snap_compare):
    screen = LaunchScreen(FrozenSession(), UserConfig())

    async def preview_made(pilot) -> None:  # the preview is made in a worker thread
        for _ in range(200):
            if screen.preview_key is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(Host(lambda: screen), terminal_size=SIZE, run_before=preview_made)


async def steady_cursor(pilot) -> None:
    """The focused input's cursor, shown and not blinking: a loaded machine would catch it mid-blink."""
    await pilot.pause()
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


def test_chat_empty(snap_compare):
    @contextlib.asynccontextmanager
    async def never():
        yield "http://127.0.0.1:9", None

    assert snap_compare(Host(lambda: ChatScreen("job 4240", never)), terminal_size=SIZE, run_before=steady_cursor)


def test_batch_empty(snap_compare):
    @contextlib.asynccontextmanager
    async def never():
        yield "http://127.0.0.1:9", None

    assert snap_compare(Host(lambda: BatchScreen("job 4240", never)), terminal_size=SIZE, run_before=steady_cursor)
