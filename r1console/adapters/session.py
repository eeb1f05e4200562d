"""ClusterSession: what the console needs from one cluster, over ONE transport.

The TUI (and the demo) talk to a cluster only through this object: the user's jobs and history,
deployment records, submit, cancel, job details, GPU samples, log follows, and the vLLM server of
a deployment (port-forward + API key over the same connection). It composes the SLURM client,
the deployment records and the transport; the demo builds the same session over a simulated
transport, so every screen runs unchanged on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from r1console.adapters import deployments
from r1console.adapters.deployments import Deployment
from r1console.adapters.slurm_client import GpuReport, JobStateError, SlurmClient, remember_batch_host
from r1console.adapters.transport import FileFollower, Transport
from r1console.core.errors import R1Error
from r1console.core.profiles import LoadedProfile
from r1console.core.slurm_parse import JobInfo
from r1console.core.userconfig import ClusterSpec


@dataclass(frozen=True)
class JobsView:
    """One refresh of the jobs screen."""

    queue: list[JobInfo]
    history: list[JobInfo]
    deployments: dict[str, Deployment]  # job id -> record, for jobs r1console launched


class ClusterSession:
    def __init__(self, transport: Transport, spec: ClusterSpec) -> None:
        self.transport = transport
        self.spec = spec
        self.slurm = SlurmClient(transport, spec)

    @property
    def name(self) -> str:
        return self.spec.name or self.spec.host

    async def connect(self) -> None:
        await self.transport.connect()

    async def close(self) -> None:
        await self.transport.close()

    # ---- jobs ------------------------------------------------------------------------------
    def deployments(self) -> dict[str, Deployment]:
        records, _problems = deployments.load_all(cluster=self.name)
        return {d.job_id: d for d in records}

    async def jobs(self, *, with_history: bool = True) -> JobsView:
        with contextlib.suppress(R1Error):
            await self.slurm.reconcile_all()  # submissions whose sbatch answer was lost
        queue = await self.slurm.queue()
        history: list[JobInfo] = []
        if with_history:
            try:
                live = {j.job_id for j in queue}
                history = [j for j in await self.slurm.history() if j.job_id not in live]
            except R1Error:
                history = []  # no accounting on this cluster: the queue is all we can show
        return JobsView(queue=queue, history=history, deployments=self.deployments())

    async def submit(self, loaded: LoadedProfile) -> Deployment:
        return await self.slurm.submit(loaded)

    async def cancel(self, job_id: str) -> JobInfo:
        return await self.slurm.cancel(job_id)

    async def job_state(self, job_id: str) -> JobInfo:
        info = await self.slurm.job_state(job_id)
        remember_batch_host(deployments.find(job_id, self.name), info)
        return info

    async def gpus(self, job_id: str) -> GpuReport:
        return await self.slurm.gpus(job_id)

    # ---- logs ------------------------------------------------------------------------------
    async def log_path(self, job_id: str, stream: str) -> str | None:
        dep = deployments.find(job_id, self.name)
        if dep is not None and dep.log_path(stream):
            return dep.log_path(stream)
        info = await self.slurm.job(job_id)
        return self.slurm.log_path(info, stream, dep)

    def follow(self, path: str, offset: int = 0, *, on_reset=None) -> FileFollower:
        return self.slurm.follow(path, offset, on_reset=on_reset)

    # ---- the server ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def open_server(self, job_id: str) -> AsyncIterator[tuple[str, str | None]]:
        """``(base_url, api_key)`` of a deployment's vLLM server, over this session's transport."""
        from r1console.adapters.reach import open_server

        dep = deployments.find(job_id, self.name)
        if dep is None:
            raise JobStateError(f"job {job_id} was not launched by r1console: no record of its port and API key")
        async with open_server(job_id, self.name, transport=self.transport, prompt=None) as target:
            yield target
