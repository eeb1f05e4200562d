"""`r1console cancel JOBID`: scancel, then confirm (scancel is silent and exits 0 for unknown ids)."""

from __future__ import annotations

import argparse

from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, job_dict, resolve_cluster, slurm_session


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a job and confirm it ended",
                       description="scancel JOBID, then poll until SLURM reports the job ended. An unknown id "
                       "or a job that already ended is an error (scancel itself would say nothing).")
    p.add_argument("job_id", metavar="JOBID")
    p.add_argument("--confirm-timeout", type=float, default=20.0, metavar="S",
                   help="how long to wait for SLURM to confirm (default 20)")
    add_cluster_flags(p)
    p.set_defaults(func=run)


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec, dep = resolve_cluster(args, args.job_id)
    async with slurm_session(spec, args) as (_transport, client):
        info = await client.cancel(args.job_id, confirm_timeout=args.confirm_timeout)
    if info.is_finished:
        text = f"job {args.job_id} {info.state.lower()}" + (f" ({info.reason})" if info.reason else "")
    else:
        text = f"job {args.job_id}: cancel requested, SLURM reports {info.state} (ending)"
    emit(args, job_dict(info, dep), text)
    return 0
