"""SLURM's other answers: ``sbatch --parsable`` (``jobid[;cluster]``) and the error text of squeue,
sacct and srun, classified."""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1console.core.slurm_values import SlurmParseError, _clip


def parse_sbatch_parsable(stdout: str) -> tuple[str, str | None]:
    """``sbatch --parsable`` output -> (job_id, cluster or None)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    for line in reversed(lines):
        m = re.match(r"^(\d+(?:_\d+)?)(?:;(\S+))?$", line)
        if m:
            return m.group(1), m.group(2)
    raise SlurmParseError(f"sbatch --parsable printed no job id: {_clip(stdout) or '(nothing)'}")


def is_invalid_job_id(stderr: str) -> bool:
    return "Invalid job id specified" in stderr


def is_accounting_disabled(stderr: str) -> bool:
    return "accounting storage is disabled" in stderr.lower()


def is_json_unsupported(returncode: int, stdout: str, stderr: str) -> bool:
    """squeue without the JSON plugin/option (old Slurm, or built without json-c)."""
    text = stderr.lower()
    return returncode != 0 and any(s in text for s in (
        "unrecognized option", "invalid option", "unknown option", "json", "serializer", "data_parser"))


@dataclass(frozen=True)
class SrunProblem:
    kind: str      # pending | ended | unknown_job | missing_command | blocked | other
    message: str


def classify_srun_error(stderr: str, command: str = "nvidia-smi") -> SrunProblem:
    text = stderr
    if "Job is pending execution" in text:
        return SrunProblem("pending", "the job is not running yet (still pending)")
    if "has expired" in text or "already completing or completed" in text:
        return SrunProblem("ended", "the job has already ended")
    if "Invalid job id specified" in text:
        return SrunProblem("unknown_job", "SLURM does not know this job id")
    m = re.search(r"slurmstepd-([^:\s]+): error: execve\(\): ([^:]+): No such file or directory", text)
    if m or "command not found" in text:
        node = m.group(1) if m else "a node"
        return SrunProblem("missing_command", f"{command} is not installed (or not on PATH) on {node}")
    if "step creation temporarily disabled" in text or "Requested nodes are busy" in text:
        return SrunProblem("blocked", "SLURM will not start another step in this job right now (nodes busy)")
    return SrunProblem("other", _clip(text) or "srun failed")
