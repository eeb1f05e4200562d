"""Submitting a profile without orphans, and reconciling a submission whose sbatch answer was lost.

``submit`` uploads the rendered script (and an ``auto`` API key) into the workdir, writes the
local record as 'submitting' BEFORE sbatch runs (``core.submit_record``), then runs sbatch once
(never retried: it must not run twice). A lost answer (timeout, dropped link, a verdict-less
failure) leaves that record, which ``reconcile`` later resolves by the job's ``--comment`` tag:
found (the record completes), not yet (unchanged) or never created (record and files removed).

:class:`SlurmSubmitter` is the part of ``slurm_client.SlurmClient`` that does this.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from r1console.adapters import deployments
from r1console.adapters.deployments import Deployment
from r1console.adapters.transport import RunResult, Transport, TransportLost, TransportTimeout
from r1console.core import submit_record
from r1console.core.errors import EXIT_CLUSTER, R1Error, RemoteError
from r1console.core.exposure import AUTH_SCHEME
from r1console.core.profiles import LoadedProfile, Profile
from r1console.core.render import LOG_ERR, LOG_OUT, RenderPlan, key_file_for, render_script
from r1console.core.slurm_parse import parse_sbatch_parsable
from r1console.core.userconfig import ClusterSpec

_PROFILE_DEFAULT_WORKDIR = "~/r1console"
SBATCH_TIMEOUT = 120.0  # sbatch retries while slurmctld is busy; give it time, then reconcile


class SubmitUnknown(R1Error):
    """sbatch's answer was lost: the job may exist; the 'submitting' record is reconciled later."""

    exit_code = EXIT_CLUSTER


def deployment_id_for(profile_name: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{profile_name}-{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SubmitPaths:
    """Where one submission's files go on the cluster."""

    workdir: str             # absolute, no trailing slash
    deployment_id: str
    key_path: str | None     # the API key file the job reads (None: no key)

    @property
    def script_path(self) -> str:
        return f"{self.workdir}/{self.deployment_id}.sbatch"


class SlurmSubmitter:
    """``submit``, ``reconcile`` and ``reconcile_all`` of :class:`~r1console.adapters.slurm_client.SlurmClient`."""

    transport: Transport
    cluster: ClusterSpec
    timeout: float
    cluster_name: str
    _run: Callable[..., Awaitable[RunResult]]

    # ---- submit ----------------------------------------------------------------------------
    async def submit(self, loaded: LoadedProfile, *, workdir: str | None = None,
                     sbatch_timeout: float = SBATCH_TIMEOUT) -> Deployment:
        """Upload the rendered script (+ API key) into the workdir and sbatch it; record it locally."""
        profile = loaded.profile
        workdir_abs = await self._submit_workdir(loaded, workdir)
        dep_id = deployment_id_for(profile.name)
        paths = SubmitPaths(workdir_abs, dep_id, key_file_for(profile, workdir_abs, dep_id))
        script = render_script(profile, RenderPlan(workdir=workdir_abs, api_key_file=paths.key_path))
        leftovers = await self._upload(profile, paths, script)

        # The record exists before sbatch runs: a lost answer leaves a record to reconcile, never
        # an orphan job nobody knows about (core.submit_record).
        dep = self._submitting_record(loaded, paths)
        try:
            deployments.save(dep)
        except R1Error:
            await self.transport.run(["rm", "-f", "--", *leftovers], timeout=self.timeout)
            raise
        return await self._sbatch(dep, profile.name, leftovers, sbatch_timeout)

    async def _submit_workdir(self, loaded: LoadedProfile, workdir: str | None) -> str:
        """The absolute workdir of the job: ``workdir``, else the profile's (if set there), else the cluster's."""
        profile = loaded.profile
        if workdir is None:
            set_in_profile = ("workdir",) in loaded.marks and profile.workdir != _PROFILE_DEFAULT_WORKDIR
            workdir = profile.workdir if set_in_profile else self.cluster.workdir
        workdir_abs = (await self.transport.expand_user(workdir)).rstrip("/") or "/"
        if not workdir_abs.startswith("/"):
            raise R1Error(f"workdir {workdir!r} must be an absolute path or start with ~/")
        if any(ch in workdir_abs for ch in "\n\r\0"):
            raise R1Error(f"workdir {workdir!r} contains a newline or NUL character")
        if "%" in workdir_abs:
            # SLURM resolves the relative --output against the workdir and expands %-patterns in
            # the whole path (seen on 22.05: "%j" in the workdir -> JobLaunchFailure, no log).
            raise R1Error(f"workdir {workdir!r} contains '%': SLURM would expand it as a filename "
                          "pattern (%j, %N, ...) in the log paths and the job could not start")
        return workdir_abs

    async def _upload(self, profile: Profile, paths: SubmitPaths, script: str) -> list[str]:
        """Write the script (and an ``auto`` key; a given key file must be readable); the files written."""
        key_path = paths.key_path
        await self.transport.mkdir(paths.workdir, mode=0o700)  # chmod only if we create it
        created_key = False
        if profile.server.api_key == "auto" and key_path:
            await self.transport.mkdir(f"{paths.workdir}/keys", mode=0o700)
            await self.transport.write_file(key_path, (secrets.token_urlsafe(32) + "\n").encode(), mode=0o600)
            created_key = True
        elif key_path:
            check = await self.transport.run(["test", "-r", key_path], timeout=self.timeout)
            if not check.ok:
                raise R1Error(f"the profile's API key file {key_path} is not readable on {self.cluster_name}",
                              hint="create it (chmod 600), or use server.api_key: auto")
        await self.transport.write_file(paths.script_path, script.encode(), mode=0o600)
        return [paths.script_path] + ([key_path] if created_key and key_path else [])

    def _submitting_record(self, loaded: LoadedProfile, paths: SubmitPaths) -> Deployment:
        profile, workdir_abs, key_path = loaded.profile, paths.workdir, paths.key_path
        return Deployment(
            deployment_id=paths.deployment_id, cluster=self.cluster_name, job_id="", profile=profile.name,
            workdir=workdir_abs, script_path=paths.script_path,
            log_out=f"{workdir_abs}/{LOG_OUT}", log_err=f"{workdir_abs}/{LOG_ERR}",
            key_path=key_path, port=profile.server.port, served_model_name=profile.served_model_name,
            profile_source=str(loaded.source), transport=self.cluster.transport,
            ssh_host=self.cluster.host if self.cluster.transport == "ssh" else None,
            submitted_at=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            auth=AUTH_SCHEME if key_path else "", state=submit_record.SUBMITTING,
        )

    async def _sbatch(self, dep: Deployment, profile_name: str, leftovers: list[str],
                      sbatch_timeout: float) -> Deployment:
        """Run sbatch once for the recorded ``dep``: the completed record, or reconcile a lost answer."""
        argv = ["sbatch", "--parsable", f"--comment={submit_record.comment_for(dep.deployment_id)}",
                f"--chdir={dep.workdir}", dep.script_path]
        try:
            result = await self._run(argv, timeout=sbatch_timeout, retry=False)  # never run sbatch twice
        except (TransportTimeout, TransportLost) as err:
            return await self._submit_unknown(dep, f"sbatch did not answer ({type(err).__name__}: {err})")
        if not result.ok:
            stderr = result.stderr or result.stdout
            if submit_record.outcome_unknown(result.returncode, stderr):
                return await self._submit_unknown(dep, f"sbatch failed without a verdict: {stderr.strip()[:300]}")
            await self._forget(dep, leftovers)
            raise RemoteError(f"sbatch rejected profile {profile_name} on {self.cluster_name}", argv=argv,
                              stderr=stderr, returncode=result.returncode,
                              hint="check slurm.partition / nodes / gpus_per_node against `sinfo` "
                              "(cluster defaults: partition/account in the r1console config)")
        job_id, _ = parse_sbatch_parsable(result.stdout)
        return self._submitted(dep, job_id)

    # ---- submit records: reconcile after a lost sbatch answer ------------------------------
    @staticmethod
    def _submitted(dep: Deployment, job_id: str) -> Deployment:
        done = replace(dep, job_id=job_id, state="", log_out=dep.log_out.replace("%j", job_id),
                       log_err=dep.log_err.replace("%j", job_id))
        deployments.save(done)
        return done

    async def _forget(self, dep: Deployment, files: Sequence[str]) -> None:
        """The job does not exist: remove its files on the cluster (a late job then has no key) and the record."""
        if files:
            with contextlib.suppress(R1Error):
                await self.transport.run(["rm", "-f", "--", *files], timeout=self.timeout)
        deployments.remove(dep)

    async def _submit_unknown(self, dep: Deployment, why: str) -> Deployment:
        try:
            found = await self.reconcile(dep)
        except R1Error:
            found = None
        if found is not None and found.job_id:
            return found
        raise SubmitUnknown(f"{why}; the job may or may not exist on {self.cluster_name}. Deployment "
                            f"{dep.deployment_id} is recorded as '{submit_record.SUBMITTING}' and is looked up "
                            f"again (squeue, tag {submit_record.comment_for(dep.deployment_id)}) by the next "
                            "`r1console status` or `submit`",
                            hint="run `r1console status` once slurmctld answers; never submit the same profile "
                            "again blindly")

    async def reconcile(self, dep: Deployment, *, stale_after_s: float = submit_record.STALE_AFTER_S,
                        timeout: float | None = None) -> Deployment | None:
        """Find the job of a 'submitting' record. Returns the completed record, the record unchanged
        (not found yet), or None (never created: record and key file removed)."""
        if dep.state != submit_record.SUBMITTING:
            return dep
        user = (await self.transport.identity())[1]
        argv = ["squeue", "-h", "-t", "all", "-u", user, "-o", submit_record.LOOKUP_FORMAT]
        result = await self._run(argv, timeout=timeout)
        result.check("squeue (looking up a submission whose answer was lost)")
        found = submit_record.find_job(result.stdout, dep.deployment_id, dep.script_path)
        if found:
            # one sbatch can create one job; the lowest id is the one it made (defensive)
            return self._submitted(dep, min(found, key=lambda f: int(f.job_id.split("_")[0])).job_id)
        if submit_record.never_created(dep.submitted_at, stale_after_s=stale_after_s):
            created_key = dep.key_path and dep.key_path == f"{dep.workdir}/keys/{dep.deployment_id}.key"
            await self._forget(dep, [dep.script_path] + ([dep.key_path] if created_key else []))
            return None
        return dep

    async def reconcile_all(self, **kwargs) -> list[str]:
        """Reconcile every 'submitting' record of this cluster; one line per change, for the user."""
        records, _ = deployments.load_all(cluster=self.cluster_name)
        notes = []
        for dep in records:
            if dep.state != submit_record.SUBMITTING:
                continue
            try:
                now = await self.reconcile(dep, **kwargs)
            except R1Error as err:
                notes.append(f"deployment {dep.deployment_id}: still unknown ({str(err).splitlines()[0]})")
                continue
            if now is None:
                notes.append(f"deployment {dep.deployment_id}: sbatch never created its job; record removed")
            elif now.job_id:
                notes.append(f"deployment {dep.deployment_id}: found its job {now.job_id}")
        return notes



__all__ = ["SBATCH_TIMEOUT", "SlurmSubmitter", "SubmitPaths", "SubmitUnknown", "deployment_id_for"]
