"""Shared plumbing of the headless job commands (submit, status, cancel, history, logs, gpus, wait).

``--cluster NAME`` is a cluster from the config, ``local``, or an SSH Host alias. Without it, a
command about one job uses the cluster recorded when that job was submitted, else the config's
``default_cluster``. Every failure becomes an R1Error (one message, non-zero exit, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from r1console.adapters import deployments
from r1console.adapters.connect import make_transport, terminal_prompt
from r1console.adapters.deployments import Deployment
from r1console.adapters.slurm_client import SlurmClient
from r1console.adapters.transport import Transport
from r1console.commands._common import add_json_flag, print_json, user_config
from r1console.core.errors import R1Error
from r1console.core.slurm_parse import JobInfo, format_duration
from r1console.core.userconfig import ClusterSpec


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="NAME",
                        help="a cluster from the config, 'local', or an SSH Host alias "
                             "(default: the job's recorded cluster, else default_cluster)")
    parser.add_argument("--timeout-cmd", type=float, default=30.0, metavar="S", dest="command_timeout",
                        help="give up on any single SLURM command after S seconds (default 30)")
    add_json_flag(parser)


def resolve_cluster(args: argparse.Namespace, job_id: str | None = None) -> tuple[ClusterSpec, Deployment | None]:
    """The cluster to talk to, and the deployment record of ``job_id`` when there is one."""
    name = getattr(args, "cluster", None)
    dep = deployments.find(str(job_id), name) if job_id is not None else None
    if dep is not None and not name:
        from r1console.adapters.reach import cluster_for

        return cluster_for(dep), dep
    return user_config().cluster(name), dep


@contextlib.asynccontextmanager
async def slurm_session(spec: ClusterSpec, args: argparse.Namespace) -> AsyncIterator[tuple[Transport, SlurmClient]]:
    transport = make_transport(spec, terminal_prompt)
    try:
        await transport.connect()
        yield transport, SlurmClient(transport, spec, timeout=getattr(args, "command_timeout", 30.0))
    finally:
        await transport.close()


def clean_errors(func: Callable[[argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """Turn the odd low-level exception (socket, asyncssh internals) into one clear R1Error."""

    @functools.wraps(func)
    async def wrapper(args: argparse.Namespace) -> int:
        try:
            return await func(args)
        except (R1Error, KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BrokenPipeError:
            # `r1console logs 5 | head`: the reader left; stop quietly like other CLI tools
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except (OSError, EOFError, ConnectionError, asyncio.TimeoutError) as err:
            raise R1Error(f"{type(err).__name__}: {err}") from None
        except Exception as err:  # noqa: BLE001 - asyncssh.Error and friends: a message, not a traceback
            if type(err).__module__.startswith("asyncssh"):
                raise R1Error(f"SSH: {err}") from None
            raise

    return wrapper


def emit(args: argparse.Namespace, value: Any, text: str | Callable[[], str]) -> None:
    if getattr(args, "json", False):
        print_json(value)
    else:
        out = text() if callable(text) else text
        if out:
            print(out)


def job_dict(info: JobInfo, dep: Deployment | None = None) -> dict:
    data = info.to_dict()
    if dep is not None:
        data["deployment"] = dep.to_dict()
        data["stdout_path"] = SlurmClient.log_path(info, "out", dep)
        data["stderr_path"] = SlurmClient.log_path(info, "err", dep)
    return data


def job_table(jobs: list[JobInfo], deps: dict[str, Deployment], stages: dict[str, str] | None = None) -> str:
    """``stages`` (job id -> short lifecycle stage) adds a STAGE column for deployments."""
    rows = [("JOBID", "STATE", "TIME", "LIMIT", "NODES", "NODELIST/REASON", "NAME", "PROFILE")
            + (("STAGE",) if stages else ())]
    for job in jobs:
        where = job.nodes if job.nodes and not job.is_pending else (f"({job.reason})" if job.reason else "")
        dep = deps.get(job.job_id)
        rows.append((job.job_id, job.state, format_duration(job.time_used), format_duration(job.time_limit),
                     str(job.node_count or ""), where, job.name, dep.profile if dep else "")
                    + ((stages.get(job.job_id, ""),) if stages else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = ["add_cluster_flags", "clean_errors", "emit", "job_dict", "job_table", "resolve_cluster",
           "slurm_session", "stderr"]
