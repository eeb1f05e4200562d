"""`r1console status [JOBID]`: your jobs, or one job in detail."""

from __future__ import annotations

import argparse

from r1console.adapters import deployments
from r1console.adapters.slurm_client import SlurmClient, remember_batch_host
from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, job_dict, job_table, resolve_cluster, \
    slurm_session
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
            jobs = await client.queue(all_users=args.all_users)
            records, _ = deployments.load_all(cluster=client.cluster_name)
            deps = {d.job_id: d for d in records}
            from r1console.commands._usage import deployment_usage, usage_table

            usage, names = await deployment_usage(client, jobs)
            per_dep = {u["deployment_name"]: u for u in usage}
            docs = [job_dict(j, deps.get(j.job_id)) for j in jobs]
            for doc in docs:
                name = names.get(doc["job_id"])
                # this job's share, and its deployment's totals (None: not part of a named deployment)
                mine = per_dep[name]["per_job"].get(doc["job_id"], {}) if name else {}
                doc["deployment_name"] = name
                doc["gpu_hours"] = mine.get("gpu_hours")
                doc["tokens_served"] = mine.get("tokens_served")
                doc["deployment_gpu_hours"] = per_dep[name]["gpu_hours"] if name else None
                doc["deployment_tokens_served"] = per_dep[name]["tokens_served"] if name else None
            emit(args, docs, lambda: "\n\n".join(
                part for part in (job_table(jobs, deps) if jobs else "no jobs",
                                  usage_table(usage) if usage else "") if part))
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
