"""The local transport with real subprocesses: run, timeouts, files, byte-exact follow."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest

from r1console.adapters.local_transport import LocalTransport
from r1console.adapters.transport import TransportTimeout
from r1console.core.errors import RemoteError


@pytest.fixture
async def tr():
    transport = LocalTransport(label="here", env={"R1C_TEST_VAR": "it's $HOME; `x`"})
    async with transport:
        yield transport


async def test_run_returns_output_exit_code_and_stderr(tr):
    ok = await tr.run(["sh", "-c", 'printf "%s" "$R1C_TEST_VAR"; echo oops >&2; exit 3'])
    assert ok.returncode == 3 and ok.stdout == "it's $HOME; `x`" and ok.stderr == "oops\n"
    with pytest.raises(RemoteError, match=r"exit 3") as info:
        ok.check("the thing")
    assert "oops" in str(info.value) and info.value.stderr == "oops\n"


async def test_argv_is_never_a_shell(tr, tmp_path):
    evil = f"x; touch {tmp_path}/pwned; $(touch {tmp_path}/pwned2)"
    result = await tr.run(["printf", "%s", evil])
    assert result.stdout == evil
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


async def test_missing_command_is_127_not_a_traceback(tr):
    result = await tr.run(["r1c-no-such-command-xyz"])
    assert result.returncode == 127 and "command not found" in result.stderr


async def test_timeout_kills_the_process_group(tr, tmp_path):
    marker = tmp_path / "alive"
    script = f'sleep 30 & echo $! > {marker}; wait'
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="did not finish within 0.5 s"):
        await tr.run(["sh", "-c", script], timeout=0.5)
    assert time.monotonic() - started < 5
    child = int(marker.read_text())
    for _ in range(50):  # the background sleep (same process group) is gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the child of the timed-out command survived")


async def test_stdin_and_counters(tr):
    before = tr.stats.commands
    result = await tr.run(["cat"], stdin=b"abc\x00def")
    assert result.raw_stdout == b"abc\x00def" and tr.stats.commands == before + 1


async def test_files_are_private_and_atomic(tr, tmp_path):
    folder = tmp_path / "w d" / "keys"
    await tr.mkdir(str(folder), mode=0o700)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    path = folder / "k.key"
    await tr.write_file(str(path), b"secret\n", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await tr.read_file(str(path)) == b"secret\n"
    await tr.write_file(str(path), b"new\n")
    assert path.read_bytes() == b"new\n" and [p.name for p in folder.iterdir()] == ["k.key"]


async def test_identity_and_expand_user(tr):
    home, user = await tr.identity()
    assert home == os.path.expanduser("~") and user
    assert await tr.expand_user("~/r1console") == home.rstrip("/") + "/r1console"
    assert await tr.expand_user("/abs") == "/abs"


async def _collect(follower, want: int, timeout: float = 10.0) -> bytes:
    got = bytearray()

    async def loop():
        async for chunk in follower:
            got.extend(chunk)
            if len(got) >= want:
                return

    await asyncio.wait_for(loop(), timeout)
    return bytes(got)


async def test_follow_from_an_offset_is_byte_exact(tr, tmp_path):
    log = tmp_path / "job.node1.7.out"
    log.write_bytes(b"0123456789")
    follower = tr.follow(str(log), offset=4)

    async def writer():
        for i in range(20):
            with open(log, "ab") as fh:
                fh.write(f"line {i}\r\n".encode() + b"\xff\x00")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(writer())
    expected_total = 10 + sum(len(f"line {i}\r\n".encode()) + 2 for i in range(20))
    data = await _collect(follower, expected_total - 4)
    await task
    await follower.aclose()
    assert data == log.read_bytes()[4:]
    assert follower.offset == expected_total


async def test_follow_waits_for_a_file_that_appears(tr, tmp_path):
    log = tmp_path / "later.err"
    follower = tr.follow(str(log))

    async def create():
        await asyncio.sleep(0.3)
        log.write_bytes(b"hello\n")

    task = asyncio.create_task(create())
    assert await _collect(follower, 6) == b"hello\n"
    await task
    await follower.aclose()
    assert any("No such file" in line or "cannot open" in line for line in follower.stderr_tail)


async def test_forward_is_direct_on_the_login_node(tr):
    fwd = await tr.forward_local_port("node1", 8000)
    assert fwd.url == "http://node1:8000"
    await fwd.close()
