"""``sacct``: ``--parsable2``, ``--format`` widths, ``-X``, the jobcomp (``-c``) mode."""

from __future__ import annotations

import datetime as _dt
import getopt

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


class SacctCommand:
    """The ``sacct`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _sacct(self, args: list[str]) -> tuple[int, str, str]:
        opts, _ = getopt.gnu_getopt(args, "XPpno:j:S:E:u:acs:LD", [
            "allocations", "parsable2", "parsable", "noheader", "format=", "jobs=", "starttime=", "endtime=",
            "user=", "allusers", "completion", "state=", "allclusters", "duplicates", "delimiter="])
        steps, parsable, header, fields = True, 0, True, None
        ids, start, end, users, all_users, states, delim = None, None, None, None, False, None, "|"
        for key, value in opts:
            if key in ("-X", "--allocations"):
                steps = False
            elif key in ("-P", "--parsable2"):
                parsable = 2
            elif key in ("-p", "--parsable"):
                parsable = 1
            elif key in ("-n", "--noheader"):
                header = False
            elif key in ("-o", "--format"):
                fields = [f.strip() for f in value.split(",") if f.strip()]
            elif key in ("-j", "--jobs"):
                ids = [i.strip() for i in value.split(",") if i.strip()]
            elif key in ("-S", "--starttime"):
                start = _parse_sacct_time(value)
                if start is None:
                    return 1, "", f"sacct: error: Invalid time specification (pos=0): {value}\n"
            elif key in ("-E", "--endtime"):
                end = _parse_sacct_time(value)
            elif key in ("-u", "--user"):
                users = {u.strip() for u in value.split(",")}
            elif key in ("-a", "--allusers"):
                all_users = True
            elif key in ("-s", "--state"):
                states = {_FROM_COMPACT.get(s.strip().upper(), s.strip().upper()) for s in value.split(",")}
            elif key == "--delimiter":
                delim = value
        fields = fields or ["JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode"]
        for name in fields:
            if name.split("%")[0].lower() not in _SACCT_FIELDS:
                return 1, "", f'sacct: error: Invalid field requested: "{name}"\n'
        now = self.now()
        jobs = sorted(self.jobs.values(), key=lambda j: j.job_id)
        if ids is not None:
            wanted = {i.split(".")[0].split("_")[0] for i in ids}
            jobs = [j for j in jobs if str(j.job_id) in wanted]
        else:
            since = start if start is not None else _dt.datetime.combine(_dt.date.fromtimestamp(now),
                                                                          _dt.time()).timestamp()
            until = end if end is not None else now
            if not all_users:
                users = users or {self.user}
            jobs = [j for j in jobs if (j.end if j.end is not None else now) >= since and j.submit <= until]
        if users is not None and not all_users:
            jobs = [j for j in jobs if j.user in users]
        if states is not None:
            jobs = [j for j in jobs if j.state in states]
        rows: list[tuple[SimJob, SimStep | None]] = []
        for job in jobs:
            rows.append((job, None))
            if steps:
                ordered = sorted(job.steps, key=lambda s: (s.step_id >= 0, s.step_id))
                rows += [(job, s) for s in ordered]
        names = [f.split("%")[0] for f in fields]
        out: list[str] = []
        if parsable:
            sep = delim
            tail = sep if parsable == 1 else ""
            if header:
                out.append(sep.join(_SACCT_FIELDS[n.lower()] for n in names) + tail)
            for job, step in rows:
                out.append(sep.join(self._sacct_value(job, step, n.lower(), now) for n in names) + tail)
        else:
            widths = [int(f.split("%")[1]) if "%" in f and f.split("%")[1].isdigit()
                      else _SACCT_WIDTH.get(n.lower(), 10) for f, n in zip(fields, names)]
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
        return 0, "".join(line + "\n" for line in out), ""

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
