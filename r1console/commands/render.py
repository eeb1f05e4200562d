"""`r1console render PROFILE`: print the SLURM script a profile renders to."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from r1console.commands._common import add_set_flag, user_config, warn
from r1console.core.errors import R1Error
from r1console.core.profiles import load_profile
from r1console.core.render import RenderPlan, key_file_for, render_script


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="print the SLURM batch script for a profile",
        description="Render a profile into a SLURM batch script (bash -n and shellcheck clean). "
        "`r1console submit` renders the same way and uploads it.",
    )
    p.add_argument("profile", help="profile name (e.g. h200x8) or path to a .yaml file")
    p.add_argument("-o", "--output", metavar="FILE", help="write the script here instead of stdout")
    p.add_argument("--workdir", help="absolute workdir on the cluster (default: the profile's; a leading ~ is "
                   "left to the cluster's $HOME)")
    add_set_flag(p)
    p.set_defaults(func=run)


def _home_relative(workdir: str) -> bool:
    return workdir == "~" or workdir.startswith("~/")


def run(args: argparse.Namespace) -> int:
    config = user_config()
    loaded = load_profile(args.profile, dirs=config.profile_search_dirs(), overrides=args.overrides)
    profile = loaded.profile
    for message in loaded.warnings:
        warn(f"{loaded.source}: {message}")
    # `~` stays for the cluster to expand (this machine's $HOME means nothing there); ~user is expanded here.
    workdir = args.workdir or (profile.workdir if _home_relative(profile.workdir)
                               else os.path.expanduser(profile.workdir))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    plan = RenderPlan(workdir=workdir, api_key_file=key_file_for(profile, workdir, f"{profile.name}-{stamp}"))
    script = render_script(profile, plan)
    if args.output:
        out = Path(args.output)
        try:
            out.write_text(script, encoding="utf-8")
        except OSError as err:
            raise R1Error(f"{out}: cannot write: {err.strerror}") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(script)
    if _home_relative(workdir):
        print(f"r1console: note: workdir {workdir} is under the cluster's $HOME, so the script has no --chdir: sbatch "
              "writes the job's logs in the directory you submit from (or pass --workdir ABSOLUTE_PATH).",
              file=sys.stderr)
    if plan.api_key_file and profile.server.api_key == "auto":
        print(f"r1console: note: the job reads its API key from {plan.api_key_file}; "
              "`r1console submit` creates it (0600). Create it yourself if you sbatch this by hand.",
              file=sys.stderr)
    return 0
