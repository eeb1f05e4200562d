"""``sbatch``: the batch script read back, the partition's limits checked as slurmctld checks them, the
job id handed out (a counter in the cluster's state dir, so ids survive a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from r1console.demo.sim_job import ScriptError, parse_sbatch_args, parse_script, profile_from_script
from r1console.demo.slurm.common import _plan
from r1console.demo.slurm.model import SimJob


class SbatchCommand:
    """The ``sbatch`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _sbatch(self, args: list[str]) -> tuple[int, str, str]:
        try:
            cli, rest = parse_sbatch_args(args, stop_at_positional=True)
        except ScriptError as err:
            return 1, "", str(err) + "\n"
        parsable = "parsable" in cli
        cli = {k: v for k, v in cli.items() if k not in ("parsable", "quiet", "verbose")}
        if not rest:
            return 1, "", "sbatch: error: Batch script is empty!\n"
        path = rest[0]
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return 1, "", f"sbatch: error: Unable to open file {path}\n"
        try:
            script = parse_script(path, text, cli)
            num_nodes, gpn, mem_mb, limit = script.nodes, script.gpus_per_node, script.mem_mb, script.time_limit_s
        except ScriptError as err:
            return 1, "", f"{err}\n"
        failed = "sbatch: error: Batch job submission failed: "
        partition = script.options.get("partition") or self.partition
        if partition != self.partition:
            return 1, "", (f"sbatch: error: invalid partition specified: {partition}\n"
                           f"{failed}Invalid partition name specified\n")
        node = next(iter(self.nodes.values()))
        if num_nodes > len(self.nodes):
            return 1, "", f"{failed}Node count specification invalid\n"
        if gpn > node.gpus or (mem_mb or 0) > node.memory_mb \
                or script.cpus_per_task * script.ntasks_per_node > node.cpus:
            return 1, "", f"{failed}Requested node configuration is not available\n"
        constraint = script.options.get("constraint")
        if constraint and any(f.strip("[]()!") not in node.features for f in constraint.replace("|", "&").split("&")):
            return 1, "", f"{failed}Invalid feature specification\n"
        if self.max_time_s is not None and (limit is None or limit > self.max_time_s):
            if limit is not None:
                return 1, "", f"{failed}Requested time limit is invalid (missing or exceeds some limit)\n"
            limit = self.max_time_s
        workdir = script.options.get("chdir") or str(self.home)
        job_id = self._take_job_id()
        fault = self.fault_next or self.fault
        self.fault_next = None
        job = SimJob(job_id=job_id, name=script.job_name, user=self.user, uid=self.uid, partition=partition,
                     workdir=workdir.rstrip("/") or "/", command=str(Path(path)), stdout_pattern=script.output,
                     stderr_pattern=script.error, num_nodes=num_nodes, gpus_per_node=gpn,
                     cpus_per_task=script.cpus_per_task, ntasks_per_node=script.ntasks_per_node, mem_mb=mem_mb,
                     time_limit_s=limit, features=constraint or "", exclusive=script.exclusive,
                     comment=script.options.get("comment", ""), submit=self.now(), script=script, fault=fault,
                     api_pid=os.getpid())
        job.profile = profile_from_script(script)
        job.plan = _plan(job.profile, node.gpu_name)
        self.jobs[job_id] = job
        job.task = asyncio.create_task(self._job_main(job), name=f"sim-job-{job_id}")
        return 0, (f"{job_id}\n" if parsable else f"Submitted batch job {job_id}\n"), ""

    def _take_job_id(self) -> int:
        if not self._next_id:
            counter = self.slurm_dir / "next_job_id"
            stored = counter.read_text().strip() if counter.exists() else ""
            if stored.isdigit():
                self._next_id = int(stored)
            else:
                # a fresh root starts somewhere new, so ids do not repeat records of an earlier demo
                self._next_id = self._first_job_id or 100_000 + int(time.time()) % 900_000
        job_id = self._next_id
        self._next_id += 1
        with contextlib.suppress(OSError):
            (self.slurm_dir / "next_job_id").write_text(f"{self._next_id}\n")
        return job_id
