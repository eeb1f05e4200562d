"""The r1console Textual app: one place for keymap, theme, help, the status area and worker errors.

Build it with :func:`r1console.tui.factory.make_app` (the CLI and the tests use the same factory).
"""

from __future__ import annotations

import contextlib
from typing import Awaitable, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from r1console.core.errors import R1Error
from r1console.core.userconfig import UserConfig
from r1console.tui.screens.help import HelpScreen

#: ``await opener(app) -> ClusterSession``: opens the session inside the app's event loop
#: (the app is passed so the SSH transport can show password / two-factor prompts).
SessionOpener = Callable[["R1ConsoleApp"], Awaitable[object]]


class R1ConsoleApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "r1console"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="help"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, opener: SessionOpener | None, config: UserConfig, *, open_job: str | None = None) -> None:
        super().__init__()
        self.opener = opener
        self.session = None
        self.config = config
        self.open_job = open_job
        if config.theme:
            self.theme = config.theme if config.theme in self.available_themes else "textual-dark"

    def on_mount(self) -> None:
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        from r1console.tui.screens.welcome import WelcomeScreen

        if self.opener is None:
            self.push_screen(WelcomeScreen())
        else:
            self.open_session()

    @work(group="session", exclusive=True, exit_on_error=False, description="Connecting to the cluster")
    async def open_session(self) -> None:
        from r1console.tui.screens.jobs import JobsScreen

        assert self.opener is not None
        self.sub_title = "connecting…"
        self.session = await self.opener(self)
        self.sub_title = f"cluster: {self.session.name}"
        await self.push_screen(JobsScreen(self.session, open_job=self.open_job))

    def switch_cluster(self, name: str) -> None:
        """Close this cluster's session and open another (its jobs screen replaces this one)."""
        from r1console.tui.factory import cluster_opener

        self.opener = cluster_opener(self.config.cluster(name))
        self.open_job = None
        self._reopen()

    @work(group="session", exclusive=True, exit_on_error=False, description="Switching cluster")
    async def _reopen(self) -> None:
        old, self.session = self.session, None
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        self.open_session()

    async def prompt(self, title: str, instructions: str, prompts) -> list[str] | None:
        """SSH password / keyboard-interactive (two-factor) prompts, one dialog per question.
        Called from the connecting worker, so it can wait for the dialogs."""
        from r1console.tui.screens.dialogs import PromptDialog

        answers = []
        for item in prompts:
            text = "\n".join(t for t in (instructions, item.text) if t)
            answer = await self.push_screen_wait(PromptDialog(title or "Login", text, password=not item.echo))
            if answer is None:
                return None
            answers.append(answer)
        return answers

    async def on_unmount(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Keys and how r1console works", self.action_help)
        for name, help_text, action in getattr(screen, "PALETTE_COMMANDS", ()):
            yield SystemCommand(name, help_text, getattr(screen, f"action_{action}"))

    # One place turns worker failures into something the user can read.
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, R1Error) else f"{type(error).__name__}: {error}"
        what = event.worker.description or event.worker.name or "background task"
        self.notify(text, title=f"{what} failed", severity="error", timeout=10)
