"""``sacct``: ``--parsable2``, ``--format`` widths, ``-X``, the jobcomp (``-c``) mode."""

from __future__ import annotations

import datetime as _dt
import getopt
from dataclasses import dataclass
from typing import Any

from r1console.demo.slurm.common import (
    _FROM_COMPACT,
    _SACCT_FIELDS,
    _SACCT_WIDTH,
    _hms,
    _limit_hms,
    _mem_text,
    _parse_sacct_time,
    _ts,
)
from r1console.demo.slurm.model import SimJob, SimStep


@dataclass
class _SacctOptions:
    steps: bool = True                     # -X: allocations only
    parsable: int = 0                      # -p: 1 (trailing delimiter), -P: 2
    header: bool = True
    fields: list[str] | None = None        # --format, with optional %width
    ids: list[str] | None = None
    start: float | None = None
    end: float | None = None
    users: set[str] | None = None
    all_users: bool = False
    states: set[str] | None = None
    delim: str = "|"


_fields = ("fields", lambda v: [f.strip() for f in v.split(",") if f.strip()])
_ids = ("ids", lambda v: [i.strip() for i in v.split(",") if i.strip()])
_users = ("users", lambda v: {u.strip() for u in v.split(",")})
_states = ("states", lambda v: {_FROM_COMPACT.get(s.strip().upper(), s.strip().upper()) for s in v.split(",")})
# option -> (attribute of _SacctOptions, its value: a constant, or how the option's argument is read)
_SACCT_OPTIONS: dict[str, tuple[str, Any]] = {
    "-X": ("steps", False), "--allocations": ("steps", False),
    "-P": ("parsable", 2), "--parsable2": ("parsable", 2), "-p": ("parsable", 1), "--parsable": ("parsable", 1),
    "-n": ("header", False), "--noheader": ("header", False),
    "-o": _fields, "--format": _fields, "-j": _ids, "--jobs": _ids,
    "-E": ("end", _parse_sacct_time), "--endtime": ("end", _parse_sacct_time),
    "-u": _users, "--user": _users, "-a": ("all_users", True), "--allusers": ("all_users", True),
    "-s": _states, "--state": _states, "--delimiter": ("delim", str),
}


def _sacct_options(args: list[str]) -> _SacctOptions | str:
    """The options sacct is given, or its error for an invalid start time."""
    pairs, _ = getopt.gnu_getopt(args, "XPpno:j:S:E:u:acs:LD", [
        "allocations", "parsable2", "parsable", "noheader", "format=", "jobs=", "starttime=", "endtime=",
        "user=", "allusers", "completion", "state=", "allclusters", "duplicates", "delimiter="])
    opts = _SacctOptions()
    for key, value in pairs:
        if key in ("-S", "--starttime"):
            opts.start = _parse_sacct_time(value)
            if opts.start is None:
                return f"sacct: error: Invalid time specification (pos=0): {value}\n"
        elif key in _SACCT_OPTIONS:
            name, read = _SACCT_OPTIONS[key]
            setattr(opts, name, read(value) if callable(read) else read)
    return opts


class SacctCommand:
    """The ``sacct`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _sacct(self, args: list[str]) -> tuple[int, str, str]:
        opts = _sacct_options(args)
        if isinstance(opts, str):
            return 1, "", opts
        fields = opts.fields or ["JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode"]
        for name in fields:
            if name.split("%")[0].lower() not in _SACCT_FIELDS:
                return 1, "", f'sacct: error: Invalid field requested: "{name}"\n'
        now = self.now()
        rows: list[tuple[SimJob, SimStep | None]] = []
        for job in self._sacct_jobs(opts, now):
            rows.append((job, None))
            if opts.steps:
                ordered = sorted(job.steps, key=lambda s: (s.step_id >= 0, s.step_id))
                rows += [(job, s) for s in ordered]
        if opts.parsable:
            out = self._sacct_parsable(fields, rows, opts, now)
        else:
            out = self._sacct_columns(fields, rows, opts.header, now)
        return 0, "".join(line + "\n" for line in out), ""

    def _sacct_jobs(self, opts: _SacctOptions, now: float) -> list[SimJob]:
        """The jobs sacct reports: by id, or those of the time window (today by default) and users."""
        jobs = sorted(self.jobs.values(), key=lambda j: j.job_id)
        users = opts.users
        if opts.ids is not None:
            wanted = {i.split(".")[0].split("_")[0] for i in opts.ids}
            jobs = [j for j in jobs if str(j.job_id) in wanted]
        else:
            since = opts.start if opts.start is not None else _dt.datetime.combine(_dt.date.fromtimestamp(now),
                                                                                    _dt.time()).timestamp()
            until = opts.end if opts.end is not None else now
            if not opts.all_users:
                users = users or {self.user}
            jobs = [j for j in jobs if (j.end if j.end is not None else now) >= since and j.submit <= until]
        if users is not None and not opts.all_users:
            jobs = [j for j in jobs if j.user in users]
        if opts.states is not None:
            jobs = [j for j in jobs if j.state in opts.states]
        return jobs

    def _sacct_parsable(self, fields: list[str], rows: list[tuple[SimJob, SimStep | None]], opts: _SacctOptions,
                        now: float) -> list[str]:
        """``-p`` / ``-P``: the values joined by the delimiter (``-p`` ends every line with one)."""
        names = [f.split("%")[0] for f in fields]
        sep = opts.delim
        tail = sep if opts.parsable == 1 else ""
        out = [sep.join(_SACCT_FIELDS[n.lower()] for n in names) + tail] if opts.header else []
        for job, step in rows:
            out.append(sep.join(self._sacct_value(job, step, n.lower(), now) for n in names) + tail)
        return out

    def _sacct_columns(self, fields: list[str], rows: list[tuple[SimJob, SimStep | None]], header: bool,
                       now: float) -> list[str]:
        """The default table: fixed widths (``%N`` overrides), values cut with ``+``, JobID left-aligned."""
        names = [f.split("%")[0] for f in fields]
        widths = [int(f.split("%")[1]) if "%" in f and f.split("%")[1].isdigit()
                  else _SACCT_WIDTH.get(n.lower(), 10) for f, n in zip(fields, names)]
        out: list[str] = []
        if header:
            out.append(" ".join(_SACCT_FIELDS[n.lower()][:w].rjust(w) if n.lower() != "jobid"
                                else _SACCT_FIELDS[n.lower()][:w].ljust(w) for n, w in zip(names, widths)) + " ")
            out.append(" ".join("-" * w for w in widths) + " ")
        for job, step in rows:
            cells = []
            for n, w in zip(names, widths):
                value = self._sacct_value(job, step, n.lower(), now)
                value = value if len(value) <= w else value[:w - 1] + "+"
                cells.append(value.ljust(w) if n.lower() == "jobid" else value.rjust(w))
            out.append(" ".join(cells) + " ")
        return out

    def _sacct_value(self, job: SimJob, step: SimStep | None, name: str, now: float) -> str:
        if step is not None:
            sid = "batch" if step.step_id < 0 else str(step.step_id)
            elapsed = max(0.0, (step.end if step.end is not None else now) - step.start)
            values = {"jobid": f"{job.job_id}.{sid}", "jobidraw": f"{job.job_id}.{sid}", "jobname": step.name,
                      "state": step.state, "exitcode": step.exit_code, "partition": "", "nnodes": "1",
                      "nodelist": step.node, "elapsed": _hms(elapsed), "elapsedraw": str(int(elapsed)),
                      "start": _ts(step.start), "end": _ts(step.end), "submit": _ts(step.start),
                      "timelimit": "", "user": "", "reason": "", "workdir": "", "account": "",
                      "alloccpus": str(job.cpus_per_task), "ncpus": str(job.cpus_per_task)}
            return values.get(name, "")
        pending = job.state == "PENDING"
        state = job.state + (f" by {job.cancelled_by}" if job.state == "CANCELLED" and job.cancelled_by is not None
                             else "")
        exit_code = job.exit_code if job.state not in ("CANCELLED", "TIMEOUT") else "0:0"
        elapsed = job.elapsed(now)
        values = {
            "jobid": str(job.job_id), "jobidraw": str(job.job_id), "jobname": job.name, "state": state,
            "exitcode": exit_code, "derivedexitcode": "0:0", "reason": job.reason or "None",
            "partition": job.partition, "nnodes": str(job.num_nodes),
            "nodelist": "None assigned" if not job.nodes else job.nodelist,
            "elapsed": _hms(elapsed), "elapsedraw": str(int(elapsed)), "timelimit": _limit_hms(job.time_limit_s),
            "timelimitraw": "UNLIMITED" if job.time_limit_s is None else str(job.time_limit_s // 60),
            "submit": _ts(job.submit), "eligible": _ts(job.submit),
            "start": "Unknown" if pending or job.start is None else _ts(job.start), "end": _ts(job.end),
            "workdir": job.workdir, "user": job.user, "uid": str(job.uid), "group": job.user, "gid": str(job.uid),
            "account": "", "alloccpus": "0" if pending else str(job.cpus), "ncpus": str(job.cpus),
            "alloctres": "" if pending else job.tres(alloc=True), "reqtres": job.tres(alloc=False),
            "cluster": self.cluster_name, "qos": "normal", "comment": job.comment, "priority": "1",
            "reqmem": _mem_text(job.mem_mb), "reqnodes": str(job.num_nodes), "constraints": job.features,
        }
        return values.get(name, "")
