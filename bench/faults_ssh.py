"""Fault rows of the SSH layer (audit rows 4 and 19), on our own sshd (faultlib.PrivateSshd): the
shared cluster's sshd and its test user are never reconfigured.

* row 4 — sshd ``MaxSessions=2`` and three follows on one connection: the third is refused its
  channel; it must back off (≤ 1 channel open per second after 10 s), cost little CPU, and say why.
* row 19 — the login shells bash, dash, zsh, tcsh, fish: hostile argv, identity, files, timeout, a
  byte-exact follow with its truncation marker, under each (bench/login_shell_check.py, which
  tests/integration/test_login_shells.py runs too).
"""

from __future__ import annotations

import asyncio
import time

import faultlib
from faultlib import PrivateSshd, Row, row, skipped
from login_shell_check import WANTED_SHELLS, login_shell_problems


async def max_sessions(runs: int, duration_s: float = 60.0) -> dict:
    fault = f"sshd MaxSessions=2, 3 follows, {duration_s:g} s"
    why = PrivateSshd.available()
    if why:
        return skipped(fault, why)
    from r1console.adapters.ssh_transport import SSHTransport
    from r1console.adapters.transport import TransportLost

    details, ok_all, worst_rate = [], True, 0.0
    for run_no in range(runs):
        with PrivateSshd({"bash": "/bin/bash"}, max_sessions=2) as sshd:
            user = sshd.users["bash"]
            log = user.home / "ms.out"
            log.write_bytes(b"hello\n")
            log.chmod(0o644)
            async with SSHTransport(sshd.spec("bash")) as tr:
                followers = [tr.follow(str(log), max_reconnect_s=duration_s + 30) for _ in range(3)]
                got = [bytearray() for _ in followers]
                errors: list[str] = []

                async def read(i: int) -> None:
                    try:
                        async for chunk in followers[i]:
                            got[i].extend(chunk)
                    except TransportLost as err:
                        errors.append(str(err))

                tasks = []
                for i in range(3):
                    tasks.append(asyncio.create_task(read(i)))
                    await asyncio.sleep(0.3)
                cpu0, wall0 = time.process_time(), time.monotonic()
                await asyncio.sleep(10)
                opens_10 = sum(f.restarts for f in followers)
                cpu10 = time.process_time()
                await asyncio.sleep(duration_s - 10)
                opens_end = sum(f.restarts for f in followers)
                cpu_end, wall_end = time.process_time(), time.monotonic()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for f in followers:
                    await f.aclose()
            rate = (opens_end - opens_10) / (duration_s - 10)
            cpu = (cpu_end - cpu10) / (wall_end - wall0 - 10) * 100
            served = sum(1 for g in got if bytes(g) == b"hello\n")
            refused = [f for f in followers if not f.resets and f.restarts > 1]
            message = next((f.last_error for f in refused if f.last_error), "")
            worst_rate = max(worst_rate, rate)
            ok = rate <= 1.0 and cpu < 5 and served == 2 and "refused a new SSH channel" in message
            ok_all &= ok
            details.append(f"run {run_no + 1}: {served}/3 follows served, channel opens after 10 s "
                           f"{rate:.2f}/s (audit before: ~800/s), client CPU {cpu:.1f} %, {len(errors)} gave up"
                           + (f"; first error: {errors[0][:160]}" if errors else "") + (f"; the refused follow says: {message[:160]}" if message else "")
                           + f"; cpu first 10 s {(cpu10 - cpu0) / 10 * 100:.1f} %")
    return row(fault, runs, lost=None, duplicated=None, recovery_s=None, passed=ok_all,
               detail="; ".join(details) + f" (worst open rate {worst_rate:.2f}/s)")


async def login_shells(runs: int) -> dict:
    shells = faultlib.debian_shells()
    fault = f"login shells {', '.join(shells)}"
    why = PrivateSshd.available()
    if why:
        return skipped(fault, why)
    from r1console.adapters.ssh_transport import SSHTransport

    missing = [s for s in WANTED_SHELLS if s not in shells]
    failures: dict[str, list[str]] = {}
    with PrivateSshd(shells) as sshd:
        for _ in range(runs):
            for key, user in sshd.users.items():
                async with SSHTransport(sshd.spec(key)) as tr:
                    problems = await login_shell_problems(tr, user)
                if problems:
                    failures.setdefault(key, []).extend(problems)
    detail = ("every primitive passed under " + ", ".join(s for s in shells if s not in failures)
              + ("; FAILED: " + "; ".join(f"{k}: {v}" for k, v in failures.items()) if failures else "")
              + (f"; not installed: {missing}" if missing else ""))
    return row(fault, runs * len(shells), lost=None, duplicated=None, passed=not failures and not missing,
               detail=detail)


ROWS = [
    Row("max-sessions", "ssh", max_sessions, default_runs=1, cheap=False),
    Row("login-shells", "ssh", login_shells, default_runs=1, cheap=True),
]
