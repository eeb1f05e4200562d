"""`r1console submit PROFILE`: render a profile, upload it (+ a fresh API key) and sbatch it."""

from __future__ import annotations

import argparse

from r1console.adapters.slurm_client import load_profile_for_cluster
from r1console.commands._common import add_set_flag, positive_int, user_config, warn
from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, slurm_session


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit", help="submit a profile to SLURM (render, upload, sbatch)",
        description="Render PROFILE, upload the script into the cluster workdir (0700; script and API key "
        "0600), run `sbatch --parsable`, and keep a local record so every other command finds the job. "
        "The cluster's partition/account apply when the profile sets none.",
    )
    p.add_argument("profile", help="profile name (e.g. h200x8) or path to a .yaml file")
    p.add_argument("--workdir", help="directory on the cluster (default: the profile's workdir if it sets one, "
                   "else the cluster's; ~ is the cluster home)")
    p.add_argument("--replicas", type=positive_int, metavar="N",
                   help="submit N jobs of one deployment (default: the profile's replicas, 1); "
                        "`r1console serve --deployment NAME` puts them behind one endpoint")
    p.add_argument("--name", metavar="NAME",
                   help="name of the deployment (default: the profile name, numbered if taken); "
                        "used by serve/batch --deployment")
    add_set_flag(p)
    add_cluster_flags(p)
    p.set_defaults(func=run)


@clean_errors
async def run(args: argparse.Namespace) -> int:
    config = user_config()
    spec = config.cluster(args.cluster)
    loaded = load_profile_for_cluster(args.profile, spec, overrides=args.overrides,
                                      dirs=config.profile_search_dirs())
    for message in loaded.warnings:
        warn(f"{loaded.source}: {message}")
    replicas = args.replicas or loaded.profile.replicas
    grouped = replicas > 1 or args.name or loaded.profile.relay or loaded.profile.idle_stop
    group = new_group(args, spec, loaded, replicas) if grouped else None
    deps = []
    async with slurm_session(spec, args) as (_transport, client):
        for note in await client.reconcile_all():  # earlier submissions whose sbatch answer was lost
            warn(note)
        for _ in range(replicas):
            deps.append(await client.submit(loaded, workdir=args.workdir))
            if group is not None:
                group.jobs.append(deps[-1].job_id)
                save_group(group)
    if group is not None:
        emit(args, {**deps[0].to_dict(), "deployment_name": group.name, "replicas": [d.to_dict() for d in deps]},
             lambda: group_text(group, deps))
        return 0
    dep = deps[0]
    emit(args, dep.to_dict(), lambda: "\n".join([
        f"submitted job {dep.job_id} on {dep.cluster} (deployment {dep.deployment_id})",
        f"  script: {dep.script_path}",
        f"  logs:   {dep.log_out}  /  .err   (%N = the head node, known once it runs)",
        *([f"  key:    {dep.key_path} (0600)"] if dep.key_path else []),
        f"next: r1console wait {dep.job_id} --for ready   |   r1console logs {dep.job_id} --follow",
    ]))
    return 0


def new_group(args: argparse.Namespace, spec, loaded, replicas: int):
    """The named deployment record the replicas (and relay successors) belong to."""
    from datetime import datetime, timezone

    from r1console.adapters.deployment_groups import Group, check_name, exists

    profile = loaded.profile
    if args.name:
        name = check_name(args.name)
        if exists(name):
            from r1console.core.errors import R1Error

            raise R1Error(f"a deployment named {name!r} exists already", hint="choose another --name")
    else:
        name, n = profile.name, 1
        while exists(name):
            n += 1
            name = f"{profile.name}-{n}"
    return Group(name=name, cluster=spec.name or spec.host, profile=profile.name, profile_ref=str(loaded.source),
                 overrides=list(args.overrides), workdir=args.workdir, replicas=replicas,
                 gpus_per_job=profile.total_gpus,
                 relay=profile.relay.policy_dict() if profile.relay else None, idle_stop_s=profile.idle_stop,
                 created_at=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"))


def save_group(group) -> None:
    from r1console.adapters.deployment_groups import save

    save(group)


def group_text(group, deps) -> str:
    lines = [f"deployment {group.name}: {len(deps)} job(s) on {group.cluster}: {', '.join(d.job_id for d in deps)}"]
    if group.relay:
        lines.append(f"  relay: successor {group.relay['lead_time_s'] / 60:g} min before each job's end "
                     f"(max_restarts {group.relay['max_restarts']}) while `r1console serve` runs")
    if group.idle_stop_s:
        lines.append(f"  idle_stop: cancelled after {group.idle_stop_s / 3600:g} h without requests")
    lines.append(f"next: r1console serve --deployment {group.name}   |   "
                 f"r1console batch INPUT -o OUT --deployment {group.name}")
    return "\n".join(lines)
