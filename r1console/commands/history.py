"""`r1console history`: jobs from SLURM accounting (sacct), also those that left the queue."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from r1console.adapters import deployments
from r1console.commands._common import user_config
from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, job_dict, job_table, slurm_session


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="past jobs from SLURM accounting (sacct)",
                       description="Jobs from `sacct -X -P` (or `sacct -c` where only a jobcomp log is "
                       "configured), including jobs that have left squeue.")
    p.add_argument("job_ids", nargs="*", metavar="JOBID", help="only these jobs")
    p.add_argument("--days", type=float, default=7.0, help="how far back (default 7)")
    p.add_argument("--all-users", action="store_true", help="every user's jobs")
    add_cluster_flags(p)
    p.set_defaults(func=run)


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec = user_config().cluster(args.cluster)
    async with slurm_session(spec, args) as (_transport, client):
        jobs = await client.history(args.job_ids or None, since=datetime.now() - timedelta(days=args.days),
                                    all_users=args.all_users)
        records, _ = deployments.load_all(cluster=client.cluster_name)
    deps = {d.job_id: d for d in records}
    emit(args, [job_dict(j, deps.get(j.job_id)) for j in jobs],
         lambda: job_table(jobs, deps) if jobs else "no jobs in the accounting history")
    return 0
