"""`r1console demo` in a real terminal (tmux): what a person sees, read back with capture-pane.

The job goes queued -> loading (x/163) -> ready, and a chat answer arrives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None and not os.environ.get("CI"), reason="tmux is not installed")


def capture(session: str) -> str:
    return subprocess.run([TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(session: str, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        match = re.search(pattern, screen)
        if match:
            return match
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} not on screen within {timeout} s; screen was:\n{screen}")


def test_demo_in_tmux(tmp_path):
    assert TMUX, "tmux is required (.ci/run installs it)"
    session = f"r1c-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, R1CONSOLE_CONFIG=str(tmp_path / "none.yaml"), TERM="xterm-256color")
    command = f"{sys.executable} -m r1console demo --time-scale 0.25 --dir {tmp_path / 'demo'}"
    subprocess.run([TMUX, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], env=env, check=True)
    try:
        wait_for(session, r"QUEUED|STARTING", timeout=60)
        loading = wait_for(session, r"LOADING.*?(\d+)/163 shards", timeout=120)
        assert 0 <= int(loading.group(1)) <= 163
        wait_for(session, r"READY", timeout=180)
        subprocess.run([TMUX, "send-keys", "-t", session, "t"], check=True)
        wait_for(session, r"Chat — job \d+ · model", timeout=60)
        subprocess.run([TMUX, "send-keys", "-t", session, "-l", "Why is the sky blue?"], check=True)
        subprocess.run([TMUX, "send-keys", "-t", session, "Enter"], check=True)
        summary = wait_for(session, r"done · (\d+) tokens", timeout=120)
        assert int(summary.group(1)) > 0
    finally:
        subprocess.run([TMUX, "send-keys", "-t", session, "C-q"])
        time.sleep(1.0)
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
