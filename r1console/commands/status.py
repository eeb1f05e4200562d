"""`r1console status [JOBID]`: your jobs, or one job in detail."""

from __future__ import annotations

import argparse

from r1console.adapters import deployment_status, deployments
from r1console.adapters.slurm_client import SlurmClient, remember_batch_host
from r1console.commands._jobs import (
    add_cluster_flags,
    clean_errors,
    emit,
    job_dict,
    job_table,
    resolve_cluster,
    slurm_session,
    stderr,
)
from r1console.core import deployment_stage
from r1console.core.errors import EXIT_DEPLOYMENT_FAILED, EXIT_OK
from r1console.core.slurm_parse import format_duration


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show your SLURM jobs, or one job in detail",
                       description="Without JOBID: your jobs that SLURM still holds (pending, running, recently "
                       "ended). With JOBID: its details (scontrol), falling back to accounting once it left the queue. "
                       "For jobs r1console submitted it also reads the head and tail of both logs (one command "
                       "per job) and shows the deployment's stage (queued, starting, loading x/N with ETA, "
                       "initialising, ready, failed with the reason, ended), the server URL once ready and the "
                       f"time left. Exit code {EXIT_DEPLOYMENT_FAILED} when a listed deployment has failed.")
    p.add_argument("job_id", nargs="?", metavar="JOBID")
    p.add_argument("--all-users", action="store_true", help="every user's jobs, not only yours")
    p.add_argument("--probe", action="store_true",
                   help="also ask each running deployment's server for /health (through the SSH forward)")
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
            stages = await deployment_status.summaries(client, jobs, deps, probe=args.probe)
            from r1console.commands._usage import deployment_usage, usage_table

            usage, names = await deployment_usage(client, jobs)
            per_dep = {u["deployment_name"]: u for u in usage}
            docs = [{**job_dict(j, deps.get(j.job_id)), **stages.get(j.job_id, {})} for j in jobs]
            for doc in docs:
                name = names.get(doc["job_id"])
                # this job's share, and its deployment's totals (None: not part of a named deployment)
                mine = per_dep[name]["per_job"].get(doc["job_id"], {}) if name else {}
                doc["deployment_name"] = name
                doc["gpu_hours"] = mine.get("gpu_hours")
                doc["tokens_served"] = mine.get("tokens_served")
                doc["deployment_gpu_hours"] = per_dep[name]["gpu_hours"] if name else None
                doc["deployment_tokens_served"] = per_dep[name]["tokens_served"] if name else None
            stage_texts = {k: deployment_stage.stage_text(v) for k, v in stages.items()}
            emit(args, docs, lambda: "\n\n".join(
                part for part in (job_table(jobs, deps, stage_texts) if jobs else "no jobs",
                                  usage_table(usage) if usage else "") if part))
            return EXIT_DEPLOYMENT_FAILED if deployment_status.any_failed(stages) else EXIT_OK
        info = await client.job(args.job_id)
        dep = remember_batch_host(dep, info) or dep
        stage = await deployment_status.deployment_summary(client, info, dep, probe=args.probe) if dep else {}

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
        if stage:
            rows[:0] = [("stage", stage["stage"] + (f" - {stage['stage_detail']}" if stage.get("stage_detail") else "")),
                        ("reason", stage.get("reason") or ""), ("server", stage.get("server_url") or ""),
                        ("time left", format_duration(stage["time_left_s"]) if stage.get("time_left_s") is not None
                         else ""), ("note", stage.get("stage_note", ""))]
        if dep is not None:
            rows += [("profile", dep.profile), ("deployment", dep.deployment_id), ("port", str(dep.port)),
                     ("api key", dep.key_path or "none")]
        lines += [f"  {k + ':':<12}{v}" for k, v in rows if v]
        return "\n".join(lines)

    emit(args, {**job_dict(info, dep), **stage}, text)
    return EXIT_DEPLOYMENT_FAILED if stage.get("stage") == "failed" else EXIT_OK
