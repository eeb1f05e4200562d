"""Fault rows of the log follow (audit rows 1, 2, 3, 15): the real SSH transport to the test
cluster's sshd, through a FaultProxy so only OUR connection is cut (other sessions on the shared
cluster keep theirs). The followed file lives in the test user's work directory; the truth is
the file itself, read from disk at the end.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import faultlib
from faultlib import FaultProxy, Row, diff_bytes, row, skipped

CUT_EVERY_S = 3.0
RATE = 1 << 20            # bytes per second the log grows by (row 1: 1 MB/s)


def _workdir(env: dict[str, str], name: str) -> Path:
    d = Path(env["R1C_TEST_WORKDIR"]) / f"faults-{name}-{uuid.uuid4().hex[:6]}"
    d.mkdir(parents=True)
    d.chmod(0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(env["R1C_TEST_USER"])
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def _block(rng: random.Random, n: int, counter: int) -> bytes:
    """Log-like bytes that never repeat: numbered lines with random text (and a partial line)."""
    out = bytearray()
    while len(out) < n:
        out += b"%08d %s\n" % (counter, rng.randbytes(rng.randint(10, 90)).hex().encode())
        counter += 1
    return bytes(out[:n])


async def _grow(path: Path, seconds: float, rate: int, stop: asyncio.Event | None = None, seed: int = 1) -> None:
    rng = random.Random(seed)
    piece = max(1024, rate // 50)
    deadline = time.monotonic() + seconds
    counter = 0
    with open(path, "ab", buffering=0) as fh:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            fh.write(_block(rng, piece, counter))
            counter += piece // 40
            await asyncio.sleep(piece / rate)


class _Reader:
    """Collects a follower's chunks per generation, with the arrival time of each stream's first byte."""

    def __init__(self, follower) -> None:
        self.follower = follower
        self.gens = [bytearray()]
        follower.on_reset = lambda _e: self.gens.append(bytearray())
        self.first_byte_of_stream: dict[int, float] = {}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for chunk in self.follower:
            self.gens[-1].extend(chunk)
            self.first_byte_of_stream.setdefault(self.follower.restarts, time.monotonic())

    @property
    def total(self) -> int:
        return sum(len(g) for g in self.gens)

    async def wait(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.follower.aclose()


def _transport(spec, **kw):
    from r1console.adapters.ssh_transport import SSHTransport

    return SSHTransport(spec, **kw)


# ---------------------------------------------------------------------------- row 1
async def ssh_cut(runs: int) -> dict:
    fault = f"SSH cut (RST) {runs}x while the log grows at 1 MB/s"
    env = faultlib.test_cluster()
    if env is None:
        return skipped(fault, "the test cluster is not running (tests/infra/slurm-cluster.sh start)")
    d = _workdir(env, "cut")
    path = d / "grow.out"
    path.write_bytes(b"")
    path.chmod(0o644)
    recoveries: list[float] = []
    try:
        async with FaultProxy("127.0.0.1", int(env["R1C_TEST_SSH_PORT"])) as proxy:
            async with _transport(faultlib.proxied_spec(env, proxy.port, d / "client", slurm=False)) as tr:
                reader = _Reader(tr.follow(str(path)))
                stop = asyncio.Event()   # the log grows until the last cut has been recovered from
                grow = asyncio.create_task(_grow(path, 3600, RATE, stop))
                try:
                    for _ in range(runs):
                        await asyncio.sleep(CUT_EVERY_S)
                        before = reader.follower.restarts
                        cut_at = time.monotonic()
                        proxy.cut()
                        ok = await reader.wait(lambda: any(k > before for k in reader.first_byte_of_stream), 30)
                        later = [t for k, t in reader.first_byte_of_stream.items() if k > before]
                        recoveries.append(min(later) - cut_at if ok else float("inf"))
                    await asyncio.sleep(1.0)
                    stop.set()
                    await grow
                    size = path.stat().st_size
                    await reader.wait(lambda: reader.total >= size, 30)
                finally:
                    grow.cancel()
                    await reader.close()
        truth = path.read_bytes()
        delivered = b"".join(reader.gens)
        lost, dup = diff_bytes(delivered, truth)
        worst = max(recoveries) if recoveries else None
        passed = lost == 0 and dup == 0 and len(recoveries) == runs and worst is not None and worst <= 5.0
        return row(fault, runs, lost=lost, duplicated=dup, recovery_s=worst, passed=passed,
                   detail=f"{len(truth) / 2**20:.1f} MiB followed, {reader.follower.reconnects} reconnects, "
                   f"recovery per cut (s): {', '.join(f'{r:.2f}' for r in recoveries)}; "
                   f"resets {len(reader.follower.resets)} (must be 0)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- row 2
async def ssh_blackhole(runs: int, hole_s: float = 90.0) -> dict:
    fault = f"SSH blackhole {hole_s:g} s during a follow"
    env = faultlib.test_cluster()
    if env is None:
        return skipped(fault, "the test cluster is not running")
    d = _workdir(env, "hole")
    path = d / "grow.out"
    path.write_bytes(b"")
    path.chmod(0o644)
    details, ok_all, worst_detect, worst_lag = [], True, 0.0, 0.0
    lost = dup = 0
    try:
        for run_no in range(runs):
            lags: list[float] = []
            stop_tick = asyncio.Event()

            async def ticker() -> None:
                while not stop_tick.is_set():
                    t = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - t - 0.01)

            async with FaultProxy("127.0.0.1", int(env["R1C_TEST_SSH_PORT"])) as proxy:
                async with _transport(faultlib.proxied_spec(env, proxy.port, d / "client", slurm=False)) as tr:
                    reader = _Reader(tr.follow(str(path)))
                    stop = asyncio.Event()
                    grow = asyncio.create_task(_grow(path, 3600, 20_000, stop, seed=run_no))
                    tick = asyncio.create_task(ticker())
                    try:
                        await asyncio.sleep(2)
                        before = reader.follower.reconnects
                        start = time.monotonic()
                        proxy.blackhole(True)
                        detected = await reader.wait(lambda: reader.follower.reconnects > before, hole_s)
                        detect_s = time.monotonic() - start
                        await asyncio.sleep(max(0.0, hole_s - (time.monotonic() - start)))
                        proxy.blackhole(False)
                        proxy.cut()   # connections opened during the hole lost bytes: let them fail fast
                        restarts = reader.follower.restarts
                        back = await reader.wait(lambda: any(k > restarts for k in reader.first_byte_of_stream), 60)
                        resume_s = time.monotonic() - start - hole_s
                        stop.set()
                        await grow
                        size = path.stat().st_size
                        await reader.wait(lambda: reader.total >= size, 30)
                    finally:
                        stop.set()
                        stop_tick.set()
                        grow.cancel()
                        await asyncio.gather(tick, return_exceptions=True)
                        await reader.close()
            gone, du = diff_bytes(b"".join(reader.gens), path.read_bytes())
            lost += gone
            dup += du
            lags.sort()
            p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
            worst_detect = max(worst_detect, detect_s if detected else float("inf"))
            worst_lag = max(worst_lag, p99)
            ok = detected and detect_s <= 60 and back and gone == 0 and du == 0 and p99 < 0.1
            ok_all &= ok
            details.append(f"run {run_no + 1}: loss detected after {detect_s:.1f} s, resumed {resume_s:.1f} s "
                           f"after the hole, loop lag p99 {p99 * 1000:.1f} ms")
            path.write_bytes(b"")
        return row(fault, runs, lost=lost, duplicated=dup, recovery_s=worst_detect, passed=ok_all,
                   detail="; ".join(details) + " (recovery_s = time to detect the dead link; keepalive every 15 s, 2 unanswered)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- row 3
async def generations(runs: int) -> dict:
    fault = "truncate / requeue / mv+recreate mid-follow + SSH cut"
    env = faultlib.test_cluster()
    if env is None:
        return skipped(fault, "the test cluster is not running")
    d = _workdir(env, "gen")
    path = d / "job.out"
    total_lost = total_dup = 0
    details, ok_all, worst = [], True, 0.0
    rng = random.Random(3)
    try:
        async with FaultProxy("127.0.0.1", int(env["R1C_TEST_SSH_PORT"])) as proxy:
            async with _transport(faultlib.proxied_spec(env, proxy.port, d / "client", slurm=False)) as tr:
                for run_no in range(runs):
                    gens = [_block(rng, n, run_no * 10_000 + i * 1000) for i, n in
                            enumerate((200_000, 150_000, 400_000, 50_000))]
                    path.write_bytes(gens[0])
                    path.chmod(0o644)
                    reader = _Reader(tr.follow(str(path)))
                    try:
                        assert await reader.wait(lambda: len(reader.gens[-1]) == len(gens[0]), 20), "gen 1"
                        # (a) in-session truncation, as a requeue onto the same node does
                        with open(path, "r+b") as fh:
                            fh.truncate(0)
                        assert await reader.wait(lambda: len(reader.gens) == 2, 10), "truncation not seen"
                        with open(path, "ab") as fh:
                            fh.write(gens[1])
                        assert await reader.wait(lambda: len(reader.gens[-1]) == len(gens[1]), 20), "gen 2"
                        # (b) truncated and regrown LONGER than the offset while our SSH is cut
                        proxy.refusing = True
                        cut_at = time.monotonic()
                        proxy.cut()
                        await asyncio.sleep(0.5)
                        with open(path, "r+b") as fh:
                            fh.truncate(0)
                            fh.write(gens[2])
                        proxy.refusing = False
                        assert await reader.wait(lambda: len(reader.gens) == 3 and
                                                 len(reader.gens[-1]) == len(gens[2]), 30), "gen 3"
                        worst = max(worst, time.monotonic() - cut_at - 0.5)
                        # (c) mv + recreate (log rotation)
                        os.rename(path, d / "job.out.1")
                        path.write_bytes(gens[3])
                        path.chmod(0o644)
                        assert await reader.wait(lambda: len(reader.gens) == 4 and
                                                 len(reader.gens[-1]) == len(gens[3]), 20), "gen 4"
                        await asyncio.sleep(0.6)
                    except AssertionError as err:
                        details.append(f"run {run_no + 1}: stuck at {err}")
                        ok_all = False
                    finally:
                        await reader.close()
                    got = [bytes(g) for g in reader.gens]
                    reasons = [e.reason for e in reader.follower.resets]
                    dup = sum(diff_bytes(g, t)[1] for g, t in zip(got, gens)) + sum(len(g) for g in got[4:])
                    lost = sum(diff_bytes(g, t)[0] for g, t in zip(got, gens)) + sum(len(t) for t in gens[len(got):])
                    total_lost += lost
                    total_dup += dup
                    ok = got == gens and reasons == ["truncated", "truncated", "replaced"]
                    ok_all &= ok
                    if not ok or run_no == 0:
                        details.append(f"run {run_no + 1}: generations {[len(g) for g in got]} "
                                       f"(want {[len(g) for g in gens]}), markers {reasons}")
                    (d / "job.out.1").unlink(missing_ok=True)
        return row(fault, runs, lost=total_lost, duplicated=total_dup, recovery_s=worst, passed=ok_all,
                   detail="; ".join(details) + " (recovery_s: cut -> new generation complete)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- row 15
_MEM_SCRIPT = r"""
import resource, sys
from r1console.core.logbuffer import LogBuffer
single_mb, lines = int(sys.argv[1]), int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
bufs = {"out": LogBuffer(20_000), "err": LogBuffer(20_000)}      # the job screen's two panes
chunk = "x" * 65536
for _ in range(10):                                               # 10 single-line logs
    for _ in range(single_mb * 16):
        bufs["err"].feed(chunk)
    bufs["err"].feed("\n")
line = "P" * 60_000 + "\n"
for _ in range(lines):                                            # 60 kB lines (prompts logged)
    bufs["out"].feed(line)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base // 1024, peak // 1024, bufs["out"].chars_stored, bufs["err"].chars_stored)
"""


async def pane_memory(runs: int) -> dict:
    single_mb, lines = 100, 20_000 * runs
    fault = f"10 x {single_mb} MB single-line log + {lines} x 60 kB lines"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _MEM_SCRIPT, str(single_mb), str(lines), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(faultlib.REPO)})
    out, err = await proc.communicate()
    if proc.returncode != 0:
        return row(fault, runs, lost=None, duplicated=None, passed=False, detail=err.decode()[-500:])
    base, peak, out_chars, err_chars = map(int, out.split())
    fed_mb = 10 * single_mb + lines * 60_000 / 1e6
    return row(fault, runs, lost=None, duplicated=None, passed=peak < 300,
               detail=f"{fed_mb:.0f} MB fed to the two log panes; peak RSS {peak} MB (start {base} MB; must be "
               f"< 300); kept {out_chars / 2**20:.1f} + {err_chars / 2**20:.2f} MiB of text "
               f"(byte-exactness of logs -f itself: rows ssh-cut / generations)")


ROWS = [
    Row("ssh-cut", "follow", ssh_cut, default_runs=10, cheap=True),
    Row("generations", "follow", generations, default_runs=3, cheap=True),
    Row("ssh-blackhole", "follow", ssh_blackhole, default_runs=1, cheap=False),
    Row("pane-memory", "follow", pane_memory, default_runs=1, cheap=False),
]
