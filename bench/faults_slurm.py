"""Fault rows that need SLURM jobs on the test cluster (audit rows 5 and 16), run through the real CLI.

* row 5 — slurmctld SIGSTOPped during ``logs -f`` and ``wait --for end``: neither exits, no SLURM
  client or ``timeout`` process of ours outlives 35 s, and both finish normally once the job ends.
  The pause is 90 s (the audit's figure); ``R1C_FAULT_CTLD_PAUSE_S`` shortens it — slurmctld is
  shared, so a short pause is kinder to other sessions using the cluster.
* row 16 — a log of random bytes read with ``logs --json`` (and ``logs -f --json``): the text and
  base64 chunks rebuild the file exactly.

Every job submitted here is cancelled at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import faultlib
from faultlib import Row, diff_bytes, row, skipped


def _spec(env: dict[str, str], workdir: Path):
    from r1console.core.userconfig import ClusterSpec

    return ClusterSpec(name="faults", ssh_host=env["R1C_TEST_SSH_HOST"], ssh_config=env["R1C_TEST_SSH_CONFIG"],
                       workdir=str(workdir), partition=env["R1C_TEST_PARTITION"])


def _cli_env(env: dict[str, str], workdir: Path, tmp: Path) -> dict[str, str]:
    config = tmp / "config.yaml"
    config.write_text(f"default_cluster: faults\nclusters:\n  faults:\n    ssh_host: {env['R1C_TEST_SSH_HOST']}\n"
                      f"    ssh_config: {env['R1C_TEST_SSH_CONFIG']}\n    workdir: {workdir}\n"
                      f"    partition: {env['R1C_TEST_PARTITION']}\n")
    return {**os.environ, "R1CONSOLE_CONFIG": str(config), "R1CONSOLE_STATE_DIR": str(tmp / "state"),
            "PYTHONPATH": str(faultlib.REPO), "SLURM_CONF": env["SLURM_CONF"]}


def _workdir(env: dict[str, str], name: str) -> Path:
    d = Path(env["R1C_TEST_WORKDIR"]) / f"faults-{name}-{uuid.uuid4().hex[:6]}"
    d.mkdir(parents=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(env["R1C_TEST_USER"])
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


async def _submit(tr, env: dict[str, str], workdir: Path, script: str, name: str) -> str:
    result = await tr.run(["sbatch", "--parsable", "-p", env["R1C_TEST_PARTITION"], "-J", name, "-t", "00:10:00",
                           "-o", f"{workdir}/job.%j.out", "-e", f"{workdir}/job.%j.err", "--chdir", str(workdir),
                           "--wrap", script], timeout=60, retry_on_drop=False)
    result.check("sbatch")
    return result.stdout.strip().split(";")[0]


async def _state(tr, job: str) -> str:
    r = await tr.run(["squeue", "-h", "-j", job, "-o", "%T"], timeout=30)
    return r.stdout.strip() if r.ok else ""


def _stray(env: dict[str, str], older_than_s: float) -> list[str]:
    """SLURM clients / timeout wrappers of the test user older than OLDER_THAN_S seconds."""
    out = subprocess.run(["ps", "-u", env["R1C_TEST_USER"], "-o", "etimes=,pid=,args="], capture_output=True,
                         text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and int(parts[0]) > older_than_s:
            cmd = parts[2].split()[0].rsplit("/", 1)[-1]
            if cmd in ("squeue", "sacct", "scontrol", "timeout"):
                found.append(line.strip())
    return found


# ---------------------------------------------------------------------------- row 5
async def ctld_pause(runs: int) -> dict:
    pause_s = float(os.environ.get("R1C_FAULT_CTLD_PAUSE_S", "90"))
    fault = f"slurmctld SIGSTOP {pause_s:g} s during logs -f + wait"
    env = faultlib.test_cluster()
    if env is None:
        return skipped(fault, "the test cluster is not running")
    if os.geteuid() != 0:
        return skipped(fault, "pausing slurmctld needs root")
    from r1console.adapters.ssh_transport import SSHTransport

    sys.path.insert(0, str(faultlib.REPO / "tests"))
    from plugins.slurm_cluster import _make_cluster  # the fixture's pause_controller / resume_controller

    cluster = _make_cluster(env)
    details, ok_all, lost_all, dup_all, worst = [], True, 0, 0, 0.0
    for run_no in range(runs):
        d = _workdir(env, "ctld")
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            cli_env = _cli_env(env, d, tmp)
            async with SSHTransport(_spec(env, d)) as tr:
                job = await _submit(tr, env, d, "i=0; while [ $i -lt 3000 ]; do echo \"line $i $(date +%s.%N)\"; "
                                    "i=$((i+1)); sleep 0.1; done", "r1c-fault-ctld")
                procs = {}
                try:
                    deadline = time.monotonic() + 60
                    while await _state(tr, job) != "RUNNING" and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                    out_path = tmp / "logs.out"
                    with open(out_path, "wb") as out_fh, open(tmp / "logs.err", "wb") as err_fh, \
                            open(tmp / "wait.err", "wb") as wait_err:
                        procs["logs"] = await asyncio.create_subprocess_exec(
                            sys.executable, "-m", "r1console", "logs", job, "-f", "--interval", "1",
                            stdout=out_fh, stderr=err_fh, env=cli_env, stdin=subprocess.DEVNULL)
                        procs["wait"] = await asyncio.create_subprocess_exec(
                            sys.executable, "-m", "r1console", "wait", job, "--for", "end", "--interval", "1",
                            stdout=subprocess.DEVNULL, stderr=wait_err, env=cli_env, stdin=subprocess.DEVNULL)
                        await asyncio.sleep(4)
                        cluster.pause_controller()
                        try:
                            await asyncio.sleep(pause_s)
                        finally:
                            cluster.resume_controller()
                        resumed = time.monotonic()
                        exited_during = [k for k, p in procs.items() if p.returncode is not None]
                        # the job must have lived through the pause (someone else's scancel would void the run)
                        still_running = await _state(tr, job) == "RUNNING"
                        await asyncio.sleep(3)
                        r = await tr.run(["scancel", job], timeout=60)
                        codes = {}
                        for k, p in procs.items():
                            try:
                                codes[k] = await asyncio.wait_for(p.wait(), 60)
                            except asyncio.TimeoutError:
                                p.kill()
                                codes[k] = "hung"
                        ended_s = time.monotonic() - resumed
                        await asyncio.sleep(max(0.0, 40 - (time.monotonic() - resumed)))
                        stray = _stray(env, 35)
                    truth = (d / f"job.{job}.out").read_bytes()
                    lost, dup = diff_bytes(out_path.read_bytes(), truth)
                    lost_all += lost
                    dup_all += dup
                    worst = max(worst, ended_s)
                    ok = not exited_during and codes == {"logs": 0, "wait": 0} and not stray and lost == dup == 0 \
                        and r.ok and still_running
                    ok_all &= ok
                    notes = (tmp / "logs.err").read_text(errors="replace").strip().splitlines()
                    retry_notes = [n for n in notes if "retrying" in n]
                    details.append(f"run {run_no + 1}: job running after the pause: {still_running}; "
                                   f"exited during the pause: {exited_during or 'none'}; exit codes "
                                   f"after the job ended {codes}; logs -f {len(truth)} B, lost {lost} dup {dup}; "
                                   f"stray SLURM clients >35 s: {len(stray)}; logs -f said: "
                                   f"{retry_notes[0][:150] if retry_notes else 'nothing (no squeue failed)'}")
                finally:
                    for p in procs.values():
                        if p.returncode is None:
                            p.kill()
                            await p.wait()
                    await tr.run(["scancel", job], timeout=60)
                    shutil.rmtree(d, ignore_errors=True)
    return row(fault, runs, lost=lost_all, duplicated=dup_all, recovery_s=worst, passed=ok_all,
               detail="; ".join(details) + " (recovery_s: slurmctld back -> both commands done after scancel)")


# ---------------------------------------------------------------------------- row 16
async def random_json(runs: int, size_mb: int | None = None) -> dict:
    size_mb = size_mb or int(os.environ.get("R1C_FAULT_RANDOM_MB", "100"))
    fault = f"{size_mb} MB random bytes via logs --json (+ -f)"
    env = faultlib.test_cluster()
    if env is None:
        return skipped(fault, "the test cluster is not running")
    from r1console.adapters.ssh_transport import SSHTransport

    details, ok_all, lost_all, dup_all = [], True, 0, 0
    for run_no in range(runs):
        d = _workdir(env, "rand")
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            cli_env = _cli_env(env, d, tmp)
            async with SSHTransport(_spec(env, d)) as tr:
                job = await _submit(tr, env, d, f"head -c {size_mb * 1000 * 1000} /dev/urandom", "r1c-fault-rand")
                try:
                    deadline = time.monotonic() + 120
                    while await _state(tr, job) not in ("", "COMPLETED") and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                    truth = (d / f"job.{job}.out").read_bytes()
                    for mode in (["--json"], ["--json", "-f", "--interval", "1"]):
                        started = time.monotonic()
                        proc = await asyncio.create_subprocess_exec(
                            sys.executable, "-m", "r1console", "logs", job, *mode, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cli_env, stdin=subprocess.DEVNULL)
                        out, err = await asyncio.wait_for(proc.communicate(), 300)
                        rebuilt = bytearray()
                        parse_errors = 0
                        kinds = {"text": 0, "data_b64": 0}
                        for line in out.splitlines():
                            try:
                                rec = json.loads(line)
                            except ValueError:
                                parse_errors += 1
                                continue
                            if rec.get("offset") != len(rebuilt) and "event" not in rec:
                                parse_errors += 1
                            if "text" in rec:
                                rebuilt += rec["text"].encode("utf-8")
                                kinds["text"] += 1
                            elif "data_b64" in rec:
                                rebuilt += base64.b64decode(rec["data_b64"])
                                kinds["data_b64"] += 1
                        lost, dup = diff_bytes(bytes(rebuilt), truth)
                        lost_all += lost
                        dup_all += dup
                        ok = proc.returncode == 0 and lost == dup == 0 and parse_errors == 0 and len(truth) > 0
                        ok_all &= ok
                        details.append(f"run {run_no + 1} logs {' '.join(mode)}: rc {proc.returncode}, "
                                       f"{len(truth) / 1e6:.0f} MB in {kinds['text']} text + {kinds['data_b64']} "
                                       f"base64 records, {parse_errors} bad records, "
                                       f"{time.monotonic() - started:.1f} s"
                                       + (f", stderr: {err.decode(errors='replace')[-200:]}" if proc.returncode else ""))
                finally:
                    await tr.run(["scancel", job], timeout=60)
                    shutil.rmtree(d, ignore_errors=True)
    return row(fault, runs, lost=lost_all, duplicated=dup_all, passed=ok_all, detail="; ".join(details))


ROWS = [
    Row("ctld-pause", "slurm", ctld_pause, default_runs=1, cheap=False),
    Row("random-json", "slurm", random_json, default_runs=1, cheap=False),
]
