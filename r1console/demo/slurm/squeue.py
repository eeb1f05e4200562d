"""``squeue``: the default, ``-o``/``-O`` formats and ``--json``."""

from __future__ import annotations

import getopt
import json
from dataclasses import dataclass
from typing import Any

from r1console.core.slurm_parse import format_duration
from r1console.demo.slurm.common import (
    _FROM_COMPACT,
    _SQUEUE_HEADERS,
    ACTIVE,
    COMPACT,
    INVALID_JOB_ID,
    _limit_squeue,
    _mem_text,
    _num,
    _parse_format,
    _render_format,
    _ts,
)
from r1console.demo.slurm.model import SimJob


@dataclass
class _SqueueOptions:
    header: bool = True
    fmt: str | None = None            # -o
    states: set[str] | None = None    # -t, upper case (long names or compact codes, or ALL)
    users: set[str] | None = None
    ids: list[str] | None = None
    parts: set[str] | None = None
    json: bool = False


_UNSUPPORTED = ("-O", "--Format", "--yaml", "-s", "--steps", "-i", "--iterate")
_header = ("header", False)
_fmt = ("fmt", str)
_states = ("states", lambda v: {s.strip().upper() for s in v.split(",") if s.strip()})
_users = ("users", lambda v: {u.strip() for u in v.split(",") if u.strip()})
_ids = ("ids", lambda v: [i.strip() for i in v.split(",") if i.strip()])
_parts = ("parts", lambda v: {p.strip() for p in v.split(",")})
# option -> (attribute of _SqueueOptions, its value: a constant, or how the option's argument is read)
_SQUEUE_OPTIONS: dict[str, tuple[str, Any]] = {
    "-h": _header, "--noheader": _header, "-o": _fmt, "--format": _fmt, "-t": _states, "--states": _states,
    "-u": _users, "--user": _users, "-j": _ids, "--jobs": _ids, "-p": _parts, "--partition": _parts,
    "--json": ("json", True),
}


def _squeue_options(args: list[str], me: str) -> _SqueueOptions | str:
    """The options squeue is given, or its error for one the demo does not emulate."""
    pairs, _ = getopt.gnu_getopt(args, "hj:o:t:u:p:lavrO:S:i:M:w:n:q:A:s", [
        "noheader", "jobs=", "format=", "states=", "user=", "partition=", "long", "all", "json", "me",
        "array", "Format=", "sort=", "iterate=", "clusters=", "nodelist=", "name=", "qos=", "account=",
        "steps", "verbose", "yaml"])
    opts = _SqueueOptions()
    for key, value in pairs:
        if key in _UNSUPPORTED:
            return f"squeue: error: {key} is not supported on the demo cluster\n"
        if key == "--me":
            opts.users = {me}
        elif key in _SQUEUE_OPTIONS:
            name, read = _SQUEUE_OPTIONS[key]
            setattr(opts, name, read(value) if callable(read) else read)
    return opts


class SqueueCommand:
    """The ``squeue`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _squeue(self, args: list[str]) -> tuple[int, str, str]:
        opts = _squeue_options(args, self.user)
        if isinstance(opts, str):
            return 1, "", opts
        jobs = [j for j in self.jobs.values() if self.visible(j)]
        if opts.ids is not None:
            wanted = {job.job_id for job in map(self.job, opts.ids) if job is not None and self.visible(job)}
            if not wanted:
                return 1, "", INVALID_JOB_ID
            jobs = [j for j in jobs if j.job_id in wanted]
        if opts.users is not None:
            jobs = [j for j in jobs if j.user in opts.users]
        if opts.parts is not None:
            jobs = [j for j in jobs if j.partition in opts.parts]
        if opts.json:
            return 0, self._squeue_json(jobs), ""
        if opts.states is None:
            jobs = [j for j in jobs if j.state in ACTIVE]
        elif "ALL" not in opts.states:
            names = {s if s not in _FROM_COMPACT else _FROM_COMPACT[s] for s in opts.states}
            jobs = [j for j in jobs if j.state in names]
        order = {"PENDING": 0, "RUNNING": 1}
        jobs.sort(key=lambda j: (order.get(j.state, 2), j.job_id))
        try:
            spec = _parse_format(opts.fmt or "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R")
        except ValueError as err:
            return 1, "", f"squeue: error: Invalid job format specification: {err}\n"
        now = self.now()
        lines = []
        if opts.header:
            lines.append(_render_format(spec, lambda code: _SQUEUE_HEADERS.get(code, code.upper())))
        for job in jobs:
            lines.append(_render_format(spec, lambda code, job=job: self._squeue_value(job, code, now)))
        return 0, "".join(line + "\n" for line in lines), ""

    def _squeue_value(self, job: SimJob, code: str, now: float) -> str:
        pending = job.state == "PENDING"
        reason_style = pending or job.state in ("TIMEOUT", "FAILED", "OUT_OF_MEMORY", "DEADLINE")
        values = {
            "i": str(job.job_id), "A": str(job.job_id), "j": job.name, "T": job.state,
            "t": COMPACT.get(job.state, job.state[:2]), "r": job.reason or "None",
            "R": f"({job.reason or 'None'})" if reason_style or not job.nodes else job.nodelist,
            "B": job.batch_host if not pending and job.batch_host else "n/a",
            "D": str(job.num_nodes), "M": format_duration(int(job.elapsed(now))),
            "l": _limit_squeue(job.time_limit_s),
            "L": ("UNLIMITED" if job.time_limit_s is None else
                  format_duration(max(0, int(job.time_limit_s - job.elapsed(now))))),
            "S": _ts(job.start, "N/A") if not pending else "N/A", "e": _ts(job.end, "N/A"),
            "V": _ts(job.submit), "P": job.partition, "u": job.user, "N": job.nodelist,
            "Z": job.workdir, "C": str(job.cpus), "o": job.command, "a": "(null)", "q": "normal",
            "b": f"gres/gpu:{job.gpus_per_node}" if job.gpus_per_node else "N/A",
            "f": job.features or "(null)", "m": _mem_text(job.mem_mb), "Q": str(4294901759 - job.job_id % 1000),
            "k": job.comment or "(null)", "U": str(job.uid), "g": job.user, "x": "", "n": "",
        }
        if code not in values:
            raise ValueError(code)
        return values[code]

    def _squeue_json(self, jobs: list[SimJob]) -> str:
        now = self.now()
        payload = {
            "jobs": [self._job_json(j, now) for j in sorted(jobs, key=lambda j: j.job_id)],
            "last_backfill": _num(int(now) - 17), "last_update": _num(int(now) - 1),
            "meta": {"plugin": {"type": "openapi/slurmctld", "name": "Slurm OpenAPI slurmctld",
                                "data_parser": "data_parser/v0.0.40", "accounting_storage": "slurmdbd"},
                     "client": {"source": "/dev/pts/0", "user": self.user, "group": self.user},
                     "command": ["squeue", "--json"],
                     "slurm": {"version": {"major": "23", "micro": "1", "minor": "11"}, "release": "23.11.1",
                               "cluster": self.cluster_name}},
            "errors": [], "warnings": [],
        }
        return json.dumps(payload, indent=2) + "\n"

    def _job_json(self, job: SimJob, now: float) -> dict:
        pending = job.state == "PENDING"
        expected_end = (job.start + job.time_limit_s) if job.start is not None and job.time_limit_s else None
        end = job.end if job.end is not None else (expected_end if not pending else None)
        flags = [job.state] if job.state else ["PENDING"]
        return {
            "account": "", "accrue_time": _num(int(job.submit)), "admin_comment": "",
            "array_job_id": _num(0), "array_task_id": {"set": False, "infinite": False, "number": 0},
            "array_max_tasks": 0, "array_task_string": "", "association_id": 0, "batch_features": "",
            "batch_flag": True, "batch_host": job.batch_host if not pending else "",
            "flags": ["TRES_STR_CALC"], "burst_buffer": "", "burst_buffer_state": "",
            "cluster": self.cluster_name, "cluster_features": "", "command": job.command, "comment": job.comment,
            "container": "", "contiguous": False, "core_spec": None, "thread_spec": None,
            "cores_per_socket": None, "billable_tres": float(job.cpus), "cpus_per_task": job.cpus_per_task,
            "cpu_frequency_minimum": None, "cpu_frequency_maximum": None, "cpu_frequency_governor": None,
            "cpus_per_tres": "", "deadline": {"set": False, "infinite": False, "number": 0}, "delay_boot": 0,
            "dependency": "", "derived_exit_code": 0, "eligible_time": _num(int(job.submit)),
            "end_time": _num(int(end) if end else 0),
            "excluded_nodes": "",
            "exit_code": _exit_code_json(job.exit_code),
            "features": job.features, "federation_origin": "", "federation_siblings_active": "",
            "federation_siblings_viable": "",
            "gres_detail": [f"gpu:{job.gpus_per_node}(IDX:0-{job.gpus_per_node - 1})"]
            if job.gpus_per_node and job.state == "RUNNING" else [],
            "group_id": job.uid, "group_name": job.user, "job_id": job.job_id,
            "job_resources": {} if pending or not job.nodes else _job_resources_json(job),
            "job_state": flags, "last_sched_evaluation": _num(int(job.start or job.submit)),
            "licenses": "", "max_cpus": 0, "max_nodes": 0, "mcs_label": "", "memory_per_tres": "",
            "name": job.name, "nodes": job.nodelist if not pending else "", "nice": None,
            "tasks_per_core": None, "tasks_per_node": job.ntasks_per_node, "tasks_per_socket": None,
            "tasks_per_board": 0, "cpus": job.cpus, "node_count": _num(job.num_nodes),
            "tasks": job.num_nodes * job.ntasks_per_node, "het_job_id": 0, "het_job_id_set": "",
            "het_job_offset": 0, "partition": job.partition, "prefer": "",
            "memory_per_node": _num(job.mem_mb) if job.mem_mb else None, "memory_per_cpu": None,
            "minimum_cpus_per_node": job.cpus_per_task, "minimum_tmp_disk_per_node": 0,
            "preempt_time": {"set": False, "infinite": False, "number": 0},
            "pre_sus_time": {"set": False, "infinite": False, "number": 0},
            "priority": _num(4294901759 - job.job_id % 1000), "profile": None, "qos": "normal",
            "reboot": False, "required_nodes": "", "requeue": True,
            "resize_time": {"set": False, "infinite": False, "number": 0}, "restart_cnt": 0, "resv_name": "",
            "shared": None if not job.exclusive else "none",
            "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0,
            "sockets_per_node": None, "start_time": _num(int(job.start) if job.start else 0),
            "state_description": "", "state_reason": job.reason or "None",
            "standard_error": job.raw_pattern(job.stderr_pattern), "standard_input": "/dev/null",
            "standard_output": job.raw_pattern(job.stdout_pattern), "submit_time": _num(int(job.submit)),
            "suspend_time": {"set": False, "infinite": False, "number": 0}, "system_comment": "",
            "time_limit": _num(job.time_limit_s // 60 if job.time_limit_s is not None else 0,
                               infinite=job.time_limit_s is None),
            "time_minimum": 0, "threads_per_core": None, "tres_bind": "", "tres_freq": "", "tres_per_job": "",
            "tres_per_node": f"gres/gpu:{job.gpus_per_node}" if job.gpus_per_node else "",
            "tres_per_socket": "", "tres_per_task": "", "tres_req_str": job.tres(alloc=False),
            "tres_alloc_str": job.tres(alloc=True) if not pending else "", "user_id": job.uid,
            "user_name": job.user, "wckey": "", "current_working_directory": job.workdir,
        }


def _exit_code_json(exit_code: str) -> dict:
    """``"0:15"`` -> squeue --json's ``exit_code``: status flags, return code, signal."""
    rc, _, sig = exit_code.partition(":")
    signal_id = int(sig or 0)
    status = ["SUCCESS"] if rc == "0" and not signal_id else (["SIGNALED"] if signal_id else ["ERROR"])
    return {"status": status, "return_code": _num(int(rc or 0)),
            "signal": {"id": {"set": bool(signal_id), "infinite": False, "number": signal_id},
                       "name": "SIGTERM" if signal_id == 15 else ""}}


def _job_resources_json(job: SimJob) -> dict:
    """The allocation of a job that has nodes: whole nodes, its cores and memory on each."""
    return {"nodes": job.nodelist, "allocated_cores": job.cpus, "allocated_hosts": len(job.nodes),
            "allocated_nodes": [{"sockets": {"0": {"cores": {"0": "allocated"}}}, "nodename": n,
                                 "cpus_used": job.cpus_per_task, "memory_used": 0,
                                 "memory_allocated": job.mem_mb or 0} for n in job.nodes]}
