"""The job's life on the simulated cluster: PENDING (``Priority``, then ``Resources`` until enough nodes
are idle), RUNNING on whole nodes, and the playback of its timeline into its real ``.out`` / ``.err``
files at the right (scaled) time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
from pathlib import Path

from r1console.demo.sim_job import Entry, GpuModel, JobContext, Phases, build_timeline, oom_rank
from r1console.demo.slurm.common import _bound_socket
from r1console.demo.slurm.model import SimJob, SimStep


class JobPlayback:
    """The scheduler and the playback of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _job_main(self, job: SimJob) -> None:
        await self.sleep_until(job.submit + self.pending_priority_s)
        job.reason = "Priority" if self._waiting_before(job) else "Resources"
        await self.sleep_until(job.submit + self.pending_priority_s + self.pending_resources_s)
        while not self._can_start(job):
            released = self._released
            await released.wait()
        self._allocate(job)
        entries = self._prepare(job)
        for entry in entries:
            await self.sleep_until(job.start + entry.t)  # type: ignore[operator]
            if job.state != "RUNNING":
                return
            if entry.action:
                if entry.action == "exit":
                    if job.out_fh is not None:
                        job.out_fh.flush()
                    await self._end(job, "FAILED" if entry.code else "COMPLETED",
                                    exit_code=f"{entry.code}:0", reason="NonZeroExitCode" if entry.code else "None",
                                    when=job.start + entry.t)  # type: ignore[operator]
                    return
                if entry.action == "timeout":
                    await self._kill(job, due="TIME LIMIT")
                    return
                if entry.action == "vllm_bind":
                    job.bound = _bound_socket()
                    job.local_port = job.bound.getsockname()[1]
                elif entry.action == "server_up":
                    await self._start_server(job)
                continue
            self._write(job, entry.stream, entry.render())
        await asyncio.Event().wait()  # serving until scancel (no time limit)

    def _waiting_before(self, job: SimJob) -> list[SimJob]:
        return [j for j in self.jobs.values() if j.state == "PENDING" and j.job_id < job.job_id and not j.purged]

    def _free_nodes(self) -> list[str]:
        busy = {n for j in self.jobs.values() if j.state in ("RUNNING", "COMPLETING") for n in j.nodes}
        return [n for n in self.nodes if n not in busy]

    def _can_start(self, job: SimJob) -> bool:
        if self._waiting_before(job):
            job.reason = "Priority"
            return False
        if len(self._free_nodes()) < job.num_nodes:
            job.reason = "Resources"
            return False
        return True

    def _release(self) -> None:
        released, self._released = self._released, asyncio.Event()
        released.set()

    def _allocate(self, job: SimJob) -> None:
        job.nodes = self._free_nodes()[:job.num_nodes]
        job.state, job.reason, job.start = "RUNNING", "None", self.now()
        for path in (job.out_path, job.err_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        job.out_fh = open(job.out_path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed at the end
        job.err_fh = job.out_fh if job.err_path == job.out_path else open(  # noqa: SIM115
            job.err_path, "a", encoding="utf-8", newline="")
        if job.script is not None and job.script.backend == "ray":
            for i, node in enumerate(job.nodes):
                job.steps.append(SimStep(step_id=i, name="ray", node=node, start=job.start + (0.5 if i == 0 else 9.0)))
            job.next_step = len(job.nodes)

    def _prepare(self, job: SimJob) -> list[Entry]:
        script = job.script
        assert script is not None and job.start is not None
        node = self.nodes[job.nodes[0]]
        key_ok = True
        if script.key_file:
            key_ok = os.access(script.key_file, os.R_OK)
        ctx = JobContext(job_id=job.job_id, script=script, profile=job.profile, nodes=list(job.nodes),
                         ips=[self.nodes[n].ip for n in job.nodes], gpus_per_node=job.gpus_per_node,
                         start=_dt.datetime.fromtimestamp(job.start), load_seconds=self.load_seconds,
                         fault=job.fault, nccl_timeout_s=self.nccl_timeout_s, api_pid=job.api_pid,
                         kv_cache_tokens=job.plan.kv_tokens_per_gpu if job.plan is not None else None,
                         key_readable=key_ok)
        graphs = job.profile is not None and not job.profile.vllm.enforce_eager
        model = GpuModel.from_plan(Phases(), ctx.world, job.plan, total_mib=node.gpu_memory_mib, graphs=graphs,
                                   fault=job.fault, oom_rank_=oom_rank(ctx), oom_fraction=ctx.oom_fraction)
        entries, phases = build_timeline(ctx, model)
        model.phases = phases
        job.phases, job.gpu_model = phases, model
        if job.time_limit_s is not None:
            entries = [e for e in entries if e.t < job.time_limit_s] + [Entry(float(job.time_limit_s),
                                                                              action="timeout")]
        return entries

    # ---- files -------------------------------------------------------------------------------
    def _write(self, job: SimJob, stream: str, text: str) -> None:
        fh = job.err_fh if stream == "err" else job.out_fh
        if fh is None or fh.closed:
            return
        fh.write(text)
        fh.flush()

    def _close_files(self, job: SimJob) -> None:
        for fh in {id(f): f for f in (job.out_fh, job.err_fh) if f is not None}.values():
            with contextlib.suppress(OSError):
                fh.close()
