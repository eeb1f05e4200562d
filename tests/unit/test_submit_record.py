"""Submit without orphans (audit M2, M7, L1, L6, L7, L10): record before sbatch, reconcile a lost answer.

The submit path runs against the simulated cluster (real SlurmClient, real files): its sbatch is
made to lose its answer after (or without) creating the job. The real-cluster version (slurmctld
paused) is tests/integration/test_submit_reconcile.py.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from r1console.adapters import deployments
from r1console.adapters.local_transport import LocalTransport
from r1console.adapters.slurm_client import JobNotFound, SlurmClient, SubmitUnknown
from r1console.adapters.transport import TransportTimeout
from r1console.core import submit_record as sr
from r1console.core.errors import ConfigError
from r1console.core.profiles import load_profile
from r1console.demo.cluster import open_demo_session

TIMED_OUT = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"


# ---- pure pieces ------------------------------------------------------------------------------

def test_lookup_finds_the_job_by_tag_or_by_script_path():
    sep = sr.LOOKUP_SEP
    listing = "\n".join([f"11{sep}(null){sep}/w/other.sbatch", f"12{sep}r1c:dep-a{sep}/w/dep-a.sbatch",
                         f"13{sep}(null){sep}/w/dep-b.sbatch", f"-x{sep}r1c:dep-a{sep}/w/dep-a.sbatch", "junk"])
    assert sr.find_job(listing, "dep-a", "/w/dep-a.sbatch") == [sr.Found("12", "comment")]
    assert sr.find_job(listing, "dep-b", "/w/dep-b.sbatch") == [sr.Found("13", "script")]
    assert sr.find_job(listing, "dep-c", "/w/dep-c.sbatch") == []


def test_which_sbatch_failures_leave_the_outcome_open():
    assert sr.outcome_unknown(1, TIMED_OUT)
    assert sr.outcome_unknown(1, "sbatch: error: Unable to contact slurm controller (connect failure)")
    assert not sr.outcome_unknown(1, "sbatch: error: invalid partition specified: gpu")
    assert not sr.outcome_unknown(0, TIMED_OUT)


def test_never_created_only_after_the_munge_ttl():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    def stamp(s):
        return (now - timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
    assert not sr.never_created(stamp(30), now=now)
    assert sr.never_created(stamp(sr.STALE_AFTER_S + 1), now=now)
    assert not sr.never_created("garbage", now=now)


def test_job_ids_are_digits_only():
    for good in ("1", "123", "123_4"):
        assert sr.is_job_id(good)
    for bad in ("", "-j", "1,2", "12\n", "1 2", "²", "12_", "--me"):
        assert not sr.is_job_id(bad), bad


# ---- validators anchored with \Z; reserved sbatch options ------------------------------------

@pytest.mark.parametrize("override", ['slurm.job_name="evil\n"', 'slurm.partition="gpu\n"', 'slurm.mem="10G\n"',
                                      'slurm.time="01:00:00\n"', 'env.vars={"FOO\n": "x"}', 'name="evil\n"'])
def test_a_trailing_newline_is_refused(override):
    with pytest.raises(ConfigError):
        load_profile("tiny-cpu", overrides=[override])


@pytest.mark.parametrize("extra", ["--output=/tmp/x", "-o/tmp/x", "--error=x", "-e x", "--chdir=/", "-D/tmp",
                                   "--comment=other", "--parsable"])
def test_slurm_extra_cannot_take_over_our_options(extra):
    with pytest.raises(ConfigError, match="overrides an option r1console sets itself"):
        load_profile("tiny-cpu", overrides=[f'slurm.extra=["{extra}"]'])
    assert load_profile("tiny-cpu", overrides=['slurm.extra=["--qos=high", "--exclusive"]'])


# ---- files: chmod only what we create; no temp file left ---------------------------------------

async def test_mkdir_leaves_existing_directories_alone(tmp_path):
    shared = tmp_path / "lab"
    shared.mkdir(mode=0o775)
    os.chmod(shared, 0o775)
    tr = LocalTransport()
    await tr.mkdir(str(shared), mode=0o700)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o775
    await tr.mkdir(str(shared / "new" / "keys"), mode=0o700)
    assert stat.S_IMODE((shared / "new" / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "new").stat().st_mode) == 0o700  # parents we create are private too
    # the shell version (what SSH runs): same contract
    await LocalTransport.__mro__[1].mkdir(tr, str(shared), mode=0o700)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o775
    await LocalTransport.__mro__[1].mkdir(tr, str(shared / "sh" / "k"), mode=0o700)
    assert stat.S_IMODE((shared / "sh" / "k").stat().st_mode) == 0o700


async def test_shell_write_file_leaves_no_temp_file_when_it_fails(tmp_path):
    tr = LocalTransport()
    base = LocalTransport.__mro__[1]  # Transport.write_file: the `sh -c` version SSH uses
    await base.write_file(tr, str(tmp_path / "k.key"), b"secret\n", mode=0o600)
    assert (tmp_path / "k.key").read_bytes() == b"secret\n"
    # chmod fails (an impossible mode) after the temp file was written: the trap removes it
    with pytest.raises(Exception, match="writing"):
        await base.write_file(tr, str(tmp_path / "x.key"), b"partial", mode=0o77777)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]


async def test_queue_and_history_refuse_ids_that_are_options(tmp_path):
    client = SlurmClient(LocalTransport(), None)  # never reaches a command
    for bad in (["-u", "root"], ["1,2"], ["--me"]):
        with pytest.raises(JobNotFound, match="is not a SLURM job id"):
            await client.queue(bad)
        with pytest.raises(JobNotFound, match="is not a SLURM job id"):
            await client.history(bad)


# ---- submit against the simulated cluster ---------------------------------------------------------

@pytest.fixture
async def demo(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    session = await open_demo_session(tmp_path / "demo", time_scale=0.01, pending_priority_s=600,
                                      pending_resources_s=600, isolate_records=False, first_job_id=7000)
    try:
        yield session
    finally:
        await session.close()


class _Calls(list):
    restore = None


def lose_the_answer(session, monkeypatch, *, create: bool, how: str = "stderr"):
    """sbatch reaches slurmctld (``create``) but its answer is lost (timeout stderr or a transport timeout)."""
    cluster = session.cluster
    original = cluster._sbatch
    calls = _Calls()

    async def sbatch(args):
        calls.append(args)
        if create:
            await original(args)
        if how == "timeout":
            raise TransportTimeout("sbatch timed out after 5 s", argv=["sbatch", *args])
        return 1, "", TIMED_OUT

    monkeypatch.setattr(cluster, "_sbatch", sbatch)
    calls.restore = lambda: monkeypatch.setattr(cluster, "_sbatch", original)
    return calls


def records():
    return deployments.load_all()[0]


async def test_a_normal_submit_tags_the_job_and_completes_its_record(demo):
    dep = await demo.submit(load_profile("h200x8"))
    assert dep.state == "" and dep.job_id and dep.auth == "r1c-identity-v1"
    assert "%j" not in dep.log_out and dep.job_id in dep.log_out
    job = demo.cluster.job(dep.job_id)
    assert job.comment == f"r1c:{dep.deployment_id}"
    rc, out, _ = await demo.cluster.command(["squeue", "-h", "-j", dep.job_id, "-o", "%k"])
    assert (rc, out) == (0, f"r1c:{dep.deployment_id}\n")
    assert [r.job_id for r in records()] == [dep.job_id]


@pytest.mark.parametrize("how", ["stderr", "timeout"])
async def test_a_lost_answer_is_reconciled_at_once_when_the_job_exists(demo, monkeypatch, how):
    calls = lose_the_answer(demo, monkeypatch, create=True, how=how)
    dep = await demo.submit(load_profile("h200x8"))
    assert len(calls) == 1  # sbatch ran once, never again
    assert dep.state == "" and demo.cluster.job(dep.job_id).comment == f"r1c:{dep.deployment_id}"
    assert [(r.job_id, r.state) for r in records()] == [(dep.job_id, "")]
    assert len(demo.cluster.jobs) == 1  # exactly one job, and it has a record: no orphan


async def test_a_lost_answer_without_a_job_stays_submitting_then_is_cleared(demo, monkeypatch):
    lose_the_answer(demo, monkeypatch, create=False)
    with pytest.raises(SubmitUnknown, match="recorded as 'submitting'") as err:
        await demo.submit(load_profile("h200x8"))
    assert err.value.exit_code == 5
    (rec,) = records()
    assert rec.state == "submitting" and rec.job_id == ""
    key = Path(rec.key_path)
    assert key.exists() and Path(rec.script_path).exists()
    # the next status: still within the MUNGE TTL -> left as it is
    assert await demo.slurm.reconcile_all() == []
    assert [r.state for r in records()] == ["submitting"]
    # past it: never created -> record, script and key removed (a late job would stop at api_key_missing)
    notes = await demo.slurm.reconcile_all(stale_after_s=0)
    assert notes == [f"deployment {rec.deployment_id}: sbatch never created its job; record removed"]
    assert records() == [] and not key.exists() and not Path(rec.script_path).exists()


async def test_a_job_that_appears_late_is_found_by_the_next_status(demo, monkeypatch):
    lost = lose_the_answer(demo, monkeypatch, create=False)
    with pytest.raises(SubmitUnknown):
        await demo.submit(load_profile("h200x8"))
    (rec,) = records()
    lost.restore()  # slurmctld processes the buffered request after all
    rc, out, _ = await demo.cluster.command(["sbatch", "--parsable", f"--comment=r1c:{rec.deployment_id}",
                                             f"--chdir={rec.workdir}", rec.script_path])
    assert rc == 0
    assert await demo.slurm.reconcile_all(stale_after_s=0) == [
        f"deployment {rec.deployment_id}: found its job {out.strip()}"]
    assert [(r.job_id, r.state) for r in records()] == [(out.strip(), "")]


async def test_a_definite_rejection_leaves_no_record_and_no_files(demo):
    with pytest.raises(Exception, match="sbatch rejected"):
        await demo.submit(load_profile("h200x8", overrides=["slurm.partition=nope"]))
    assert records() == []
    workdir = Path(demo.cluster.home) / "r1console"
    assert not list(workdir.glob("*.sbatch")) and not list((workdir / "keys").glob("*.key"))
