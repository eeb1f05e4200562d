"""``sinfo`` and ``scontrol show config`` / slurm.conf."""

from __future__ import annotations

from r1console.demo.sim_job import compress_hostlist
from r1console.demo.slurm.common import KILL_WAIT_S, _limit_hms, _limit_squeue


class SinfoCommand:
    """The ``sinfo`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _sinfo(self, args: list[str]) -> tuple[int, str, str]:
        header = not any(a in ("-h", "--noheader") for a in args)
        busy = {n for j in self.jobs.values() if j.state == "RUNNING" for n in j.nodes}
        limit = _limit_squeue(self.max_time_s)
        groups = [("alloc", [n for n in self.nodes if n in busy]), ("idle", [n for n in self.nodes if n not in busy])]
        lines = ["PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"] if header else []
        for state, names in groups:
            if names:
                lines.append(f"{self.partition + '*':<9} {'up':>5} {limit:>10} {len(names):>6} {state:>6} "
                             f"{compress_hostlist(names)}")
        return 0, "".join(line + "\n" for line in lines), ""

    # ---- config ------------------------------------------------------------------------------
    def _slurm_conf_text(self) -> str:
        node = next(iter(self.nodes.values()))
        names = compress_hostlist(list(self.nodes))
        return "\n".join([
            "# The r1console demo's simulated cluster. No daemon reads this file: SimCluster answers the",
            "# SLURM commands itself (r1console/demo/sim_cluster.py).",
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=login01",
            "SelectType=select/cons_tres",
            "GresTypes=gpu",
            "EnforcePartLimits=ALL",
            f"MinJobAge={int(self.min_job_age_s)}",
            f"KillWait={KILL_WAIT_S}",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageTRES=gres/gpu",
            f"NodeName={names} CPUs={node.cpus} Sockets={node.sockets} CoresPerSocket={node.cpus // node.sockets} "
            f"ThreadsPerCore=1 RealMemory={node.memory_mb} Gres=gpu:{node.gpus} Features={','.join(node.features)} "
            "State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={names} Default=YES MaxTime={_limit_hms(self.max_time_s)} State=UP",
            "",
        ])
