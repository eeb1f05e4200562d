"""Helpers for Pilot tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import AsyncContextManager

from textual.app import App
from textual.screen import Screen


async def wait_until(pilot, predicate, timeout: float = 20.0) -> None:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
        await asyncio.sleep(0)


class Host(App):
    """The smallest app around one screen, with the console's own stylesheet (for tests and snapshots)."""

    CSS_PATH = "../../r1console/tui/app.tcss"

    def __init__(self, make_screen: Callable[[], Screen]) -> None:
        super().__init__()
        self.make_screen = make_screen

    def on_mount(self) -> None:
        self.push_screen(self.make_screen())


def opener_for(url: str, key: str | None) -> Callable[[], AsyncContextManager[tuple[str, str | None]]]:
    """A server opener that yields a fixed URL and key (what a job's ``open_server`` gives the screens)."""

    @contextlib.asynccontextmanager
    async def opener():
        yield url, key

    return opener
