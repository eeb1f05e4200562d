"""`r1console gpus JOBID`: per node, per GPU memory / utilisation / power of a running job."""

from __future__ import annotations

import argparse

from r1console.commands._jobs import add_cluster_flags, clean_errors, emit, resolve_cluster, slurm_session


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="GPU memory, utilisation and power of a running job",
                       description="Runs `srun --jobid JOBID --overlap -N n --ntasks-per-node=1 -l nvidia-smi "
                       "--query-gpu=...` inside the allocation (it shares the job's resources).")
    p.add_argument("job_id", metavar="JOBID")
    add_cluster_flags(p)
    p.set_defaults(func=run)


@clean_errors
async def run(args: argparse.Namespace) -> int:
    spec, _dep = resolve_cluster(args, args.job_id)
    async with slurm_session(spec, args) as (_transport, client):
        report = await client.gpus(args.job_id)

    def text() -> str:
        rows = [("NODE", "GPU", "NAME", "MEMORY (MiB)", "MEM%", "UTIL", "POWER", "TEMP")]
        for node in report.nodes:
            for g in node.gpus:
                mem = f"{_fmt(g.memory_used_mib)} / {_fmt(g.memory_total_mib)}"
                power = f"{_fmt(g.power_w, ' W')}" + (f" / {_fmt(g.power_limit_w)}" if g.power_limit_w else "")
                rows.append((node.node, str(g.index), g.name, mem, _fmt(g.memory_pct, "%"),
                             _fmt(g.utilization_pct, "%"), power, _fmt(g.temperature_c, " C")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if report.missing_nodes:
            lines.append(f"no answer from: {', '.join(report.missing_nodes)}")
        return "\n".join(lines)

    emit(args, report.to_dict(), text)
    return 1 if report.missing_nodes else 0
