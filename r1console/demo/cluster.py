"""Open the demo: a ClusterSession named "demo" over a simulated SLURM cluster.

    session = await open_demo_session(Path("~/.cache/r1console-demo").expanduser())
    dep = await session.submit(load_profile("h200x8"))   # real SlurmClient, simulated cluster
    ...
    session.cluster.set_fault("oom")                       # the next job runs out of GPU memory
    await session.close()                                  # stops playback tasks and sim servers

Every screen and command that takes a ClusterSession runs unchanged on it. ``root`` holds the
simulated home (``root/home/demo``: workdir, scripts, keys, job logs) and the cluster's state
(``root/slurm``: slurm.conf, job id counter, accounting), so history survives a restart.

Deployment records (``adapters.deployments``) live in ``R1CONSOLE_STATE_DIR``; with
``isolate_records`` (default) the session points it at ``root/state`` while it is open, so demo jobs
never mix with the user's real deployments, and restores it on close.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from r1console.adapters.session import ClusterSession
from r1console.core.userconfig import ClusterSpec
from r1console.demo.sim_cluster import SimCluster
from r1console.demo.transport import SimTransport

DEMO_CLUSTER = "demo"
_UNSET = object()


class DemoSession(ClusterSession):
    """A ClusterSession whose ``cluster`` is the SimCluster behind it (faults, ``complete``…)."""

    def __init__(self, transport: SimTransport, spec: ClusterSpec, *, state_dir: Path | None = None) -> None:
        super().__init__(transport, spec)
        self.cluster: SimCluster = transport.cluster
        self._state_dir = state_dir
        self._saved_state_env: Any = _UNSET

    def _isolate(self) -> None:
        if self._state_dir is not None and self._saved_state_env is _UNSET:
            self._saved_state_env = os.environ.get("R1CONSOLE_STATE_DIR")
            self._state_dir.mkdir(parents=True, exist_ok=True)
            os.environ["R1CONSOLE_STATE_DIR"] = str(self._state_dir)

    async def close(self) -> None:
        """Stop every playback task and simulated server (jobs still running end as CANCELLED)."""
        try:
            await super().close()
        finally:
            if self._saved_state_env is not _UNSET:
                if self._saved_state_env is None:
                    os.environ.pop("R1CONSOLE_STATE_DIR", None)
                else:
                    os.environ["R1CONSOLE_STATE_DIR"] = self._saved_state_env
                self._saved_state_env = _UNSET


async def open_demo_session(root: str | Path, *, time_scale: float = 1.0, load_seconds: float = 60.0,
                            fault: str | None = None, nodes: int | list[str] = 2, gpus_per_node: int = 4,
                            isolate_records: bool = True, **cluster_options: Any) -> DemoSession:
    """A connected ClusterSession (name "demo") over a SimCluster rooted at ``root``.

    ``time_scale``: wall seconds per simulated second (1 = real time; 0.1 = ten times faster).
    ``load_seconds``: simulated seconds to load the 163 shards (60 = about a minute at time_scale 1).
    ``fault``: ``"oom"`` or ``"nccl"`` makes every job fail that way (``session.cluster.set_fault``
    changes it, or sets it for the next job only). Other keywords go to :class:`SimCluster`
    (``gpu_name``, ``pending_priority_s``, ``nccl_timeout_s``, ``first_job_id``…).
    Close with ``await session.close()``.
    """
    root = Path(root).expanduser().resolve()
    cluster = SimCluster(root, nodes=nodes, gpus_per_node=gpus_per_node, time_scale=time_scale,
                         load_seconds=load_seconds, fault=fault, **cluster_options)
    transport = SimTransport(cluster, label=DEMO_CLUSTER)
    spec = ClusterSpec(name=DEMO_CLUSTER, transport="local", workdir="~/r1console",
                       env={"SLURM_CONF": str(cluster.slurm_conf)})
    session = DemoSession(transport, spec, state_dir=root / "state" if isolate_records else None)
    session._isolate()
    try:
        await session.connect()
    except BaseException:
        await session.close()
        raise
    return session


__all__ = ["DEMO_CLUSTER", "DemoSession", "open_demo_session"]
