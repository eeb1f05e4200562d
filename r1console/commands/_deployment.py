"""``--deployment NAME`` for batch: the deployment's replicas behind an in-process endpoint.

The batch sends to a private endpoint on 127.0.0.1 (a free port, a one-off key) that spreads
requests over every ready replica, fewest in flight first, and moves requests that have not
streamed yet away from a replica that dies. The window is the per-replica window (max_num_seqs,
or --concurrency) times the number of replicas, so each replica keeps its own window full.
"""

from __future__ import annotations

import contextlib
import secrets
import sys

from r1console.core.errors import R1Error


@contextlib.asynccontextmanager
async def open_deployment(name: str, *, wait_ready_s: float = 900.0, poll_s: float = 2.0):
    """``async with open_deployment(name) as (url, key, proxy)``."""
    from r1console.adapters.connect import make_transport, terminal_prompt
    from r1console.adapters.serve_controller import serving
    from r1console.commands.serve import resolve

    class _Args:
        deployment = name
        jobs = None
        cluster = None

    spec, _jobs, group = resolve(_Args())
    group.relay = None        # the relay and idle stop belong to `r1console serve`, not to a batch
    group.idle_stop_s = None
    transport = make_transport(spec, terminal_prompt)

    def log(text: str) -> None:
        print(f"r1console: {text}", file=sys.stderr, flush=True)

    key = secrets.token_urlsafe(24)
    try:
        await transport.connect()
        async with serving(transport, spec, group=group, api_key=key, port=0, poll_s=poll_s, log=log,
                           wait_ready_s=wait_ready_s) as (proxy, _ctl):
            yield proxy.url, key, proxy
    finally:
        await transport.close()


def deployment_window(name: str, per_replica: int | None) -> tuple[int, str]:
    """(total window, note): per-replica window x replicas of the deployment."""
    from r1console.adapters import deployment_groups
    from r1console.commands.batch import FALLBACK_CONCURRENCY, deployment_max_num_seqs

    group = deployment_groups.load(name)
    if not group.jobs:
        raise R1Error(f"deployment {name} has no jobs")
    each = per_replica or deployment_max_num_seqs(group.jobs[-1], group.cluster) or FALLBACK_CONCURRENCY
    return each * group.replicas, f"window {each} per replica x {group.replicas} replicas of {name}"


__all__ = ["deployment_window", "open_deployment"]
