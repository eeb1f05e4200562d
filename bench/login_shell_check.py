"""Every transport primitive under one login shell, as a list of problems (empty: all good).

Remote commands must run under /bin/sh whatever the user's login shell (bash, dash, zsh, tcsh, fish).
Shared by the fault row ``login-shells`` (bench/faults_ssh.py) and tests/integration/test_login_shells.py,
both on a private sshd (faultlib.PrivateSshd) with one throw-away user per shell: run() with hostile
argv, identity(), write_file/read_file, the remote timeout, and a byte-exact follow (its --pid=$PPID,
the in-band truncation marker, no tail left behind).
"""

from __future__ import annotations

import asyncio

WANTED_SHELLS = ("bash", "dash", "zsh", "tcsh", "fish")
HOSTILE = ["a b", "it's", '"dq"', "$HOME", "`id`", "$(id)", "back\\slash", "two\\\\", "bang!x", "!!",
           "new\nline", "tab\tx", "semi;colon", "%s", "*", "~", "{a,b}", "-n", ""]


async def login_shell_problems(tr, user) -> list[str]:
    """Run every primitive over ``tr`` (connected as ``user``, a faultlib.ShellUser); what went wrong."""
    problems = []
    probe = await tr.run(["sh", "-c", 'ps -o comm= -p "$PPID"; echo "$0"'])
    if not probe.ok:
        problems.append(f"sh -c failed: {probe.stderr.strip()[:120]}")
    result = await tr.run(["printf", "%s\\0", *HOSTILE])
    if not result.ok or result.raw_stdout.split(b"\0")[:-1] != [h.encode() for h in HOSTILE]:
        problems.append(f"argv came out changed ({result.stderr.strip()[:120]})")
    try:
        home, name = await tr.identity()
        if (home, name) != (str(user.home), user.name):
            problems.append(f"identity {home!r} {name!r}")
    except Exception as err:  # noqa: BLE001 - reported as a problem
        problems.append(f"identity: {err}")
        return problems
    problems += await _file_and_timeout_problems(tr, home)
    problems += await _follow_problems(tr, f"{home}/job.out")
    # tail exits with the session: no follow outlives its reader
    left = await tr.run(["sh", "-c", "pgrep -u \"$(id -u)\" -x tail || true"])
    if len(left.stdout.split()) > 1:
        problems.append(f"tail processes left behind: {left.stdout.split()}")
    return problems


async def _file_and_timeout_problems(tr, home: str) -> list[str]:
    from r1console.adapters.transport import TransportTimeout

    problems = []
    path = f"{home}/w d '$x' !.txt"
    payload = b"line 1\nit's $HOME \\ ! `id`\n\x00\xff"
    try:
        await tr.write_file(path, payload)
        if await tr.read_file(path) != payload:
            problems.append("write_file/read_file changed the bytes")
    except Exception as err:  # noqa: BLE001 - reported as a problem
        problems.append(f"files: {str(err)[:120]}")
    try:  # the remote `timeout` wrapper works under this shell
        await tr.run(["sh", "-c", "sleep 5"], timeout=1)
        problems.append("timeout did not fire")
    except TransportTimeout:
        pass
    return problems


async def _follow_problems(tr, log: str, timeout: float = 10.0) -> list[str]:
    """A follow of ``log`` across a truncation: gen1, the ``truncated`` marker, then gen2 from byte 0."""
    await tr.write_file(log, b"gen1\n")
    resets: list = []
    follower = tr.follow(log, on_reset=resets.append)
    got = bytearray()

    async def reader():
        async for chunk in follower:
            got.extend(chunk)

    async def until(pred) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not pred() and not task.done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    task = asyncio.create_task(reader())
    try:
        await until(lambda: bytes(got) == b"gen1\n")
        await tr.run(["sh", "-c", ': > "$1"; sleep 0.8; printf "gen2\\n" >> "$1"', "sh", log])
        await until(lambda: resets and bytes(got) == b"gen1\ngen2\n")
    finally:
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        await follower.aclose()
    markers = [r.reason for r in resets]
    if bytes(got) != b"gen1\ngen2\n" or markers != ["truncated"] or follower.offset != 5:
        err = results[0] if results and isinstance(results[0], Exception) and \
            not isinstance(results[0], asyncio.CancelledError) else None
        return [f"follow delivered {bytes(got)!r}, markers {markers}, offset {follower.offset}"
                + (f" ({str(err)[:120]})" if err else "")]
    return []
