"""M11: remote commands run under /bin/sh whatever the login shell (bash, dash, zsh, tcsh, fish).

A private sshd on 127.0.0.1 (bench/faultlib.PrivateSshd) serves one throw-away user per shell, so the
shared cluster's sshd and its r1ctest user are never changed. Every transport primitive the CLI uses
goes through each login shell: run() with hostile argv, identity(), write_file/read_file, a stream,
and a byte-exact follow (its --pid=$PPID and the in-band truncation marker).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import faultlib  # noqa: E402

from r1console.adapters.ssh_transport import SSHTransport  # noqa: E402
from r1console.adapters.transport import TransportTimeout  # noqa: E402

WANTED = ("bash", "dash", "zsh", "tcsh", "fish")
HOSTILE = ["a b", "it's", '"dq"', "$HOME", "`id`", "$(id)", "back\\slash", "two\\\\", "bang!x", "!!",
           "new\nline", "tab\tx", "semi;colon", "%s", "*", "~", "{a,b}", "-n", ""]


@pytest.fixture(scope="module")
def sshd():
    why = faultlib.PrivateSshd.available()
    if why:
        pytest.skip(f"login-shell matrix: {why}")
    shells = faultlib.debian_shells()
    missing = [s for s in WANTED if s not in shells]
    if os.environ.get("CI") and missing:
        pytest.fail(f"login shells missing: {missing} (.ci/run installs zsh tcsh fish)")
    with faultlib.PrivateSshd(shells) as server:
        yield server


@pytest.mark.parametrize("shell", WANTED)
async def test_every_primitive_under_each_login_shell(sshd, shell):
    if shell not in sshd.users:
        pytest.skip(f"{shell} is not installed here")
    user = sshd.users[shell]
    async with SSHTransport(sshd.spec(shell)) as tr:
        probe = await tr.run(["sh", "-c", 'ps -o comm= -p "$PPID"; echo "$0"'])
        assert probe.ok, probe.stderr
        result = await tr.run(["printf", "%s\\0", *HOSTILE])
        assert result.ok, f"{shell}: {result.stderr}"
        assert result.raw_stdout.split(b"\0")[:-1] == [h.encode() for h in HOSTILE], shell
        home, name = await tr.identity()
        assert (home, name) == (str(user.home), user.name)
        path = f"{home}/w d '$x' !.txt"
        payload = b"line 1\nit's $HOME \\ ! `id`\n\x00\xff"
        await tr.write_file(path, payload)
        assert await tr.read_file(path) == payload
        with pytest.raises(TransportTimeout):   # the remote `timeout` wrapper works under this shell
            await tr.run(["sh", "-c", "sleep 5"], timeout=1)
        # a follow: SESSION_PID must be the sshd session (tail --pid), the in-band marker must work
        log = f"{home}/job.out"
        await tr.write_file(log, b"gen1\n")
        resets = []
        follower = tr.follow(log, on_reset=resets.append)
        got = bytearray()

        async def reader():
            async for chunk in follower:
                got.extend(chunk)

        task = asyncio.create_task(reader())
        try:
            await _until(lambda: bytes(got) == b"gen1\n", task)
            await tr.run(["sh", "-c", ': > "$1"; sleep 0.8; printf "gen2\\n" >> "$1"', "sh", log])
            await _until(lambda: resets and bytes(got) == b"gen1\ngen2\n", task)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await follower.aclose()
        assert [r.reason for r in resets] == ["truncated"] and follower.offset == 5
        # tail exits with the session: no follow outlives its reader
        left = await tr.run(["sh", "-c", "pgrep -u \"$(id -u)\" -x tail || true"])
        assert left.stdout.strip() == "" or len(left.stdout.split()) <= 1


async def _until(pred, task, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if task.done():
            task.result()
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
