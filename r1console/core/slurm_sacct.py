"""``sacct -P`` / ``sacct -c -P`` (with a header line) to jobs, and the fields r1console asks it for."""

from __future__ import annotations

from r1console.core.slurm_jobinfo import JobInfo
from r1console.core.slurm_squeue import SQUEUE_SEP
from r1console.core.slurm_states import FINISHED_STATES, PENDING_STATES, normalize_state
from r1console.core.slurm_values import (
    SlurmParseError,
    _clean,
    _clip,
    _int,
    _timestamp_text,
    parse_duration,
)

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason", "Partition", "NNodes", "NodeList",
                "Elapsed", "Timelimit", "Submit", "Start", "End", "WorkDir", "User")
#: ``sacct -c`` (jobcomp) knows fewer fields; unknown ones abort it, so ask only for these.
SACCT_JOBCOMP_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Partition", "NNodes", "NodeList",
                        "Elapsed", "Timelimit", "Start", "End", "WorkDir", "User")


#: sacct's field separator as r1console asks for it (``--delimiter``): job names and work
#: directories may contain '|', the default separator (seen on the test cluster).
SACCT_SEP = SQUEUE_SEP


def sacct_select_args(fields: tuple[str, ...]) -> list[str]:
    return ["-P", f"--delimiter={SACCT_SEP}", "-o", ",".join(fields)]


def parse_sacct(text: str, *, source: str = "sacct", include_steps: bool = False,
                delimiter: str | None = None) -> list[JobInfo]:
    """``sacct -P`` output **with** its header line -> jobs (steps such as ``5.batch`` dropped).

    The delimiter is found from the header (r1console's ``\x1f`` or sacct's default ``|``).
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    sep = delimiter or (SACCT_SEP if SACCT_SEP in lines[0] else "|")
    header = [h.strip().lower() for h in lines[0].split(sep)]
    if "jobid" not in header:
        raise SlurmParseError(f"sacct printed no JobID header: {_clip(lines[0])}")
    jobs = []
    for line in lines[1:]:
        cells = line.split(sep)
        if len(cells) > len(header):  # a separator inside the last free-text column: rejoin it
            cells = cells[:len(header) - 1] + [sep.join(cells[len(header) - 1:])]
        row = dict(zip(header, cells))
        job_id = row.get("jobid", "").strip()
        if not job_id or ("." in job_id and not include_steps):
            continue
        state, detail = normalize_state(row.get("state", ""))
        reason = _clean(row.get("reason"))
        if detail and not reason:
            reason = detail  # "CANCELLED by 0" -> reason "by 0"
        pending = state in PENDING_STATES
        jobs.append(JobInfo(
            job_id=job_id,
            name=row.get("jobname", ""),
            state=state,
            reason=reason,
            nodes="" if pending else _clean(row.get("nodelist")),
            node_count=_int(row.get("nnodes")),
            partition=_clean(row.get("partition")),
            time_used=parse_duration(row.get("elapsed")),
            time_limit=parse_duration(row.get("timelimit")),
            submit_time=_timestamp_text(row.get("submit")),
            start_time=None if pending else _timestamp_text(row.get("start")),
            end_time=_timestamp_text(row.get("end")) if state in FINISHED_STATES else None,
            workdir=_clean(row.get("workdir")),
            exit_code=_clean(row.get("exitcode")),
            user=_clean(row.get("user")),
            source=source,
        ))
    return jobs
