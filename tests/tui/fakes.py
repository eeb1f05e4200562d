"""Frozen inputs for snapshot tests: a session that answers from real captures and never changes.

Snapshot tests need every pixel deterministic, so instead of a live (simulated) cluster the
screens get a session whose answers come from captured SLURM output and whose long-running
calls never return; the test then feeds the screen a fixed state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from r1console.adapters.deployments import Deployment
from r1console.adapters.session import JobsView
from r1console.core.nvidia_smi import NodeGpus, parse_query
from r1console.core.slurm_parse import JobInfo
from r1console.core.userconfig import ClusterSpec

DATA = Path(__file__).resolve().parent.parent / "data"
SMI_FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.used", "memory.total", "memory.free",
              "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit")


def gpu_nodes() -> list[NodeGpus]:
    """Two nodes of the real H200 capture under load (the capture has 2 GPUs per machine)."""
    capture = (DATA / "nvidia-smi" / "h200x2" / "smi_query_load.txt").read_text()
    text = capture.split("===")[0].split("\n", 1)[1]  # the csv section, header line dropped
    return [NodeGpus(node, task, tuple(parse_query(text, node, SMI_FIELDS))) for task, node in
            enumerate(("holygpu8a11301", "holygpu8a11302"))]


JOBS = [
    JobInfo(job_id="4240", name="r1console", state="RUNNING", nodes="holygpu8a[11301-11302]", node_count=2,
            batch_host="holygpu8a11301", partition="kempner_h100", time_used=754, time_limit=259200, user="alice"),
    JobInfo(job_id="4251", name="r1console", state="PENDING", reason="Resources", node_count=4,
            partition="kempner_h100", time_used=0, time_limit=259200, user="alice"),
]
HISTORY = [
    JobInfo(job_id="4100", name="r1console", state="CANCELLED", nodes="holygpu8a[11301-11302]", node_count=2,
            time_used=3600, time_limit=259200, user="alice"),
    JobInfo(job_id="4099", name="r1console", state="FAILED", nodes="holygpu8a[11303-11304]", node_count=2,
            time_used=1210, time_limit=259200, user="alice", exit_code="1:0"),
]
DEPLOYMENT = Deployment(deployment_id="h200x8-20261128T120000Z-abcdef", cluster="snapcluster", job_id="4240",
                        profile="h200x8", workdir="/home/alice/r1console",
                        script_path="/home/alice/r1console/h200x8.sbatch",
                        log_out="/home/alice/r1console/job.%N.4240.out", log_err="/home/alice/r1console/job.%N.4240.err",
                        key_path="/home/alice/r1console/keys/h200x8.key", port=8000, profile_source="h200x8")


class FrozenSession:
    """Answers the jobs list from fixed data; everything live waits for ever (the test feeds state)."""

    name = "snapcluster"
    spec = ClusterSpec(name="snapcluster", ssh_host="login.example.edu")

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def jobs(self) -> JobsView:
        return JobsView(queue=list(JOBS), history=list(HISTORY), deployments={"4240": DEPLOYMENT})

    async def _forever(self, *args, **kwargs):
        await asyncio.Event().wait()

    job_state = gpus = log_path = cancel = submit = _forever
