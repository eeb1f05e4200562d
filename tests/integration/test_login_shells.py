"""M11: remote commands run under /bin/sh whatever the login shell (bash, dash, zsh, tcsh, fish).

A private sshd on 127.0.0.1 (bench/faultlib.PrivateSshd) serves one throw-away user per shell, so the
shared cluster's sshd and its r1ctest user are never changed. Every transport primitive the CLI uses
goes through each login shell (bench/login_shell_check.py, shared with the fault row login-shells):
run() with hostile argv, identity(), write_file/read_file, the remote timeout, and a byte-exact follow
(its --pid=$PPID, the in-band truncation marker, no tail left behind).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import faultlib  # noqa: E402
from login_shell_check import WANTED_SHELLS, login_shell_problems  # noqa: E402

from r1console.adapters.ssh_transport import SSHTransport  # noqa: E402


@pytest.fixture(scope="module")
def sshd():
    why = faultlib.PrivateSshd.available()
    if why:
        pytest.skip(f"login-shell matrix: {why}")
    shells = faultlib.debian_shells()
    missing = [s for s in WANTED_SHELLS if s not in shells]
    if os.environ.get("CI") and missing:
        pytest.fail(f"login shells missing: {missing} (.ci/run installs zsh tcsh fish)")
    with faultlib.PrivateSshd(shells) as server:
        yield server


@pytest.mark.parametrize("shell", WANTED_SHELLS)
async def test_every_primitive_under_each_login_shell(sshd, shell):
    if shell not in sshd.users:
        pytest.skip(f"{shell} is not installed here")
    async with SSHTransport(sshd.spec(shell)) as tr:
        problems = await login_shell_problems(tr, sshd.users[shell])
    assert problems == [], f"{shell}: {problems}"
