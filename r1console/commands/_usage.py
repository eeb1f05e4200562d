"""GPU-hours and tokens served per named deployment, for ``status`` (and the jobs screen).

GPU-hours: for every job of the deployment, SLURM's elapsed time (squeue while it runs, sacct
after) times its GPUs (SLURM's, else the profile's nodes x gpus_per_node). Tokens served: the
ledger ``r1console serve`` keeps from each replica's ``vllm:generation_tokens_total``.
"""

from __future__ import annotations

from r1console.core.errors import R1Error
from r1console.core.slurm_parse import JobInfo
from r1console.core.usage import JobUsage, TokenLedger, gpu_hours


def usage_rows(groups, infos: dict[str, JobInfo]) -> list[dict]:
    rows = []
    for group in groups:
        jobs = []
        for job in group.jobs:
            info = infos.get(job)
            seconds = float(info.time_used or 0) if info is not None else 0.0
            gpus = (info.gpus if info is not None and info.gpus else 0) or group.gpus_per_job
            jobs.append(JobUsage(job, gpus, seconds))
        ledger = TokenLedger.from_dict(group.tokens)
        active = [j for j in group.jobs if j in infos and infos[j].is_active]
        per_job = {u.job_id: {"gpu_hours": round(u.gpu_hours, 3),
                              "tokens_served": int(ledger.generation.get(u.job_id, 0))} for u in jobs}
        rows.append({"deployment_name": group.name, "jobs": list(group.jobs), "active_jobs": active,
                     "per_job": per_job,
                     "replicas": group.replicas, "gpu_hours": round(gpu_hours(jobs), 3),
                     "tokens_served": ledger.tokens_served, "prompt_tokens": ledger.prompt_tokens,
                     "relay": bool(group.relay), "idle_stop_s": group.idle_stop_s, "stopped": group.stopped,
                     "last_event": group.events[-1][1] if group.events else ""})
    return rows


async def deployment_usage(client, jobs: list[JobInfo]) -> tuple[list[dict], dict[str, str]]:
    """(rows per deployment of this cluster, job id -> deployment name)."""
    from r1console.adapters import deployment_groups

    groups = [g for g in deployment_groups.load_all() if g.cluster == client.cluster_name]
    if not groups:
        return [], {}
    infos = {j.job_id: j for j in jobs}
    missing = [j for g in groups for j in g.jobs if j not in infos]
    if missing:
        try:
            for info in await client.history(missing):
                infos.setdefault(info.job_id, info)
        except R1Error:
            pass    # no accounting: ended jobs count 0 GPU-hours
    names = {job: g.name for g in groups for job in g.jobs}
    return usage_rows(groups, infos), names


def usage_table(rows: list[dict]) -> str:
    table = [("DEPLOYMENT", "JOBS", "ACTIVE", "GPU-HOURS", "TOKENS", "NOTE")]
    for r in rows:
        # the chain of a relay: every job in submit order, the newest last
        note = r["stopped"] or (("relay " + " → ".join(r["jobs"][-4:])) if r["relay"] else "")
        if r["last_event"] and not r["stopped"]:
            note = f"{note}  ({r['last_event'][:60]})" if note else r["last_event"][:60]
        table.append((r["deployment_name"], str(len(r["jobs"])), str(len(r["active_jobs"])),
                      f"{r['gpu_hours']:.2f}", str(r["tokens_served"]), note))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


__all__ = ["deployment_usage", "usage_rows", "usage_table"]
