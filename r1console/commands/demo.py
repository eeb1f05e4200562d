"""`r1console demo`: the console on an embedded simulated cluster — no SLURM, no GPU, no network.

A simulated 2 x 4 H200 SLURM cluster (real SLURM output formats, real vLLM log lines, GPU memory
that climbs while 163 shards load) runs one h200x8 deployment submitted at start; when it is
ready, a simulated vLLM server answers chats and batches. Everything stays in a temporary
directory, removed on exit (unless --dir is given).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from r1console.commands._common import user_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the console on a simulated cluster (no SLURM, no GPU needed)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="h200x8", help="profile of the deployment submitted at start (h200x8)")
    p.add_argument("--vllm-version", help="vLLM version the simulated deployment runs (default: the profile's)")
    p.add_argument("--load-seconds", type=float, default=150.0,
                   help="simulated seconds to load the 163 shards (150; x time scale = about a minute)")
    p.add_argument("--time-scale", type=float, default=0.4,
                   help="wall seconds per simulated second (0.4: ready in about two minutes; 1 = real time)")
    p.add_argument("--fault", choices=("oom", "nccl", "ray_node_lost"),
                   help="make the deployment fail the way real ones do (ray_node_lost: a node's Ray step dies mid-serve)")
    p.add_argument("--dir", help="keep the simulated cluster's files here (default: a temporary directory)")
    p.set_defaults(func=run_demo)


def make_opener(root: Path, args: argparse.Namespace):
    """``opener(app)`` for the app factory: open the demo session and submit the first deployment."""

    async def opener(app):
        from r1console.adapters.slurm_client import load_profile_for_cluster
        from r1console.demo.cluster import open_demo_session

        session = await open_demo_session(root, time_scale=args.time_scale, load_seconds=args.load_seconds,
                                          fault=args.fault)
        overrides = [f"vllm.version={args.vllm_version}"] if args.vllm_version else []
        loaded = load_profile_for_cluster(args.profile, session.spec, overrides=overrides)
        deployment = await session.submit(loaded)
        app.open_job = deployment.job_id
        return session

    return opener


def run_demo(args: argparse.Namespace) -> int:
    from r1console.tui.factory import make_app

    keep = bool(getattr(args, "dir", None))
    root = Path(args.dir).expanduser() if keep else Path(tempfile.mkdtemp(prefix="r1console-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    defaults = {"profile": "h200x8", "vllm_version": None, "load_seconds": 150.0, "time_scale": 0.4, "fault": None}
    for key, value in defaults.items():
        if not hasattr(args, key) or getattr(args, key) is None and value is not None:
            setattr(args, key, value)
    try:
        app = make_app(user_config(), opener=make_opener(root, args))
        app.run()
        return int(app.return_code or 0)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
