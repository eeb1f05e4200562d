"""Pure parsers for SLURM client output, and the job state model.

Everything here works on text that SLURM printed; nothing runs a command. The SLURM client
(``r1console.adapters.slurm_client``) runs the commands and hands their stdout to these functions.

Formats handled (verbatim captures from SLURM 22.05 are the unit-test fixtures):

* ``squeue --json`` in both schema shapes: 21.08–22.05 (openapi v0.0.37/38: ``job_state`` a string,
  times and counts plain ints) and ≥ 23.02 (data_parser v0.0.39+: ``job_state`` a flag array such as
  ``["PENDING", "REQUEUED"]``, numbers as ``{"set": bool, "infinite": bool, "number": int}``);
* ``squeue -h -o FORMAT`` with :data:`SQUEUE_FORMAT` (fields joined by an ASCII unit separator, the
  free-text job name last), for Slurm without the JSON plugin and for cheap one-job polls;
* ``scontrol show job -o`` (``Key=Value`` tokens; values with spaces only in known free-text keys);
* ``sacct -P`` / ``sacct -c -P`` with a header line;
* ``sbatch --parsable`` (``jobid[;cluster]``).

SLURM leaves ``%N`` unexpanded in StdOut/StdErr (scontrol up to 24.11, squeue --json always), so
:meth:`JobInfo.stdout_path` expands the patterns itself from BatchHost.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from itertools import product

from r1console.core.errors import R1Error
from r1console.core.fmt import slurm_duration
from r1console.core.slurm_filenames import expand_filename
from r1console.core.slurm_states import ACTIVE_STATES, FINISHED_STATES, PENDING_STATES, normalize_state
from r1console.core.slurm_states import BASE_STATES as _BASE_STATES
from r1console.core.textnum import is_ascii_int

# ---- states (r1console/core/slurm_states.py) ------------------------------------------------------

_EMPTY = {"", "(null)", "n/a", "N/A", "None", "none", "None assigned", "Unknown", "unknown"}


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


class SlurmParseError(R1Error):
    """SLURM printed something this parser does not understand; the message quotes it."""


def _clip(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


# ---- small value parsers -------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$")


def parse_duration(text: str | None) -> int | None:
    """SLURM durations -> seconds: ``1-02:03:04``, ``02:03:04``, ``3:04``, ``5`` (minutes).

    ``UNLIMITED``, ``INVALID``, ``N/A``, ``Partition_Limit`` and empty -> None.
    """
    if text is None:
        return None
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INVALID", "N/A", "NONE", "PARTITION_LIMIT", "INFINITE"):
        return None
    if is_ascii_int(text):
        return int(text) * 60  # a bare number is minutes (sbatch --time=5, squeue %l on some versions)
    m = re.match(r"^(\d+)-(\d+)$", text)  # days-hours
    if m:
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600
    m = re.match(r"^(\d+)-(\d+):(\d+)$", text)  # days-hours:minutes
    if m:
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60
    m = _DURATION.match(text)
    if not m:
        return None
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


format_duration = slurm_duration  # the one SLURM duration format lives in core/fmt.py


def _timestamp_text(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if text in _EMPTY or text in ("0", "None"):
        return None
    return text


def _clean(text: str | None) -> str:
    if text is None:
        return ""
    text = text.strip()
    return "" if text in _EMPTY else text


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    m = re.match(r"^\s*(\d+)", text)
    return int(m.group(1)) if m else None


# ---- hostlists -----------------------------------------------------------------------------------


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: ``a[1-2],b3`` -> [``a[1-2]``, ``b3``]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_range(body: str) -> list[str]:
    out = []
    for item in body.split(","):
        item = item.strip()
        if not item:
            continue
        if "-" in item:
            lo, hi = item.split("-", 1)
            if not (is_ascii_int(lo) and is_ascii_int(hi)):
                raise SlurmParseError(f"hostlist range [{body}] is not numeric")
            width = len(lo) if lo.startswith("0") else 0
            start, stop = int(lo), int(hi)
            if stop < start or stop - start > 100_000:
                raise SlurmParseError(f"hostlist range [{body}] is not a sane range")
            out.extend(str(n).zfill(width) for n in range(start, stop + 1))
        else:
            out.append(item)
    return out


MAX_HOSTS = 65536  # more than any real job's node list; n[1-100000][1-100000] would be 10**10


def expand_hostlist(expr: str) -> list[str]:
    """SLURM hostlist -> hostnames, in SLURM's order: ``node[1-2,05],gpu-a[1-2]b`` etc."""
    expr = (expr or "").strip()
    if expr in _EMPTY:
        return []
    hosts: list[str] = []
    for part in _split_top(expr):
        pieces: list[list[str]] = []
        pos = 0
        for m in re.finditer(r"\[([^\]]*)\]", part):
            pieces.append([part[pos:m.start()]])
            pieces.append(_expand_range(m.group(1)))
            pos = m.end()
        pieces.append([part[pos:]])
        count = 1
        for piece in pieces:
            count *= len(piece)
        if len(hosts) + count > MAX_HOSTS:
            raise SlurmParseError(f"hostlist {_clip(expr, 80)} names more than {MAX_HOSTS} hosts")
        hosts.extend("".join(combo) for combo in product(*pieces))
    return hosts


# ---- sbatch --------------------------------------------------------------------------------------


def parse_sbatch_parsable(stdout: str) -> tuple[str, str | None]:
    """``sbatch --parsable`` output -> (job_id, cluster or None)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    for line in reversed(lines):
        m = re.match(r"^(\d+(?:_\d+)?)(?:;(\S+))?$", line)
        if m:
            return m.group(1), m.group(2)
    raise SlurmParseError(f"sbatch --parsable printed no job id: {_clip(stdout) or '(nothing)'}")


# ---- squeue --json -------------------------------------------------------------------------------


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


# ---- scontrol show job -o ------------------------------------------------------------------------

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


# ---- sacct -P ------------------------------------------------------------------------------------

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


# ---- error text classification ---------------------------------------------------------------------

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


__all__ = [
    "ACTIVE_STATES", "FINISHED_STATES", "PENDING_STATES", "JobInfo", "SACCT_FIELDS", "SACCT_JOBCOMP_FIELDS",
    "SACCT_SEP", "sacct_select_args",
    "SCONTROL_KEYS", "SQUEUE_FIELDS", "SQUEUE_FORMAT", "SQUEUE_SEP", "SlurmParseError", "SrunProblem",
    "classify_srun_error", "expand_hostlist", "format_duration", "is_accounting_disabled",
    "is_invalid_job_id", "is_json_unsupported", "job_from_json", "job_from_scontrol", "normalize_state",
    "parse_duration", "parse_sacct", "parse_sbatch_parsable", "parse_scontrol_jobs", "parse_scontrol_record",
    "parse_squeue_format", "parse_squeue_json", "squeue_json_version", "tres_gpus", "job_gpus",
]
