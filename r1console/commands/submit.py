"""`r1console submit PROFILE`: render a profile, upload it (+ a fresh API key) and sbatch it."""

from __future__ import annotations

import argparse

from r1console.adapters.slurm_client import load_profile_for_cluster
from r1console.commands._common import add_set_flag, user_config, warn
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
    async with slurm_session(spec, args) as (_transport, client):
        for note in await client.reconcile_all():  # earlier submissions whose sbatch answer was lost
            warn(note)
        dep = await client.submit(loaded, workdir=args.workdir)
    emit(args, dep.to_dict(), lambda: "\n".join([
        f"submitted job {dep.job_id} on {dep.cluster} (deployment {dep.deployment_id})",
        f"  script: {dep.script_path}",
        f"  logs:   {dep.log_out}  /  .err   (%N = the head node, known once it runs)",
        *([f"  key:    {dep.key_path} (0600)"] if dep.key_path else []),
        f"next: r1console wait {dep.job_id} --for ready   |   r1console logs {dep.job_id} --follow",
    ]))
    return 0
