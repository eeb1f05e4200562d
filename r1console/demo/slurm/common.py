"""Constants, time and number formats, and format-spec parsing shared by the simulated SLURM commands."""

from __future__ import annotations

import datetime as _dt
import socket
import time
from typing import Any

from r1console.core.slurm_parse import format_duration
from r1console.core.slurm_states import ACTIVE_STATES, PENDING_STATES
from r1console.core.slurm_states import COMPACT as _STATE_OF_CODE

INVALID_JOB_ID = "slurm_load_jobs error: Invalid job id specified\n"
# The states come from the one table (core.slurm_states): a job slurmctld still holds as pending or
# active is what squeue lists by default and scancel can end; COMPACT is squeue's %t code of a state.
ACTIVE = PENDING_STATES | ACTIVE_STATES
COMPACT = {state: code for code, state in _STATE_OF_CODE.items()}
KILL_WAIT_S = 30  # slurm.conf KillWait (srun prints "Waiting up to KillWait+2 seconds")


def _ts(epoch: float | None, empty: str = "Unknown") -> str:
    if epoch is None:
        return empty
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%dT%H:%M:%S")


def _hms(seconds: float | None) -> str:
    """scontrol RunTime / sacct Elapsed: ``00:01:27``, ``1-00:00:00``."""
    s = max(0, int(seconds or 0))
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{sec:02d}"


def _limit_hms(seconds: int | None) -> str:
    return "UNLIMITED" if seconds is None else _hms(seconds)


def _limit_squeue(seconds: int | None) -> str:
    return "UNLIMITED" if seconds is None else format_duration(seconds)


def _num(value: int | float | None, *, infinite: bool = False) -> dict:
    """>= 23.02 JSON number: ``{"set": bool, "infinite": bool, "number": int}``."""
    return {"set": value is not None or infinite, "infinite": infinite, "number": int(value or 0)}


def _mem_text(mb: int | None) -> str:
    if not mb:
        return "0"
    if mb % (1024 * 1024) == 0:
        return f"{mb // (1024 * 1024)}T"
    if mb % 1024 == 0:
        return f"{mb // 1024}G"
    return f"{mb}M"


def _bound_socket() -> socket.socket:
    """A TCP port on 127.0.0.1 that is bound but never listens: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _duration(text: str) -> int | None:
    from r1console.core.slurm_parse import parse_duration

    return parse_duration(text)


def _plan(profile: Any, gpu_name: str) -> Any:
    """The planner's numbers for the profile on the cluster's GPU (None: no GPUs, or a model or GPU
    the planner does not know; GpuModel then falls back to fractions of the GPU)."""
    if profile is None or not profile.slurm.gpus_per_node:
        return None
    from r1console.core.planner import builtin_model_for, make_plan

    model = builtin_model_for(profile.model.path)
    if model is None:
        return None
    for gpu in [w.lower() for w in gpu_name.split() if w.upper() != "NVIDIA"] + [None]:
        try:
            return make_plan(profile, model, gpu=gpu)
        except Exception:  # R1Error: unknown GPU word; try the next one, then the profile's constraint
            continue
    return None


def _parse_sacct_time(text: str) -> float | None:
    text = text.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%m/%d/%y", "%m/%d"):
        try:
            when = _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt in ("%m/%d",):
            when = when.replace(year=_dt.date.today().year)
        return when.timestamp()
    if text.lower() == "now":
        return time.time()
    return None


_FROM_COMPACT = _STATE_OF_CODE
_SQUEUE_HEADERS = {
    "i": "JOBID", "A": "JOBID", "j": "NAME", "T": "STATE", "t": "ST", "r": "REASON", "R": "NODELIST(REASON)",
    "B": "EXEC_HOST", "D": "NODES", "M": "TIME", "l": "TIME_LIMIT", "L": "TIME_LEFT", "S": "START_TIME",
    "e": "END_TIME", "V": "SUBMIT_TIME", "P": "PARTITION", "u": "USER", "N": "NODELIST", "Z": "WORK_DIR",
    "C": "CPUS", "o": "COMMAND", "a": "ACCOUNT", "q": "QOS", "b": "TRES_PER_NODE", "f": "FEATURES",
    "m": "MIN_MEMORY", "Q": "PRIORITY", "k": "COMMENT", "U": "UID", "g": "GROUP",
}
_SACCT_FIELDS = {n.lower(): n for n in (
    "JobID", "JobIDRaw", "JobName", "State", "ExitCode", "DerivedExitCode", "Reason", "Partition", "NNodes",
    "NodeList", "Elapsed", "ElapsedRaw", "Timelimit", "TimelimitRaw", "Submit", "Eligible", "Start", "End",
    "WorkDir", "User", "UID", "Group", "GID", "Account", "AllocCPUS", "NCPUS", "AllocTRES", "ReqTRES", "Cluster",
    "QOS", "Comment", "Priority", "ReqMem", "ReqNodes", "Constraints")}
_SACCT_WIDTH = {"jobid": 12, "jobidraw": 12, "exitcode": 8, "submit": 19, "start": 19, "end": 19, "eligible": 19,
                "nodelist": 15, "workdir": 20, "alloctres": 30, "reqtres": 30}
_SMI_FIELDS = {  # query field -> unit printed without "nounits"
    "index": "", "name": "", "uuid": "", "pci.bus_id": "", "memory.used": "MiB", "memory.total": "MiB",
    "memory.free": "MiB", "utilization.gpu": "%", "utilization.memory": "%", "temperature.gpu": "",
    "power.draw": "W", "power.limit": "W", "driver_version": "", "count": "", "persistence_mode": "",
    "pstate": "", "serial": "",
}


def _parse_format(fmt: str) -> list[tuple[str, str, bool, int | None]]:
    """squeue ``-o``: [(literal, code, right_justify, width)], the literal printed before the field."""
    import re

    spec: list[tuple[str, str, bool, int | None]] = []
    pos = 0
    literal = ""
    for m in re.finditer(r"%(%|(\.)?(\d+)?([A-Za-z]))", fmt):
        literal += fmt[pos:m.start()]
        pos = m.end()
        if m.group(1) == "%":
            literal += "%"
            continue
        if m.group(4) not in _SQUEUE_HEADERS and m.group(4) not in "xn":
            raise ValueError(m.group(0))
        spec.append((literal, m.group(4), bool(m.group(2)), int(m.group(3)) if m.group(3) else None))
        literal = ""
    spec.append((literal + fmt[pos:], "", False, None))
    return spec


def _render_format(spec: list[tuple[str, str, bool, int | None]], value) -> str:
    out = []
    for literal, code, right, width in spec:
        out.append(literal)
        if not code:
            continue
        text = value(code)
        if width is not None:
            text = text[:width]
            text = text.rjust(width) if right else text.ljust(width)
        out.append(text)
    return "".join(out)
