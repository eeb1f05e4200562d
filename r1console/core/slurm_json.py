"""``sacct --json`` and slurmrestd job JSON -> :class:`JobInfo` (Slurm 21.08 -> 25.05).

Two document shapes, both ``{"meta": …, "jobs": [ … ], "errors": […]}``:

* accounting (``sacct --json``, slurmrestd ``/slurmdb/v0.0.NN/job(s)``): the state is under
  ``state.current`` (a string up to 23.02 / dbv0.0.39, a flag list from data_parser v0.0.40),
  times under ``time`` (``limit`` minutes, a plain int or ``{"set", "infinite", "number"}``);
* controller (``squeue --json``, slurmrestd ``/slurm/v0.0.NN/job(s)``): ``job_state`` flat, parsed
  by :func:`r1console.core.slurm_parse.job_from_json`.

Which Slurm printed it: ``meta.Slurm.release`` / ``meta.slurm.release`` (:func:`slurm_release`).
Slurm before 23.02 (openapi dbv0.0.37/38) prints accounting JSON whose exit code does not match
the job (the real 22.05.9 capture of a FAILED 4-node job says ``SUCCESS``, return code 0), so
:func:`json_trustworthy` says to use ``sacct -P`` there.

Pure; every malformed input raises :class:`SlurmParseError` (never KeyError/TypeError).
"""

from __future__ import annotations

import json
import re

from r1console.core.slurm_parse import (
    ACTIVE_STATES,
    FINISHED_STATES,
    PENDING_STATES,
    JobInfo,
    SlurmParseError,
    _clip,
    _epoch_iso,
    _num,
    _state_from_json,
    _str,
    job_from_json,
)

TRUSTED_FROM = (23, 2)
_RELEASE = re.compile(r"^(\d+)\.(\d+)")


def _load(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise SlurmParseError(f"{what} did not print JSON ({getattr(err, 'msg', err)}): {_clip(text)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise SlurmParseError(f"{what} printed JSON without a 'jobs' list: {_clip(text)}")
    errors = [e for e in data.get("errors") or [] if e] if isinstance(data.get("errors"), list) else []
    if errors and not data["jobs"]:
        details = "; ".join(str(e.get("description") or e.get("error") or e) if isinstance(e, dict) else str(e)
                            for e in errors)
        raise SlurmParseError(f"{what} reported errors: {_clip(details)}")
    return data


def slurm_release(data: dict) -> tuple[int, int] | None:
    """(major, minor) of the Slurm that printed ``data`` (a parsed document), if it says."""
    meta = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        return None
    slurm = meta.get("Slurm") or meta.get("slurm")
    if not isinstance(slurm, dict):
        return None
    release = slurm.get("release")
    if isinstance(release, str):
        m = _RELEASE.match(release.strip())
        if m:
            return int(m.group(1)), int(m.group(2))
    version = slurm.get("version")
    if isinstance(version, dict):
        major, minor = _plain_int(version.get("major")), _plain_int(version.get("minor"))
        if major is not None and minor is not None:
            return major, minor
    return None


def _plain_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.strip().isdecimal():
        return int(value)
    return None


def json_trustworthy(release: tuple[int, int] | None) -> bool:
    """Whether this Slurm's accounting JSON can be used instead of ``sacct -P`` (>= 23.02)."""
    return release is not None and release >= TRUSTED_FROM


def parse_version_output(text: str) -> tuple[int, int] | None:
    """``sacct --version`` -> (major, minor): ``slurm 23.02.6`` / ``slurm-wlm 22.05.8``."""
    m = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _exit_text(value) -> str:
    if not isinstance(value, dict):
        return ""
    rc = _num(value.get("return_code"))
    signal = value.get("signal")
    sig = _num(signal.get("id")) if isinstance(signal, dict) else None
    return f"{rc or 0}:{sig or 0}"


def _gpus(tres) -> int | None:
    if not isinstance(tres, dict) or not isinstance(tres.get("allocated"), list):
        return None
    total = None
    for item in tres["allocated"]:
        if isinstance(item, dict) and item.get("type") == "gres" and str(item.get("name") or "").startswith("gpu"):
            count = _num(item.get("count"))
            if count is not None:
                total = (total or 0) + count
    return total


def job_from_accounting(job: dict) -> JobInfo:
    """One job of an accounting document (``state.current``, ``time.*``)."""
    state_obj = job.get("state")
    if not isinstance(state_obj, dict):
        raise SlurmParseError(f"job {_clip(str(job.get('job_id')), 40)}: 'state' is not an object")
    state, flags = _state_from_json(state_obj.get("current"))
    times: dict = job["time"] if isinstance(job.get("time"), dict) else {}
    start, end = _num(times.get("start")), _num(times.get("end"))
    elapsed = _num(times.get("elapsed"))
    limit = _num(times.get("limit"))
    array: dict = job["array"] if isinstance(job.get("array"), dict) else {}
    job_id = str(_num(job.get("job_id")) or _str(job.get("job_id")))
    array_job, array_task = _num(array.get("job_id")), _num(array.get("task_id"))
    if array_job and array_task is not None:  # the task whose id is the array's own shows as <id>_<task> too
        job_id = f"{array_job}_{array_task}"
    reason = _str(state_obj.get("reason"))
    return JobInfo(
        job_id=job_id,
        name=_str(job.get("name")),
        state=state,
        reason="" if reason == "None" else reason,
        nodes="" if state in PENDING_STATES else _str(job.get("nodes")).replace("None assigned", ""),
        node_count=_num(job.get("allocation_nodes")),
        partition=_str(job.get("partition")),
        time_used=elapsed if elapsed is not None else (0 if state in PENDING_STATES else None),
        time_limit=limit * 60 if limit is not None else None,
        start_time=_epoch_iso(start) if start else None,
        end_time=_epoch_iso(end) if end and state in FINISHED_STATES else None,
        submit_time=_epoch_iso(times.get("submission")),
        workdir=_str(job.get("working_directory")),
        stdout=_str(job.get("stdout_expanded") or job.get("stdout")),
        stderr=_str(job.get("stderr_expanded") or job.get("stderr")),
        exit_code=_exit_text(job.get("exit_code")),
        user=_str(job.get("user")),
        state_flags=flags,
        source="sacct-json",
        gpus=_gpus(job.get("tres")),
    )


def parse_jobs_json(text: str, *, what: str = "sacct --json", now: float | None = None) -> list[JobInfo]:
    """Jobs of either document shape (accounting or controller), any schema 0.0.37 -> 0.0.43."""
    data = _load(text, what)
    jobs: list[JobInfo] = []
    for index, job in enumerate(data["jobs"]):
        if not isinstance(job, dict):
            raise SlurmParseError(f"{what}: jobs[{index}] is not an object")
        try:
            if "state" in job and "job_state" not in job:
                jobs.append(job_from_accounting(job))
            else:
                info = job_from_json(job, now=now)
                if info.state in ACTIVE_STATES | PENDING_STATES | FINISHED_STATES or info.job_id:
                    jobs.append(info)
        except SlurmParseError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError, OSError) as err:
            raise SlurmParseError(f"{what}: jobs[{index}] is malformed ({type(err).__name__}: {_clip(str(err), 120)})") \
                from None
    return jobs


def document_release(text: str) -> tuple[int, int] | None:
    try:
        return slurm_release(json.loads(text))
    except (json.JSONDecodeError, RecursionError):
        return None


__all__ = ["TRUSTED_FROM", "document_release", "job_from_accounting", "json_trustworthy", "parse_jobs_json",
           "parse_version_output", "slurm_release"]
