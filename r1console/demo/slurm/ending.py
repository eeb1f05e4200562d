"""How a job ends (it exits, scancel, the time limit): its state, exit code and steps as SLURM records
them, what slurmstepd and srun print into its ``.err``, and the accounting file ``sacct`` reads."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json

from r1console.demo.sim_job import stepd_line, uvicorn_shutdown_lines
from r1console.demo.slurm.common import ACTIVE, KILL_WAIT_S
from r1console.demo.slurm.model import SimJob, SimStep


class JobEnding:
    """Ending and accounting of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _end(self, job: SimJob, state: str, *, exit_code: str, reason: str, when: float | None = None,
                   cancelled_by: int | None = None) -> None:
        if job.state not in ACTIVE:
            return
        me = asyncio.current_task()
        job.state, job.reason, job.exit_code = state, reason, exit_code
        job.end = self.now() if when is None else min(when, self.now())
        job.cancelled_by = cancelled_by
        for step in job.steps:  # the script's EXIT trap (or slurmstepd) stops the `ray start` steps
            if step.end is None:
                step.end, step.state, step.exit_code = job.end, "CANCELLED", "0:15"
        if job.nodes:
            rc = exit_code.split(":")[0]
            job.steps.append(SimStep(step_id=-1, name="batch", node=job.batch_host, start=job.start, end=job.end,
                                     state={"COMPLETED": "COMPLETED", "FAILED": "FAILED"}.get(state, "CANCELLED"),
                                     exit_code=f"{rc}:0" if state in ("COMPLETED", "FAILED") else "0:15"))
        await self._stop_server(job)
        self._close_files(job)
        self._record(job)
        self._release()
        if job.task is not None and job.task is not me and not job.task.done():
            job.task.cancel()

    async def _kill(self, job: SimJob, *, due: str | None = None, by: int | None = None) -> None:
        """slurmctld signals every step (scancel, or the time limit); what the job's .err/.out show."""
        when = self.now()
        stamp = _dt.datetime.fromtimestamp(when)
        if job.state == "RUNNING":
            running = [s for s in job.steps if s.end is None]
            lines = [f"srun: Job step aborted: Waiting up to {KILL_WAIT_S + 2} seconds for job step to finish."
                     for _ in running]
            lines += [stepd_line(s.node, "STEP", f"{job.job_id}.{s.step_id}", stamp, due) for s in reversed(running)]
            lines.append(stepd_line(job.batch_host, "JOB", str(job.job_id), stamp, due))
            lines += [f"srun: error: {s.node}: task 0: Terminated" for s in reversed(running)]
            if job.server is not None:
                lines += uvicorn_shutdown_lines(job.api_pid)
            for text in lines:
                self._write(job, "err", text + "\n")
            if job.script is not None and job.script.markers:
                self._write(job, "out", "[r1console] signal=TERM\n")
            if due:
                await self._end(job, "TIMEOUT", exit_code="0:15", reason="TimeLimit", when=when)
            else:
                await self._end(job, "CANCELLED", exit_code="0:15", reason="None", when=when, cancelled_by=by)
        elif job.state == "PENDING":
            job.start = when
            await self._end(job, "CANCELLED", exit_code="0:0", reason=job.reason, when=when, cancelled_by=by)

    async def _cancel(self, job: SimJob) -> None:
        await self._kill(job, by=self.uid)

    # ---- accounting --------------------------------------------------------------------------
    def _record(self, job: SimJob) -> None:
        with contextlib.suppress(OSError):
            with open(self.slurm_dir / "accounting.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(job.to_record(), sort_keys=True) + "\n")

    def _load_accounting(self) -> None:
        path = self.slurm_dir / "accounting.jsonl"
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                job = SimJob.from_record(json.loads(line))
            except (ValueError, TypeError):
                continue
            self.jobs.setdefault(job.job_id, job)
