"""`r1console status [JOBID]`: your jobs, or one job in detail."""

from __future__ import annotations

import argparse

from r1console.adapters import deployments
from r1console.adapters.slurm_client import SlurmClient, remember_batch_host
from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, job_dict, job_table, resolve_cluster, \
    slurm_session, stderr
from r1console.core.slurm_parse import format_duration


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show your SLURM jobs, or one job in detail",
                       description="Without JOBID: your jobs that SLURM still holds (pending, running, recently "
                       "ended). With JOBID: its details (scontrol), falling back to accounting once it left the queue.")
    p.add_argument("job_id", nargs="?", metavar="JOBID")
    p.add_argument("--all-users", action="store_true", help="every user's jobs, not only yours")
    add_cluster_flags(p)
    p.set_defaults(func=run)


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec, dep = resolve_cluster(args, args.job_id)
    async with slurm_session(spec, args) as (_transport, client):
        if args.job_id is None:
            for note in await client.reconcile_all():  # submissions whose sbatch answer was lost
                stderr(f"r1console: {note}")
            jobs = await client.queue(all_users=args.all_users)
            records, _ = deployments.load_all(cluster=client.cluster_name)
            deps = {d.job_id: d for d in records}
            emit(args, [job_dict(j, deps.get(j.job_id)) for j in jobs],
                 lambda: job_table(jobs, deps) if jobs else "no jobs")
            return 0
        info = await client.job(args.job_id)
        dep = remember_batch_host(dep, info) or dep

    def text() -> str:
        lines = [f"job {info.job_id}  {info.name}  {info.state}" + (f" ({info.reason})" if info.reason else "")]
        rows = [("partition", info.partition), ("nodes", f"{info.nodes} ({info.node_count})" if info.nodes else ""),
                ("batch host", info.batch_host), ("time", f"{format_duration(info.time_used)} of "
                                                          f"{format_duration(info.time_limit)}"),
                ("submitted", info.submit_time or ""), ("started", info.start_time or ""),
                ("ended", info.end_time or ""), ("exit code", info.exit_code), ("workdir", info.workdir),
                ("stdout", SlurmClient.log_path(info, "out", dep) or info.stdout),
                ("stderr", SlurmClient.log_path(info, "err", dep) or info.stderr),
                ("source", info.source)]
        if dep is not None:
            rows += [("profile", dep.profile), ("deployment", dep.deployment_id), ("port", str(dep.port)),
                     ("api key", dep.key_path or "none")]
        lines += [f"  {k + ':':<12}{v}" for k, v in rows if v]
        return "\n".join(lines)

    emit(args, job_dict(info, dep), text)
    return 0
