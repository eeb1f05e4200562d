"""The SLURM client: submit, queue, job details, history, cancel, GPUs and logs over a Transport.

Every command is an argv list (the transport quotes it for the remote shell), runs with a
timeout (slurmctld not answering never hangs us), and every failure is a RemoteError carrying
SLURM's own stderr. Parsing lives in ``r1console.core.slurm_parse`` / ``core.nvidia_smi``.

Polling one job costs one command: :meth:`SlurmClient.job_state` is a single
``squeue -h -t all -j ID -o FORMAT`` (sacct only once the job has left squeue).

Submitting and reconciling a lost sbatch answer live in ``slurm_submit`` (``SlurmSubmitter``,
which the client inherits); its public names are importable from here too.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from r1console.adapters import deployments
from r1console.adapters.deployments import Deployment
from r1console.adapters.slurm_submit import SBATCH_TIMEOUT, SlurmSubmitter, SubmitUnknown, deployment_id_for
from r1console.adapters.transport import (
    DEFAULT_TIMEOUT,
    FileFollower,
    FollowReset,
    RunResult,
    Transport,
    TransportError,
    TransportLost,
    TransportTimeout,
)
from r1console.core import slurm_json, submit_record
from r1console.core.errors import R1Error, RemoteError
from r1console.core.nvidia_smi import NodeGpus, NvidiaSmiParseError, nvidia_smi_argv, parse_labelled
from r1console.core.profiles import load_profile_for_cluster
from r1console.core.slurm_parse import (
    SACCT_FIELDS,
    SACCT_JOBCOMP_FIELDS,
    SQUEUE_FORMAT,
    JobInfo,
    SlurmParseError,
    classify_srun_error,
    is_accounting_disabled,
    is_invalid_job_id,
    is_json_unsupported,
    parse_sacct,
    parse_scontrol_jobs,
    parse_squeue_format,
    parse_squeue_json,
    sacct_select_args,
)
from r1console.core.textnum import is_ascii_int
from r1console.core.userconfig import ClusterSpec

SLURM_COMMANDS = frozenset({"sbatch", "squeue", "scontrol", "sacct", "scancel", "srun", "sinfo", "sacctmgr"})
_SLURM_CONF_FILES = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf")


class JobNotFound(R1Error):
    """SLURM has no record of the job (not in squeue, not in sacct)."""

    exit_code = 1


class JobStateError(R1Error):
    """The job is in the wrong state for the request (not running yet, already ended...)."""

    exit_code = 1


@dataclass(frozen=True)
class GpuReport:
    job: JobInfo
    nodes: tuple[NodeGpus, ...]
    missing_nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"job_id": self.job.job_id, "state": self.job.state,
                "nodes": [n.to_dict() for n in self.nodes], "missing_nodes": list(self.missing_nodes)}


#: What SLURM clients print while slurmctld is stopped, restarting or overloaded (they exit 1).
_CTLD_UNREACHABLE = re.compile(r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted"
                               r"|Connection refused|Communication connection failure|Transport endpoint"
                               r"|temporarily unable|Resource temporarily unavailable", re.IGNORECASE)


def is_transient(err: BaseException) -> bool:
    """A failure worth waiting out: the SSH link or slurmctld is down for a while (M10)."""
    if isinstance(err, TransportTimeout):
        return True
    if isinstance(err, TransportError):
        return err.transient or isinstance(err, TransportLost)
    if isinstance(err, RemoteError) and not isinstance(err, (JobNotFound, JobStateError)):
        return bool(_CTLD_UNREACHABLE.search(err.stderr or "") or _CTLD_UNREACHABLE.search(err.message))
    return False


class SlurmClient(SlurmSubmitter):
    def __init__(self, transport: Transport, cluster: ClusterSpec, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.transport = transport
        self.cluster = cluster
        self.timeout = timeout
        self._json_ok: bool | None = None
        self._sacct_mode: str | None = None  # "sacct" (slurmdbd) or "jobcomp" (sacct -c)
        self._sacct_json: bool | None = None  # sacct --json is trustworthy here (Slurm >= 23.02)

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or self.cluster.host

    # ---- running ---------------------------------------------------------------------------
    def _check_local_config(self, argv: Sequence[str]) -> None:
        if not self.transport.is_local or argv[0] not in SLURM_COMMANDS:
            return
        env = getattr(self.transport, "env", {}) or {}
        if env.get("SLURM_CONF") or os.environ.get("SLURM_CONF") or any(os.path.exists(p) for p in _SLURM_CONF_FILES):
            return
        raise R1Error(f"no SLURM configuration here: SLURM_CONF is not set and {_SLURM_CONF_FILES[0]} does not exist",
                      hint="set SLURM_CONF, or give the cluster `env: {SLURM_CONF: /path/slurm.conf}` in the config")

    async def _run(self, argv: Sequence[str], *, timeout: float | None = None, retry: bool = True) -> RunResult:
        self._check_local_config(argv)
        return await self.transport.run(list(argv), timeout=timeout or self.timeout, retry_on_drop=retry)

    # ---- queue / state ---------------------------------------------------------------------
    async def queue(self, job_ids: Sequence[str] | None = None, *, all_users: bool = False) -> list[JobInfo]:
        """Jobs slurmctld holds (pending, running, and recently ended), ours unless ``all_users``.

        ``squeue --json`` where it works (both schema shapes), else ``squeue -o`` with a
        delimiter-safe format. Filters are applied here too (22.05's --json ignores them).
        """
        ids = _checked_ids(job_ids)
        user = None if all_users or ids else (await self.transport.identity())[1]
        jobs: list[JobInfo] | None = None
        if self._json_ok is not False:
            # filters: honoured from 23.02.3 on (less to transfer), ignored before (filtered below)
            argv = ["squeue", "--json", "-t", "all", *(["-j", ",".join(ids)] if ids else ["-u", user] if user else [])]
            result = await self._run(argv)
            if not result.ok and ids and is_invalid_job_id(result.stderr):
                return []
            if result.ok:
                try:
                    jobs = parse_squeue_json(result.stdout)
                    self._json_ok = True
                except SlurmParseError:
                    if self._json_ok:
                        raise
                    self._json_ok = False
            elif is_json_unsupported(result.returncode, result.stdout, result.stderr):
                self._json_ok = False
            else:
                result.check("squeue --json")
        if jobs is None:
            argv = ["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT]
            argv += ["-j", ",".join(ids)] if ids else (["-u", user] if user else [])
            result = await self._run(argv)
            if not result.ok and ids and is_invalid_job_id(result.stderr):
                return []
            result.check("squeue")
            jobs = parse_squeue_format(result.stdout)
        if ids:
            jobs = [j for j in jobs if j.job_id in ids or j.job_id.split("_")[0] in ids]
        elif user:
            jobs = [j for j in jobs if not j.user or j.user == user]
        return jobs

    async def job_state(self, job_id: str) -> JobInfo:
        """One job, cheaply: ONE ``squeue`` command while slurmctld holds it, sacct afterwards."""
        job_id = str(job_id).strip()
        if not is_ascii_int(job_id.replace("_", "")):
            raise JobNotFound(f"{job_id!r} is not a SLURM job id")
        argv = ["squeue", "-h", "-t", "all", "-j", job_id, "-o", SQUEUE_FORMAT]
        result = await self._run(argv)
        if result.ok:
            jobs = [j for j in parse_squeue_format(result.stdout) if j.job_id == job_id]
            if jobs:
                return jobs[0]
        elif not is_invalid_job_id(result.stderr):
            result.check("squeue")
        past = await self.history([job_id])
        if past:
            return past[0]
        raise JobNotFound(f"job {job_id} is not known to SLURM on {self.cluster_name} "
                          "(not in squeue, not in the accounting history)",
                          hint="check the id with `r1console status`")

    async def job_state_patiently(self, job_id: str, *, give_up_at: float | None = None,
                                  on_wait: Callable[[str], None] | None = None) -> JobInfo:
        """:meth:`job_state`, riding out a slurmctld pause or an SSH drop (M10): transient
        failures are retried with backoff (2 s doubling to 15 s) until ``give_up_at``
        (``time.monotonic()``; None = for ever), telling ``on_wait`` once per failure streak.
        A job that is not known, or any other error, is raised at once."""
        delay = 2.0
        told = False
        while True:
            try:
                return await self.job_state(job_id)
            except R1Error as err:
                if not is_transient(err):
                    raise
                left = None if give_up_at is None else give_up_at - time.monotonic()
                if left is not None and left <= 0:
                    raise
                if on_wait is not None and not told:
                    on_wait(f"cannot get job {job_id}'s state from {self.cluster_name} "
                            f"({str(err).splitlines()[0][:200]}); retrying")
                    told = True
                await asyncio.sleep(delay if left is None else max(0.0, min(delay, left)))
                delay = min(delay * 2, 15.0)

    async def job(self, job_id: str) -> JobInfo:
        """Full details: ``scontrol show job -o`` (BatchHost, NodeList, WorkDir, StdOut/StdErr),
        falling back to the accounting history for jobs slurmctld has forgotten."""
        job_id = str(job_id).strip()
        if not is_ascii_int(job_id.replace("_", "")):
            raise JobNotFound(f"{job_id!r} is not a SLURM job id")
        result = await self._run(["scontrol", "show", "job", "-o", job_id])
        if result.ok:
            jobs = parse_scontrol_jobs(result.stdout)
            for info in jobs:
                if info.job_id == job_id or info.job_id.split("_")[0] == job_id:
                    return info
            if jobs:
                return jobs[0]
        elif not is_invalid_job_id(result.stderr):
            result.check("scontrol show job")
        past = await self.history([job_id])
        if past:
            return past[0]
        raise JobNotFound(f"job {job_id} is not known to SLURM on {self.cluster_name} "
                          "(not in scontrol, not in the accounting history)",
                          hint="check the id with `r1console status`")

    # ---- history ---------------------------------------------------------------------------
    async def history(self, job_ids: Sequence[str] | None = None, *, since: datetime | None = None,
                      all_users: bool = False) -> list[JobInfo]:
        """Jobs from accounting: ``sacct -X -P`` (slurmdbd) or ``sacct -c -P`` (jobcomp only), with a
    ``\x1f`` delimiter: job names and workdirs may contain sacct's default '|'."""
        ids = _checked_ids(job_ids)
        select: list[str]
        if ids:
            select = ["-j", ",".join(ids)]
        else:
            start = since or (datetime.now() - timedelta(days=7))
            select = ["-S", start.strftime("%Y-%m-%dT%H:%M:%S")]
            if not all_users:
                select += ["-u", (await self.transport.identity())[1]]
            else:
                select += ["-a"]
        if self._sacct_mode != "jobcomp" and await self._use_sacct_json():
            result = await self._run(["sacct", "-X", "--json", *select])
            if result.ok:
                try:
                    jobs = slurm_json.parse_jobs_json(result.stdout, what="sacct --json")
                except SlurmParseError:
                    self._sacct_json = False  # an odd build: the -P text below always works
                else:
                    self._sacct_mode = "sacct"
                    return self._sorted(jobs, ids)
            else:
                self._sacct_json = False
        if self._sacct_mode != "jobcomp":
            argv = ["sacct", "-X", *sacct_select_args(SACCT_FIELDS), *select]
            result = await self._run(argv)
            if result.ok:
                self._sacct_mode = "sacct"
                return self._sorted(parse_sacct(result.stdout, source="sacct"), ids)
            if not is_accounting_disabled(result.stderr + result.stdout):
                result.check("sacct", hint="SLURM accounting (sacct) is needed for jobs that left squeue")
            self._sacct_mode = "jobcomp"
        argv = ["sacct", "-c", *sacct_select_args(SACCT_JOBCOMP_FIELDS), *select]
        result = await self._run(argv)
        result.check("sacct -c", hint="this cluster has neither slurmdbd accounting nor a jobcomp log; "
                     "ended jobs disappear from SLURM after MinJobAge")
        return self._sorted(parse_sacct(result.stdout, source="sacct-c"), ids)

    async def _use_sacct_json(self) -> bool:
        """``sacct --json`` from Slurm 23.02 on (older releases' JSON misreports exit codes);
        asked once per client with ``sacct --version``."""
        if self._sacct_json is None:
            result = await self._run(["sacct", "--version"])
            release = slurm_json.parse_version_output(result.stdout) if result.ok else None
            self._sacct_json = slurm_json.json_trustworthy(release)
        return self._sacct_json

    @staticmethod
    def _sorted(jobs: list[JobInfo], ids: list[str]) -> list[JobInfo]:
        if ids:
            # jobcomp may hold several records of one id (requeues); the last one is the newest
            latest: dict[str, JobInfo] = {}
            for job in jobs:
                latest[job.job_id] = job
            return [latest[i] for i in ids if i in latest]
        return jobs

    # ---- cancel ----------------------------------------------------------------------------
    async def cancel(self, job_id: str, *, confirm_timeout: float = 20.0, interval: float = 0.5) -> JobInfo:
        """``scancel`` and CONFIRM: scancel exits 0 even for unknown or finished jobs."""
        before = await self.job_state(job_id)
        if before.is_finished:
            raise JobStateError(f"job {job_id} has already ended ({before.state}); nothing to cancel")
        result = await self._run(["scancel", str(job_id)], retry=True)
        result.check("scancel")
        deadline = time.monotonic() + confirm_timeout
        info = before
        while True:
            try:
                info = await self.job_state(job_id)
            except JobNotFound:
                return JobInfo(job_id=str(job_id), state="CANCELLED", reason="gone from SLURM after scancel")
            if info.is_finished:
                return info
            if time.monotonic() >= deadline:
                if info.state == "COMPLETING":
                    return info
                raise JobStateError(f"scancel {job_id} returned, but the job is still {info.state} after "
                                    f"{confirm_timeout:g} s", hint="run `r1console status` again shortly")
            await asyncio.sleep(interval)

    # ---- GPUs ------------------------------------------------------------------------------
    async def gpus(self, job_id: str, *, timeout: float = 60.0) -> GpuReport:
        """Per node, per GPU samples via ``srun --overlap ... -l nvidia-smi --query-gpu``.

        ``scontrol show job`` first (state, nodes, and the GPUs SLURM allocated): a job without GPUs
        is refused, since nvidia-smi inside it would show the node's GPUs of OTHER jobs (or none)."""
        info = await self.job(job_id)
        if info.is_pending:
            raise JobStateError(f"job {job_id} is not running yet ({info.state}"
                                f"{', ' + info.reason if info.reason else ''}): it has no GPUs to show",
                                hint=f"r1console wait {job_id} --for running")
        if info.is_finished:
            raise JobStateError(f"job {job_id} has ended ({info.state}): it has no GPUs any more")
        if not info.is_running:
            raise JobStateError(f"job {job_id} is {info.state}: GPUs can be read only while it is RUNNING")
        if info.gpus == 0:
            raise JobStateError(f"job {job_id} has no GPUs: SLURM allocated it none (TRES without gres/gpu), "
                                "so there is nothing to sample",
                                hint="its profile runs on CPUs (slurm.gpus_per_node: 0, like tiny-cpu); "
                                f"`r1console logs {job_id}` shows what it does")
        nodes = info.node_list
        count = len(nodes) or info.node_count or 1
        argv = ["srun", f"--jobid={job_id}", "--overlap", "-N", str(count), "--ntasks-per-node=1", "-l",
                *nvidia_smi_argv()]
        result = await self._run(argv, timeout=timeout)
        if not result.ok:
            problem = classify_srun_error(result.stderr)
            if problem.kind == "missing_command":
                raise RemoteError(f"job {job_id}: {problem.message}", argv=argv, stderr=result.stderr,
                                  returncode=result.returncode,
                                  hint="is this a GPU partition? nvidia-smi comes with the NVIDIA driver")
            if problem.kind in ("pending", "ended", "unknown_job"):
                raise JobStateError(f"job {job_id}: {problem.message}")
            raise RemoteError(f"reading GPUs of job {job_id} failed: {problem.message}", argv=argv,
                              stderr=result.stderr, returncode=result.returncode)
        try:
            per_node = parse_labelled(result.stdout, nodes)
        except NvidiaSmiParseError as err:
            raise RemoteError(f"job {job_id}: unexpected nvidia-smi output: {err}", argv=argv,
                              stderr=result.stderr) from None
        seen = {n.node for n in per_node}
        missing = tuple(n for n in nodes if n not in seen)
        return GpuReport(job=info, nodes=tuple(per_node), missing_nodes=missing)

    # ---- logs ------------------------------------------------------------------------------
    @staticmethod
    def log_path(info: JobInfo, stream: str = "out", dep: Deployment | None = None) -> str | None:
        """Where the job's .out/.err is on the cluster; None while the batch host is unknown."""
        if dep is not None:
            host = info.batch_host or dep.batch_host
            if host and not dep.batch_host:
                dep = replace(dep, batch_host=host)
            return dep.log_path(stream)
        return info.stderr_path() if stream == "err" else info.stdout_path()

    async def file_size(self, path: str) -> int | None:
        result = await self.transport.run(["stat", "-c", "%s", "--", path], timeout=self.timeout)
        if not result.ok:
            return None
        text = result.stdout.strip()
        return int(text) if is_ascii_int(text) else None

    async def read_from(self, path: str, offset: int = 0, *, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The file from byte ``offset`` to its current end, at most ``max_bytes`` (one command;
        the cut happens on the cluster, so only what is kept crosses the link — L4)."""
        result = await self.transport.run(["sh", "-c", '[ -r "$2" ] || { echo "$2: cannot read" >&2; exit 1; }; '
                                           'tail -c +"$1" -- "$2" | head -c "$3"', "sh",
                                           str(offset + 1), path, str(max_bytes)], timeout=max(self.timeout, 60))
        if not result.ok:
            raise RemoteError(f"cannot read {path} on {self.cluster_name}", stderr=result.stderr,
                              returncode=result.returncode)
        return result.raw_stdout[:max_bytes]

    def follow(self, path: str, offset: int = 0, *,
               on_reset: Callable[[FollowReset], None] | None = None) -> FileFollower:
        return self.transport.follow(path, offset, on_reset=on_reset)


def _checked_ids(job_ids: Sequence[str] | None) -> list[str]:
    """Job ids as squeue/sacct ``-j`` gets them: digits (array ``N_M``) only, never an option."""
    ids = [str(j).strip() for j in job_ids or []]
    for job_id in ids:
        if not submit_record.is_job_id(job_id):
            raise JobNotFound(f"{job_id!r} is not a SLURM job id")
    return ids


def remember_batch_host(dep: Deployment | None, info: JobInfo) -> Deployment | None:
    """Store the batch host / node list in the record the first time they are known."""
    if dep is None or not info.batch_host or (dep.batch_host == info.batch_host and dep.nodes == info.nodes):
        return dep
    try:
        return deployments.update(dep, batch_host=info.batch_host, nodes=info.nodes or dep.nodes)
    except R1Error:
        return dep


__all__ = ["SBATCH_TIMEOUT", "GpuReport", "JobNotFound", "JobStateError", "SlurmClient", "SubmitUnknown",
           "deployment_id_for", "is_transient", "load_profile_for_cluster", "remember_batch_host"]
