"""`status`'s lifecycle stage for r1console deployments: one bounded remote command per job.

For each job that has a deployment record, both log files (.out, .err) are read with a single
command (head + tail, at most ``HEAD_BYTES + TAIL_BYTES`` per file, ``timeout`` seconds), parsed
offline through the stage machine, and summarised (``core/deployment_stage.py``). Pending jobs
cost nothing (no log yet). Nothing talks to the server unless ``probe`` (then ``/health`` through
the usual forward). A log that cannot be read leaves the stage to SLURM's state and says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from r1console.adapters.deployments import Deployment
from r1console.adapters.slurm_client import SlurmClient
from r1console.adapters.transport import Transport
from r1console.core import deployment_stage as ds
from r1console.core.errors import R1Error
from r1console.core.slurm_parse import JobInfo

READ_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 15.0
PARALLEL = 4  # remote commands in flight at once for a listing


async def read_pieces(client: SlurmClient, info: JobInfo, dep: Deployment, *,
                      timeout: float = READ_TIMEOUT_S) -> tuple[list[tuple[str, ds.LogPiece]], str | None]:
    """(stream, piece) for the job's .out and .err, and a note when they could not be read."""
    paths = [(stream, client.log_path(info, stream, dep)) for stream in ("out", "err")]
    paths = [(s, p) for s, p in paths if p]
    if not paths:
        return [], "log paths unknown until SLURM names the batch host"
    argv = ds.read_logs_argv([p for _, p in paths])
    try:
        result = await client.transport.run(argv, timeout=timeout)
    except R1Error as err:
        return [], f"logs not read: {str(err).splitlines()[0]}"
    if not result.ok:
        return [], f"logs not read (exit {result.returncode}): {result.stderr.strip()[:200]}"
    try:
        pieces = ds.parse_framed(result.raw_stdout, len(paths))
    except ds.FrameError as err:
        return [], f"logs not read: {err}"
    return [(stream, piece) for (stream, _), piece in zip(paths, pieces)], None


async def probe_health(transport: Transport, dep: Deployment, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """GET /health of the deployment's server through the forward (False on any failure)."""
    from r1console.adapters.reach import open_server
    from r1console.adapters.vllm_client import VllmClient

    async def ask() -> bool:
        async with open_server(dep.job_id, dep.cluster, transport=transport, prompt=None) as (url, key):
            return await VllmClient(url, key).is_healthy()

    try:
        return await asyncio.wait_for(ask(), timeout)
    except (R1Error, OSError, asyncio.TimeoutError):
        return False


async def deployment_summary(client: SlurmClient, info: JobInfo, dep: Deployment, *, probe: bool = False) -> dict:
    """The stage keys for one deployment job (see ``core.deployment_stage.summarise``)."""
    pieces: list[tuple[str, ds.LogPiece]] = []
    note = None
    if not info.is_pending:
        pieces, note = await read_pieces(client, info, dep)
    state = ds.lifecycle_for(info, pieces)
    health = None
    if probe and info.is_running:
        health = await probe_health(client.transport, dep)
    summary = ds.summarise(info, state, health_ok=health, head_host=info.batch_host or dep.batch_host,
                           port=dep.port)
    if note:
        summary["stage_note"] = note
    return summary


async def summaries(client: SlurmClient, jobs: Sequence[JobInfo], deps: dict[str, Deployment], *,
                    probe: bool = False) -> dict[str, dict]:
    """job id -> stage keys, for the jobs that are r1console deployments (others: absent)."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(job: JobInfo) -> tuple[str, dict]:
        async with gate:
            return job.job_id, await deployment_summary(client, job, deps[job.job_id], probe=probe)

    done = await asyncio.gather(*(one(j) for j in jobs if j.job_id in deps))
    return dict(done)


def any_failed(summaries_by_job: dict[str, dict]) -> bool:
    return any(s.get("stage") == "failed" for s in summaries_by_job.values())


__all__ = ["any_failed", "deployment_summary", "probe_health", "read_pieces", "summaries"]
