"""The demo's transport: a LocalTransport whose SLURM commands are answered by a SimCluster.

``run()`` hands ``sbatch``/``squeue``/``scontrol``/``sacct``/``scancel``/``srun``/``sinfo`` (and
``sacctmgr``, refused) to the cluster, which returns what real SLURM prints; everything else
(``test``, ``rm``, ``stat``, ``tail``, ``head``, ``sh -c``…) runs as a real local subprocess, and
files are real files under the cluster's root, so ``FileFollower`` is a real ``tail -F``.
``identity()`` is the simulated home and user; ``forward_local_port(node, port)`` is where that
node's port answers here (the job's in-process vLLM server once it is up; before that a port
that refuses connections, as a real node does while vLLM loads).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from r1console.adapters.local_transport import LocalTransport
from r1console.adapters.transport import DEFAULT_TIMEOUT, PortForward, RunResult, TransportError
from r1console.demo.sim_cluster import SimCluster

SIM_COMMANDS = frozenset({"sbatch", "squeue", "scontrol", "sacct", "scancel", "srun", "sinfo", "sacctmgr"})


class SimTransport(LocalTransport):
    """``SimTransport(cluster)``; closing it closes the cluster (playback tasks, servers)."""

    def __init__(self, cluster: SimCluster, *, label: str = "demo", own_cluster: bool = True) -> None:
        super().__init__(label=label, env={"SLURM_CONF": str(cluster.slurm_conf)})
        self.cluster = cluster
        self.own_cluster = own_cluster

    async def connect(self) -> None:
        await self.cluster.start()
        await super().connect()

    async def close(self) -> None:
        try:
            await super().close()  # reap the real child processes (log follows) first
        finally:
            if self.own_cluster:
                await self.cluster.close()

    async def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                  retry_on_drop: bool = True) -> RunResult:
        argv = [str(a) for a in argv]
        if argv and argv[0].rsplit("/", 1)[-1] in SIM_COMMANDS:
            self.stats.note_command(argv)
            started = time.monotonic()
            rc, out, err = await self.cluster.command(argv, stdin)
            return RunResult(tuple(argv), rc, out, err, out.encode("utf-8"), time.monotonic() - started)
        return await super().run(argv, timeout=timeout, stdin=stdin, retry_on_drop=retry_on_drop)

    async def identity(self) -> tuple[str, str]:
        return str(self.cluster.home), self.cluster.user

    async def forward_local_port(self, host: str, port: int) -> PortForward:
        try:
            local_host, local_port = await self.cluster.forward(host, port)
        except LookupError as err:
            raise TransportError(f"{self.label}: cannot forward to {host}:{port}: {err}") from None
        return PortForward(local_host=local_host, local_port=local_port, remote_host=host, remote_port=port)


__all__ = ["SIM_COMMANDS", "SimTransport"]
