"""``squeue`` output to jobs: ``squeue --json`` in both schema shapes (21.08-22.05 plain values, >= 23.02
flag arrays and ``{set, infinite, number}`` numbers) and ``squeue -h -o`` with :data:`SQUEUE_FORMAT`."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from r1console.core.slurm_jobinfo import JobInfo
from r1console.core.slurm_states import ACTIVE_STATES, FINISHED_STATES, PENDING_STATES, normalize_state
from r1console.core.slurm_states import BASE_STATES as _BASE_STATES
from r1console.core.slurm_values import (
    SlurmParseError,
    _clean,
    _clip,
    _int,
    _timestamp_text,
    parse_duration,
)
from r1console.core.textnum import is_ascii_int


def _num(value) -> int | None:
    """A JSON number in either shape: 5, null, or {"set": true, "infinite": false, "number": 5}."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        if value.get("infinite") or not value.get("set", True):
            return None
        number = value.get("number")
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return None
        return _num(number)
    if isinstance(value, str) and is_ascii_int(value.strip()):
        return int(value)
    return None


def _epoch_iso(value) -> str | None:
    number = _num(value)
    if not number:  # 0 means "not set" in every Slurm version
        return None
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # beyond the year 9999 (or before 1): not a real time
        return None


def _state_from_json(value) -> tuple[str, tuple[str, ...]]:
    if isinstance(value, list):
        flags = [str(v).upper() for v in value if v]
        base = next((f for f in flags if f in _BASE_STATES), flags[0] if flags else "UNKNOWN")
        return base, tuple(f for f in flags if f != base)
    state, _ = normalize_state(str(value or ""))
    return state, ()


def _str(value) -> str:
    if value is None:
        return ""
    return _clean(str(value))


def job_from_json(job: dict, *, now: float | None = None) -> JobInfo:
    state, flags = _state_from_json(job.get("job_state"))
    start = _num(job.get("start_time"))
    end = _num(job.get("end_time"))
    used = None
    if start and state in ACTIVE_STATES:
        now = datetime.now(tz=timezone.utc).timestamp() if now is None else now
        used = max(0, int(now) - start)
    elif start and end and end >= start and state in FINISHED_STATES:
        used = end - start
    elif state in PENDING_STATES:
        used = 0
    limit = _num(job.get("time_limit"))
    array_task = _num(job.get("array_task_id"))
    array_job = _num(job.get("array_job_id"))
    job_id = str(_num(job.get("job_id")) or job.get("job_id") or "")
    if array_job and array_task is not None and array_job != _num(job.get("job_id")):
        job_id = f"{array_job}_{array_task}"
    resources = job.get("job_resources") or {}
    nodes = _str(job.get("nodes")) or (_str(resources.get("nodes")) if isinstance(resources, dict) else "")
    exit_code = job.get("exit_code")
    if isinstance(exit_code, dict):  # >= 23.02: {"status": [...], "return_code": {...}, "signal": {...}}
        rc = _num(exit_code.get("return_code"))
        sig = _num((exit_code.get("signal") or {}).get("id")) if isinstance(exit_code.get("signal"), dict) else None
        exit_text = f"{rc or 0}:{sig or 0}"
    elif isinstance(exit_code, int) and not isinstance(exit_code, bool):
        exit_text = f"{exit_code >> 8}:{exit_code & 0x7F}"  # a raw wait status, as scontrol decodes it
    else:
        exit_text = ""
    return JobInfo(
        job_id=job_id,
        name=str(job.get("name") or ""),
        state=state,
        reason=_str(job.get("state_reason")),
        nodes=nodes,
        node_count=_num(job.get("node_count")),
        batch_host=_str(job.get("batch_host")),
        partition=_str(job.get("partition")),
        time_used=used,
        time_limit=limit * 60 if limit is not None else None,  # minutes in every schema
        start_time=_epoch_iso(job.get("start_time")) if start else None,
        end_time=_epoch_iso(job.get("end_time")) if end and state in FINISHED_STATES else None,
        submit_time=_epoch_iso(job.get("submit_time")),
        workdir=_str(job.get("current_working_directory")),
        stdout=_str(job.get("standard_output")),
        stderr=_str(job.get("standard_error")),
        exit_code=exit_text,
        user=_str(job.get("user_name")),
        state_flags=flags,
        source="squeue-json",
    )


def parse_squeue_json(text: str, *, now: float | None = None) -> list[JobInfo]:
    """``squeue --json`` (any schema version) -> jobs. Raises SlurmParseError on non-JSON output."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SlurmParseError(f"squeue --json did not print JSON ({err.msg} at char {err.pos}): {_clip(text)}") from None
    except RecursionError:
        raise SlurmParseError("squeue --json printed JSON nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise SlurmParseError(f"squeue --json printed JSON without a 'jobs' list: {_clip(text)}")
    raw_errors = data.get("errors")
    errors = [e for e in raw_errors if e] if isinstance(raw_errors, list) else []
    if errors and not data["jobs"]:
        details = "; ".join(str(e.get("description") or e.get("error") or e) if isinstance(e, dict) else str(e)
                            for e in errors)
        raise SlurmParseError(f"squeue --json reported errors: {_clip(details)}")
    jobs = []
    for index, job in enumerate(data["jobs"]):
        if not isinstance(job, dict):
            continue
        try:
            jobs.append(job_from_json(job, now=now))
        except (TypeError, ValueError, AttributeError, OverflowError) as err:
            raise SlurmParseError(f"squeue --json: jobs[{index}] is malformed "
                                  f"({type(err).__name__}: {_clip(str(err), 120)})") from None
    return jobs


def squeue_json_version(text: str) -> str | None:
    """The Slurm release that printed a ``squeue --json`` document (``meta.Slurm.release``), if any."""
    try:
        meta = json.loads(text).get("meta") or {}
        slurm = meta.get("Slurm") or meta.get("slurm") or {}
    except (json.JSONDecodeError, RecursionError, AttributeError):
        return None
    release = slurm.get("release") if isinstance(slurm, dict) else None
    return release if isinstance(release, str) else None


# ---- squeue -o -----------------------------------------------------------------------------------

#: The delimiter between squeue -o fields: ASCII unit separator (cannot appear in a node name, state,
#: reason, partition or time; the one free-text field, the job name, is printed last).
SQUEUE_SEP = "\x1f"
SQUEUE_FIELDS: tuple[tuple[str, str], ...] = (
    ("job_id", "%i"), ("state", "%T"), ("reason", "%r"), ("batch_host", "%B"), ("node_count", "%D"),
    ("time_used", "%M"), ("time_limit", "%l"), ("start_time", "%S"), ("submit_time", "%V"),
    ("partition", "%P"), ("user", "%u"), ("nodes", "%N"), ("workdir", "%Z"), ("name", "%j"),
)
SQUEUE_FORMAT = SQUEUE_SEP.join(code for _, code in SQUEUE_FIELDS)


def parse_squeue_format(text: str) -> list[JobInfo]:
    """``squeue -h -o SQUEUE_FORMAT`` output -> jobs."""
    jobs = []
    n = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split(SQUEUE_SEP, n - 1)
        if len(cells) != n:
            raise SlurmParseError(f"squeue printed a line with {len(cells)} of {n} fields: {_clip(line)}")
        row = dict(zip((name for name, _ in SQUEUE_FIELDS), cells))
        state, detail = normalize_state(row["state"])
        pending = state in PENDING_STATES
        jobs.append(JobInfo(
            job_id=row["job_id"].strip(),
            name=row["name"],
            state=state,
            reason=_clean(row["reason"]) or detail,
            nodes="" if pending else _clean(row["nodes"]),
            node_count=_int(row["node_count"]),
            batch_host="" if pending else _clean(row["batch_host"]),
            partition=_clean(row["partition"]),
            time_used=parse_duration(row["time_used"]),
            time_limit=parse_duration(row["time_limit"]),
            start_time=None if pending else _timestamp_text(row["start_time"]),
            submit_time=_timestamp_text(row["submit_time"]),
            workdir=_clean(row["workdir"]),
            user=_clean(row["user"]),
            source="squeue",
        ))
    return jobs
