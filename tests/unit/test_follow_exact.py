"""FileFollower exactness across truncation, replacement and drops (real ``tail`` via the local
transport; a drop is simulated by a transport whose streams can be cut or refused)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from r1console.adapters.local_transport import LocalTransport
from r1console.adapters.transport import TransportLost


class CutTransport(LocalTransport):
    """LocalTransport whose follow streams can be cut (TransportLost) or refused while ``down``."""

    def __init__(self) -> None:
        super().__init__(label="cut")
        self.down = False
        self.cut = asyncio.Event()
        self.opened = 0

    async def stream(self, argv, *, on_stderr=None):
        self.opened += 1
        if self.down:
            raise TransportLost("channel open refused (test)")
        self.cut.clear()
        gen = super().stream(argv, on_stderr=on_stderr)
        nxt = None
        try:
            while True:
                nxt = asyncio.ensure_future(gen.__anext__())
                cut = asyncio.ensure_future(self.cut.wait())
                done, _ = await asyncio.wait({nxt, cut}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    await asyncio.gather(nxt, return_exceptions=True)
                    raise TransportLost("cut (test)")
                cut.cancel()
                try:
                    data = nxt.result()
                except StopAsyncIteration:
                    return
                yield data
        finally:
            if nxt is not None and nxt.done() and not nxt.cancelled():
                nxt.exception()
            await gen.aclose()


@pytest.fixture
async def tr():
    transport = CutTransport()
    async with transport:
        yield transport


class Reader:
    def __init__(self, follower) -> None:
        self.follower = follower
        self.gens: list[bytearray] = [bytearray()]
        self.resets = []
        follower.on_reset = self._reset
        self.task = asyncio.create_task(self._run())

    def _reset(self, event) -> None:
        self.resets.append(event)
        self.gens.append(bytearray())

    async def _run(self) -> None:
        async for chunk in self.follower:
            self.gens[-1].extend(chunk)

    async def until(self, pred, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.task.done():
                self.task.result()
            assert time.monotonic() < deadline, f"timed out; got {[bytes(g) for g in self.gens]}"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.follower.aclose()


def _append(path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def test_truncation_mid_follow_is_marked_and_each_generation_delivered_once(tr, tmp_path):
    log = tmp_path / "job.out"
    log.write_bytes(b"gen1 line a\ngen1 line b\n")
    r = Reader(tr.follow(str(log)))
    await r.until(lambda: len(r.gens[0]) == 24)
    log.write_bytes(b"")                      # requeue: slurm truncates the .out
    await r.until(lambda: r.resets)
    _append(log, b"gen2 starts\n")
    await r.until(lambda: bytes(r.gens[-1]) == b"gen2 starts\n")
    await r.close()
    assert [bytes(g) for g in r.gens] == [b"gen1 line a\ngen1 line b\n", b"gen2 starts\n"]
    assert [(e.reason, e.old_offset) for e in r.resets] == [("truncated", 24)]
    assert r.follower.offset == 12


async def test_mv_and_recreate_is_a_new_generation(tr, tmp_path):
    log = tmp_path / "job.err"
    log.write_bytes(b"old\n")
    r = Reader(tr.follow(str(log)))
    await r.until(lambda: bytes(r.gens[0]) == b"old\n")
    os.rename(log, tmp_path / "job.err.1")
    log.write_bytes(b"new file, longer than the old one\n")
    await r.until(lambda: bytes(r.gens[-1]) == b"new file, longer than the old one\n")
    _append(log, b"more\n")
    await r.until(lambda: bytes(r.gens[-1]).endswith(b"more\n"))
    await r.close()
    assert [bytes(g) for g in r.gens] == [b"old\n", b"new file, longer than the old one\nmore\n"]
    assert [e.reason for e in r.resets] == ["replaced"]


@pytest.mark.parametrize("how", ["truncate-regrow", "replace", "same"])
async def test_change_while_disconnected_is_detected_on_reconnect(tr, tmp_path, how):
    """The hard case of the audit: the new file is LONGER than the stale offset (size alone can't tell)."""
    log = tmp_path / "job.out"
    gen1 = b"".join(b"2026-01-01 run 1 line %03d\n" % i for i in range(10))
    log.write_bytes(gen1)
    r = Reader(tr.follow(str(log)))
    await r.until(lambda: len(r.gens[0]) == len(gen1))
    tr.down = True
    tr.cut.set()
    await asyncio.sleep(0.3)
    gen2 = b"".join(b"2026-01-02 run 2 line %03d\n" % i for i in range(30))
    if how == "truncate-regrow":
        with open(log, "r+b") as fh:
            fh.truncate(0)
            fh.write(gen2)
    elif how == "replace":
        os.rename(log, tmp_path / "old.out")
        log.write_bytes(gen2)
    else:
        _append(log, gen2)
    tr.down = False
    if how == "same":
        await r.until(lambda: len(r.gens[0]) == len(gen1) + len(gen2))
        await r.close()
        assert bytes(r.gens[0]) == gen1 + gen2 and not r.resets
        return
    await r.until(lambda: len(r.gens) == 2 and len(r.gens[1]) == len(gen2))
    await r.close()
    assert [bytes(g) for g in r.gens] == [gen1, gen2]
    assert r.resets[0].reason == ("truncated" if how == "truncate-regrow" else "replaced")


async def test_log_text_that_looks_like_a_tail_message_is_delivered_intact(tr, tmp_path):
    log = tmp_path / "job.out"
    other = b"tail: /elsewhere/x.log: file truncated\ntail: 'y' has been replaced;  following new file\n"
    log.write_bytes(b"")
    r = Reader(tr.follow(str(log)))
    await asyncio.sleep(0.3)
    for piece in (b"a line ending in ta", b"il: no\n", other, b"ta", b"il", b": \n", b"last t"):
        _append(log, piece)
        await asyncio.sleep(0.05)
    want = b"a line ending in tail: no\n" + other + b"tail: \nlast "
    await r.until(lambda: bytes(r.gens[0]) == want)  # the final "t" could start a message: held
    await asyncio.sleep(0.3)
    assert bytes(r.gens[0]) == want
    _append(log, b"\n")
    await r.until(lambda: bytes(r.gens[0]) == want + b"t\n")
    await r.close()
    assert not r.resets


async def test_refused_channels_back_off_and_give_up(tr, tmp_path):
    """M5: the connection is up but every channel open fails — no tight loop, then a clear error."""
    log = tmp_path / "job.out"
    log.write_bytes(b"x")
    tr.down = True
    follower = tr.follow(str(log), max_reconnect_s=2.0)
    started = time.monotonic()
    with pytest.raises(TransportLost, match="no data for 2 s"):
        async for _ in follower:
            pass
    assert time.monotonic() - started < 8
    assert tr.opened <= 6, tr.opened   # 0.2+0.4+0.8+1.6 s backoff, not ~800 opens per second


async def test_rest_reads_to_the_end_with_the_same_checks(tr, tmp_path):
    log = tmp_path / "job.out"
    log.write_bytes(b"0123456789")
    follower = tr.follow(str(log), offset=4)
    got = b"".join([c async for c in follower.rest()])
    assert got == b"456789" and follower.offset == 10
    log.write_bytes(b"short")               # truncated since: the rest is the whole new file
    resets = []
    follower.on_reset = resets.append
    got = b"".join([c async for c in follower.rest()])
    assert got == b"short" and [e.reason for e in resets] == ["truncated"]


async def test_job_state_rides_out_a_slurmctld_pause(monkeypatch):
    """M10: squeue timing out (slurmctld stopped) is retried until it answers or the deadline passes."""
    from r1console.adapters import slurm_client as sc
    from r1console.adapters.transport import TransportTimeout
    from r1console.core.errors import RemoteError
    from r1console.core.userconfig import ClusterSpec

    calls = []
    answers = [TransportTimeout("squeue did not finish within 30 s"),
               RemoteError("squeue failed (exit 1)",
                           stderr="slurm_load_jobs error: Unable to contact slurm controller (connect failure)"),
               "ok"]

    async def job_state(self, job_id):
        calls.append(job_id)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(sc.SlurmClient, "job_state", job_state)
    sleeps = []

    async def fast_sleep(s):
        sleeps.append(s)

    monkeypatch.setattr(sc.asyncio, "sleep", fast_sleep)
    client = sc.SlurmClient(LocalTransport(), ClusterSpec(name="c"))
    said = []
    assert await client.job_state_patiently("7", on_wait=said.append) == "ok"
    assert len(calls) == 3 and sleeps == [2.0, 4.0] and len(said) == 1 and "retrying" in said[0]
    # a job SLURM does not know is not waited for; nor is anything after the deadline
    answers[:] = [sc.JobNotFound("job 8 is not known")]
    with pytest.raises(sc.JobNotFound):
        await client.job_state_patiently("8")
    answers[:] = [TransportTimeout("squeue did not finish")]
    with pytest.raises(TransportTimeout):
        await client.job_state_patiently("9", give_up_at=time.monotonic() - 1)


async def test_removed_then_recreated_is_one_new_generation(tr, tmp_path):
    log = tmp_path / "job.out"
    log.write_bytes(b"first\n")
    r = Reader(tr.follow(str(log)))
    await r.until(lambda: bytes(r.gens[0]) == b"first\n")
    log.unlink()
    await asyncio.sleep(1.2)                 # tail notices the file is gone, then waits for it
    log.write_bytes(b"second file\n")
    await r.until(lambda: len(r.gens) == 2 and bytes(r.gens[1]) == b"second file\n")
    await asyncio.sleep(0.6)
    await r.close()
    assert [bytes(g) for g in r.gens] == [b"first\n", b"second file\n"]
    assert [e.reason for e in r.resets] == ["replaced"]
