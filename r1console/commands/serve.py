"""``r1console serve``: one OpenAI-compatible endpoint on this machine for a deployment's replicas.

    r1console serve --deployment team-r1            # every ready replica of the deployment
    r1console serve --job 4211 4212 --port 8001     # these jobs
    r1console serve --show-key                      # the endpoint's key, for OPENAI_API_KEY

Binds 127.0.0.1 (``--host`` to change it) with its own key (``serve.key``, 0600, in the config
directory; every route but /health demands it). Requests go through the ONE SSH connection of
the cluster to the replica with the fewest requests in flight; streams pass through untouched.
A request that has not streamed yet moves to another replica when its replica dies.
With ``--deployment``, this process also runs the deployment's relay (``relay:`` in the profile:
a successor before each job's end, the endpoint moved when it is ready, the old job drained and
cancelled, failed jobs resubmitted) and idle stop (``idle_stop:``). Ctrl-C stops the endpoint
(the jobs keep running).

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="<r1console serve --show-key>")
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from r1console.commands._common import positive_float, user_config, warn
from r1console.commands._jobs import clean_errors
from r1console.core.errors import R1Error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="one local OpenAI endpoint for a deployment's replicas (relay, idle stop)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--job", dest="jobs", nargs="+", action="extend", metavar="J",
                        help="the SLURM jobs to serve (submitted by r1console)")
    target.add_argument("--deployment", metavar="NAME", help="a named deployment (submit --name/--replicas)")
    p.add_argument("--port", type=int, default=8000, help="local port (default 8000; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="local address to bind (default 127.0.0.1)")
    p.add_argument("--cluster", metavar="NAME", help="cluster of --job (default: the job's recorded cluster)")
    p.add_argument("--poll", type=positive_float, default=5.0, metavar="S",
                   help="how often SLURM and the replicas are checked (default 5 s)")
    p.add_argument("--show-key", action="store_true", help="print the endpoint's key and exit")
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace):
    """(ClusterSpec, jobs or None, group or None) for the arguments."""
    from r1console.adapters import deployment_groups, deployments
    from r1console.adapters.reach import cluster_for

    if args.deployment:
        group = deployment_groups.load(args.deployment)
        if group.stopped:
            warn(f"deployment {group.name} was stopped ({group.stopped}); serving what is left of it")
        config = user_config()
        if group.cluster in config.clusters or group.cluster == "local":
            return config.cluster(group.cluster), None, group
        recs = [deployments.find(j, group.cluster) for j in group.jobs]
        rec = next((r for r in recs if r is not None), None)
        if rec is None:
            raise R1Error(f"deployment {group.name}: no job record found for its jobs")
        return cluster_for(rec), None, group
    jobs = [str(j) for j in args.jobs or []]
    dep = deployments.find(jobs[0], args.cluster)
    if dep is None:
        raise R1Error(f"no deployment record for job {jobs[0]}: r1console only reaches jobs it submitted",
                      hint="`r1console status` lists them")
    return cluster_for(dep, args.cluster), jobs, None


@clean_errors
async def run(args: argparse.Namespace) -> int:
    from r1console.adapters.connect import make_transport, terminal_prompt
    from r1console.adapters.deployment_groups import key_file, local_key
    from r1console.adapters.serve_controller import serving

    key = local_key()
    if args.show_key:
        print(key)
        return 0
    if not args.jobs and not args.deployment:
        raise R1Error("give --job J [J ...] or --deployment NAME", hint="r1console serve --help")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        warn(f"binding {args.host}: anyone who can reach this address and has the key can use the deployment")
    spec, jobs, group = resolve(args)
    transport = make_transport(spec, terminal_prompt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def log(text: str) -> None:
        print(f"serve: {text}", file=sys.stderr, flush=True)

    try:
        await transport.connect()
        async with serving(transport, spec, jobs=jobs, group=group, api_key=key, host=args.host, port=args.port,
                           poll_s=args.poll, log=log) as (proxy, ctl):
            what = f"deployment {group.name}" if group else f"job(s) {', '.join(jobs or [])}"
            print(f"serving {what} on {proxy.url}/v1  (key: {key_file()}, `r1console serve --show-key`)",
                  flush=True)
            while not stop.is_set() and not ctl.stopped:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await transport.close()
    return 0
