"""``scancel``: signals, ``-v`` messages, unknown ids."""

from __future__ import annotations

import getopt

from r1console.demo.slurm.model import SimJob


class ScancelCommand:
    """The ``scancel`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _scancel(self, args: list[str]) -> tuple[int, str, str]:
        opts, rest = getopt.gnu_getopt(args, "u:vfbs:n:p:t:", [
            "user=", "verbose", "full", "batch", "signal=", "name=", "partition=", "state=", "me", "quiet"])
        verbose = any(k in ("-v", "--verbose") for k, _ in opts)
        users = {v for k, v in opts if k in ("-u", "--user")} | ({self.user} if ("--me", "") in opts else set())
        targets: list[SimJob] = []
        err = ""
        for text in rest:
            job = self.job(text)
            if verbose:
                err += f"scancel: Terminating job {text}\n"
            if job is None or not self.visible(job):
                if verbose:
                    err += f"scancel: error: Kill job error on job id {text}: Invalid job id specified\n"
                continue
            if not job.is_active:
                if verbose:
                    err += (f"scancel: error: Kill job error on job id {text}: "
                            "Job/step already completing or completed\n")
                continue
            targets.append(job)
        if users and not rest:
            targets = [j for j in self.jobs.values() if j.user in users and j.is_active and not j.purged]
        for job in targets:
            await self._cancel(job)
        return 0, "", err  # scancel exits 0 even for unknown or finished jobs (captures 43, 50, 51)
