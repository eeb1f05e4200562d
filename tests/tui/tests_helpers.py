"""Helpers for Pilot tests."""

from __future__ import annotations

import asyncio
import time


async def wait_until(pilot, predicate, timeout: float = 20.0) -> None:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
        await asyncio.sleep(0)
