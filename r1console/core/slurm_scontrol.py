"""``scontrol show job -o`` to jobs: ``Key=Value`` tokens (values with spaces only in known free-text
keys), the job's GPUs from its TRES."""

from __future__ import annotations

import re

from r1console.core.slurm_jobinfo import JobInfo
from r1console.core.slurm_states import FINISHED_STATES, PENDING_STATES, normalize_state
from r1console.core.slurm_values import (
    SlurmParseError,
    _clean,
    _clip,
    _int,
    _timestamp_text,
    parse_duration,
)
from r1console.core.textnum import is_ascii_int

#: Keys ``scontrol show job`` prints, in its order (22.05 ``slurm_sprint_job_info``, plus keys that
#: newer releases and optional features add). Only these end a free-text value.
SCONTROL_KEYS = (
    "JobId", "ArrayJobId", "ArrayTaskId", "ArrayTaskThrottle", "HetJobId", "HetJobOffset", "HetJobIdSet",
    "JobName", "UserId", "GroupId", "MCS_label", "Priority", "Nice", "Account", "QOS", "WCKey", "JobState",
    "Reason", "Dependency", "Requeue", "Restarts", "BatchFlag", "Reboot", "ExitCode", "DerivedExitCode",
    "RunTime", "TimeLimit", "TimeMin", "SubmitTime", "EligibleTime", "AccrueTime", "StartTime", "EndTime",
    "Deadline", "PreemptEligibleTime", "PreemptTime", "SuspendTime", "SecsPreSuspend", "LastSchedEval",
    "Scheduler", "Partition", "AllocNode:Sid", "ReqNodeList", "ExcNodeList", "NodeList", "SchedNodeList",
    "BatchHost", "NumNodes", "NumCPUs", "NumTasks", "CPUs/Task", "ReqB:S:C:T", "ReplaceNodes", "TRES",
    "ReqTRES", "AllocTRES", "Socks/Node", "NtasksPerN:B:S:C", "CoreSpec", "MinCPUsNode", "MinMemoryNode",
    "MinMemoryCPU", "MinTmpDiskNode", "Features", "ClusterFeatures", "Prefer", "DelayBoot", "Reservation",
    "OverSubscribe", "Contiguous", "Licenses", "LicensesAlloc", "Network", "Command", "WorkDir",
    "AdminComment", "SystemComment", "Comment", "StdErr", "StdIn", "StdOut", "Power", "TresPerNode",
    "TresPerJob", "TresPerSocket", "TresPerTask", "TresBind", "TresFreq", "CpusPerTres", "MemPerTres",
    "MailUser", "MailType", "Container", "ContainerID", "CpuFreqMin", "CpuFreqMax", "CpuFreqGov",
    "NtasksPerTRES", "BurstBuffer", "BurstBufferState", "Partition", "ResvPorts", "Segment",
    "Nodes", "CPU_IDs", "Mem", "GRES", "JOB_GRES", "KillOInInvalidDependent", "Deadline",
)
#: Keys whose value is free text and may contain spaces (names, paths, comments, commands).
SCONTROL_FREE_TEXT = frozenset({"JobName", "Command", "WorkDir", "StdErr", "StdIn", "StdOut", "Comment",
                                "AdminComment", "SystemComment", "MailUser", "Container"})
_KNOWN = frozenset(SCONTROL_KEYS)
_KEY_AT = re.compile(r"(?:(?<=\s)|^)([A-Za-z][A-Za-z0-9_:/.()\-]*)=")


def parse_scontrol_record(line: str) -> dict[str, str]:
    """One ``scontrol show job -o`` line -> {Key: Value}.

    Values are split at the next `` Key=``; inside a free-text key (JobName, WorkDir, StdOut, ...)
    only a key scontrol really prints ends the value, so ``WorkDir=/a b/c=d StdErr=...`` keeps its space.
    """
    line = line.strip()
    candidates = [(m.start(), m.end(), m.group(1)) for m in _KEY_AT.finditer(line)]
    record: dict[str, str] = {}
    i = 0
    while i < len(candidates):
        start, value_start, key = candidates[i]
        j = i + 1
        if key in SCONTROL_FREE_TEXT:
            while j < len(candidates) and candidates[j][2] not in _KNOWN:
                j += 1
        value_end = candidates[j][0] if j < len(candidates) else len(line)
        value = line[value_start:value_end]
        record[key] = value[:-1] if value.endswith(" ") else value  # one separating space
        i = j
    return record


def _scontrol_records(text: str) -> list[str]:
    """Records from ``-o`` (one per line) or the multi-line form (continuation lines indented)."""
    records: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if raw.startswith("JobId=") or not records:
            records.append(raw.strip())
        else:
            records[-1] += " " + raw.strip()
    return records


def tres_gpus(tres: str | None) -> int | None:
    """GPUs in a TRES string (``cpu=2,node=2,billing=2,gres/gpu=8``): 0 when it lists none, None
    without a TRES string. Typed counts (``gres/gpu:h200=8``) are summed only when the untyped
    total is absent (SLURM lists both)."""
    if tres is None or not tres.strip() or tres.strip() in ("(null)", "N/A"):
        return None
    total, typed = None, 0
    for item in tres.split(","):
        key, _, value = item.strip().partition("=")
        if not is_ascii_int(value):
            continue
        if key == "gres/gpu":
            total = int(value)
        elif key.startswith("gres/gpu:"):
            typed += int(value)
    return total if total is not None else typed


_GPU_REQUEST_KEYS = ("TresPerNode", "TresPerJob", "TresPerTask", "TresPerSocket", "TresBind", "Gres", "GRES",
                     "JOB_GRES", "ReqTRES")


def job_gpus(rec: dict[str, str]) -> int | None:
    """GPUs of a job from ``scontrol show job``: the TRES count when it lists gres/gpu; None (unknown,
    but some) when only the request (``TresPerNode=gres:gpu:4``…) mentions GPUs — TRES lists gres/gpu
    only where AccountingStorageTRES includes it (lab capture 33 does not); 0 when nothing does."""
    counted = tres_gpus(rec.get("AllocTRES") or rec.get("TRES"))
    if counted:
        return counted
    if any("gpu" in (rec.get(key) or "").lower() for key in _GPU_REQUEST_KEYS):
        return None
    return counted


def job_from_scontrol(rec: dict[str, str]) -> JobInfo:
    state, detail = normalize_state(rec.get("JobState", ""))
    user = rec.get("UserId", "")
    user = user.split("(")[0] if user else ""
    array_job, array_task = rec.get("ArrayJobId"), rec.get("ArrayTaskId")
    job_id = rec.get("JobId", "").strip()
    if array_job and array_task and is_ascii_int(array_task):
        job_id = f"{array_job}_{array_task}"
    return JobInfo(
        job_id=job_id,
        name=rec.get("JobName", ""),
        state=state,
        reason=_clean(rec.get("Reason")) or detail,
        nodes=_clean(rec.get("NodeList")),
        node_count=_int(rec.get("NumNodes")),
        batch_host=_clean(rec.get("BatchHost")),
        partition=_clean(rec.get("Partition")),
        time_used=parse_duration(rec.get("RunTime")),
        time_limit=parse_duration(rec.get("TimeLimit")),
        start_time=None if state in PENDING_STATES else _timestamp_text(rec.get("StartTime")),
        end_time=_timestamp_text(rec.get("EndTime")) if state in FINISHED_STATES else None,
        submit_time=_timestamp_text(rec.get("SubmitTime")),
        workdir=_clean(rec.get("WorkDir")),
        stdout=_clean(rec.get("StdOut")),
        stderr=_clean(rec.get("StdErr")),
        exit_code=_clean(rec.get("ExitCode")),
        user=_clean(user),
        source="scontrol",
        gpus=job_gpus(rec),
    )


def parse_scontrol_jobs(text: str) -> list[JobInfo]:
    jobs = []
    for record in _scontrol_records(text):
        rec = parse_scontrol_record(record)
        if "JobId" not in rec:
            raise SlurmParseError(f"scontrol show job printed a line without JobId=: {_clip(record)}")
        jobs.append(job_from_scontrol(rec))
    return jobs
