"""Submitting without orphans: what to do when sbatch's answer is lost.

``submit`` saves the deployment record (state ``submitting``) BEFORE it runs sbatch, and tags the
job ``--comment=r1c:<deployment id>``. If sbatch times out, the connection drops, or sbatch
reports that slurmctld did not answer, the job may or may not exist: the record stays, and the
next ``submit`` / ``status`` (or the same submit, right away) looks the job up again by its tag
(or by its script path, which also holds the deployment id) in ``squeue``. Found: the record gets
the job id. Not found once slurmctld answers and the attempt is older than :data:`STALE_AFTER_S`:
the job was never created; the record and the key file are removed (a late job would then stop at
``api_key_missing`` instead of serving without anyone knowing about it).

Why :data:`STALE_AFTER_S` = 360 s: a request sbatch sent to a paused slurmctld can still be
processed after sbatch gave up, but SLURM rejects a request whose MUNGE credential has expired
(default TTL 300 s); after that it cannot create a job any more.

Pure functions; ``adapters.slurm_client`` runs the commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

COMMENT_PREFIX = "r1c:"
SUBMITTING = "submitting"
STALE_AFTER_S = 360.0
#: ``squeue -o`` format of the lookup: job id, comment, command (the script path); \x1f-separated
LOOKUP_SEP = "\x1f"
LOOKUP_FORMAT = LOOKUP_SEP.join(("%i", "%k", "%o"))

# sbatch failures that say nothing about whether the job exists (slurmctld slow / gone mid-RPC)
_UNKNOWN_OUTCOME = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Zero Bytes were transmitted|"
    r"Connection (?:reset|refused|timed out)|Slurm backup controller in standby mode|"
    r"Communication connection failure|Transport endpoint", re.I)
_JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+)?\Z")


def comment_for(deployment_id: str) -> str:
    return f"{COMMENT_PREFIX}{deployment_id}"


def is_job_id(text: str) -> bool:
    """A SLURM job id (``123`` or an array task ``123_4``); never an option (``-x``) or a list."""
    return bool(_JOB_ID.match(text))


def outcome_unknown(returncode: int | None, stderr: str) -> bool:
    """sbatch failed in a way that leaves it open whether slurmctld created the job."""
    return returncode not in (0, None) and bool(_UNKNOWN_OUTCOME.search(stderr or ""))


@dataclass(frozen=True)
class Found:
    job_id: str
    by: str  # "comment" or "script"


def find_job(listing: str, deployment_id: str, script_path: str) -> list[Found]:
    """Jobs of ``squeue -h -t all -o LOOKUP_FORMAT`` that belong to the deployment."""
    tag = comment_for(deployment_id)
    found: list[Found] = []
    for line in listing.splitlines():
        parts = line.split(LOOKUP_SEP)
        if len(parts) < 3 or not is_job_id(parts[0].strip()):
            continue
        job_id, comment, command = parts[0].strip(), parts[1].strip(), LOOKUP_SEP.join(parts[2:]).strip()
        if comment == tag:
            found.append(Found(job_id, "comment"))
        elif script_path and command == script_path:
            found.append(Found(job_id, "script"))
    return found


def age_seconds(submitted_at: str, now: datetime | None = None) -> float | None:
    """Seconds since an ISO 8601 UTC stamp (``...Z``); None when it cannot be read."""
    try:
        when = datetime.fromisoformat(submitted_at.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return ((now or datetime.now(timezone.utc)) - when).total_seconds()


def never_created(submitted_at: str, *, now: datetime | None = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Not in squeue (which answered): is it safe to say the job will never appear?"""
    age = age_seconds(submitted_at, now)
    return age is not None and age >= stale_after_s


__all__ = ["COMMENT_PREFIX", "Found", "LOOKUP_FORMAT", "STALE_AFTER_S", "SUBMITTING", "age_seconds", "comment_for",
           "find_job", "is_job_id", "never_created", "outcome_unknown"]
