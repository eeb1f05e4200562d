"""One job as SLURM reports it (:class:`JobInfo`), whichever client printed it: its state class and
its log paths (SLURM's filename patterns filled from BatchHost)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from r1console.core.slurm_filenames import expand_filename
from r1console.core.slurm_hostlist import expand_hostlist
from r1console.core.slurm_states import ACTIVE_STATES, FINISHED_STATES, PENDING_STATES


@dataclass(frozen=True)
class JobInfo:
    """One job as SLURM reports it. Times are seconds; timestamps ISO 8601 strings as reported."""

    job_id: str
    name: str = ""
    state: str = "UNKNOWN"            # base state: PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str = ""                  # Reason / state_reason ("" when None)
    nodes: str = ""                   # hostlist expression, e.g. node[1-2] ("" while pending)
    node_count: int | None = None
    batch_host: str = ""              # the node that runs the batch script (%N of its log files)
    partition: str = ""
    time_used: int | None = None      # seconds
    time_limit: int | None = None     # seconds; None: UNLIMITED or unknown
    start_time: str | None = None
    end_time: str | None = None
    submit_time: str | None = None
    workdir: str = ""
    stdout: str = ""                  # as SLURM reports it (may still contain %N, %j, ...)
    stderr: str = ""
    exit_code: str = ""               # "rc:signal"
    user: str = ""
    state_flags: tuple[str, ...] = ()  # extra flags of the >= 23.02 flag array (e.g. REQUEUED)
    source: str = ""                  # squeue-json | squeue | scontrol | sacct | sacct-c
    gpus: int | None = None           # GPUs of the job (scontrol TRES gres/gpu; 0 = none); None: not reported

    # ---- classification --------------------------------------------------------------------
    @property
    def is_pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def is_running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def is_active(self) -> bool:
        """Holds nodes right now (running, completing, suspended...)."""
        return self.state in ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def node_list(self) -> list[str]:
        return expand_hostlist(self.nodes) if self.nodes else []

    # ---- log paths -------------------------------------------------------------------------
    def expand_pattern(self, pattern: str) -> str | None:
        """Fill SLURM's filename pattern; None while the batch host (``%N``) is unknown."""
        return expand_filename(pattern, job_id=self.job_id, name=self.name, user=self.user, host=self.batch_host,
                               workdir=self.workdir)

    def stdout_path(self) -> str | None:
        return self.expand_pattern(self.stdout)

    def stderr_path(self) -> str | None:
        return self.expand_pattern(self.stderr or self.stdout)

    def merged_with(self, other: "JobInfo") -> "JobInfo":
        """Fill this job's empty fields from ``other`` (same job, another source)."""
        updates = {}
        for name in self.__dataclass_fields__:
            mine = getattr(self, name)
            if mine in (None, "", (), "UNKNOWN"):
                theirs = getattr(other, name)
                if theirs not in (None, "", ()):
                    updates[name] = theirs
        return replace(self, **updates) if updates else self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["state_flags"] = list(self.state_flags)
        data["stdout_path"] = self.stdout_path()
        data["stderr_path"] = self.stderr_path()
        return data
