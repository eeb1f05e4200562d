"""Local records of submitted deployments, so every command can find a job again.

One JSON file per deployment in ``state_dir()/deployments/<deployment_id>.json`` (dir 0700,
files 0600, written atomically: temp file + rename). A record says where the job runs (cluster,
transport, SSH host), what it is (profile, port, served model) and where its files are on the
cluster (workdir, script, logs, API key file).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

from r1console.core import paths
from r1console.core.errors import R1Error

SCHEMA = 1


@dataclass(frozen=True)
class Deployment:
    deployment_id: str           # <profile>-<UTC stamp>-<random>
    cluster: str                 # the --cluster name it was submitted with
    job_id: str
    profile: str
    workdir: str                 # absolute, on the cluster
    script_path: str
    log_out: str                 # SLURM pattern with the job id filled in: <workdir>/job.%N.<id>.out
    log_err: str
    key_path: str | None         # the API key file on the cluster (0600), None without a key
    port: int                    # vLLM's port on the head node
    served_model_name: str = ""
    profile_source: str = ""
    transport: str = "ssh"       # ssh | local
    ssh_host: str | None = None
    submitted_at: str = ""       # ISO 8601 UTC
    batch_host: str = ""         # learned once the job runs (the head node)
    nodes: str = ""
    auth: str = ""               # core.exposure.AUTH_SCHEME: the server proves its identity before we send the key
    state: str = ""              # "submitting": saved before sbatch, job id not known yet (core.submit_record)
    schema: int = SCHEMA

    def log_path(self, stream: str = "out") -> str | None:
        """The log file on the cluster, once the batch host is known (``%N``)."""
        pattern = self.log_err if stream == "err" else self.log_out
        if "%N" in pattern:
            if not self.batch_host:
                return None
            return pattern.replace("%N", self.batch_host.split(".")[0])
        return pattern

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Deployment":
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in data]
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def records_dir() -> Path:
    return paths.state_dir() / "deployments"


def _ensure_dir() -> Path:
    folder = records_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as err:
        raise R1Error(f"{folder}: cannot create the deployments directory: {err.strerror}") from None
    return folder


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def record_path(deployment_id: str) -> Path:
    return records_dir() / f"{_SAFE.sub('_', deployment_id)}.json"


def save(dep: Deployment) -> Path:
    """Write (or replace) a record atomically."""
    folder = _ensure_dir()
    target = record_path(dep.deployment_id)
    data = json.dumps(dep.to_dict(), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise R1Error(f"{target}: cannot write the deployment record: {err.strerror}") from None
    return target


def load(path: Path) -> Deployment:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return Deployment.from_dict(data)
    except (OSError, ValueError, TypeError) as err:
        raise R1Error(f"{path}: unreadable deployment record ({err})",
                      hint="delete the file if the deployment is gone") from None


def load_all(*, cluster: str | None = None) -> tuple[list[Deployment], list[str]]:
    """All records (newest first) and a list of problems with unreadable ones."""
    folder = records_dir()
    if not folder.is_dir():
        return [], []
    found, problems = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            dep = load(path)
        except R1Error as err:
            problems.append(str(err))
            continue
        if cluster is None or dep.cluster == cluster:
            found.append(dep)
    found.sort(key=lambda d: d.submitted_at, reverse=True)
    return found, problems


def find(job_id: str, cluster: str | None = None) -> Deployment | None:
    """The record of ``job_id`` (on ``cluster`` if given). Ambiguous without a cluster: R1Error."""
    job_id = str(job_id).strip()
    matches = [d for d in load_all(cluster=cluster)[0] if d.job_id == job_id]
    if len(matches) > 1 and cluster is None:
        clusters = sorted({d.cluster for d in matches})
        if len(clusters) > 1:
            raise R1Error(f"job {job_id} was submitted to several clusters ({', '.join(clusters)})",
                          hint="pass --cluster NAME")
    return matches[0] if matches else None


def remove(dep: Deployment) -> None:
    """Delete a record (a submission that never became a job)."""
    try:
        record_path(dep.deployment_id).unlink(missing_ok=True)
    except OSError as err:
        raise R1Error(f"{record_path(dep.deployment_id)}: cannot remove the deployment record: "
                      f"{err.strerror}") from None


def update(dep: Deployment, **changes) -> Deployment:
    """Save a changed copy (e.g. the batch host once known) and return it."""
    new = replace(dep, **changes)
    if new != dep:
        save(new)
    return new


__all__ = ["Deployment", "find", "load", "load_all", "record_path", "records_dir", "remove", "save", "update"]
