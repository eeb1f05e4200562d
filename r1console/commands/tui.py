"""`r1console [tui] [--cluster NAME] [--job JOBID]`: the interactive console (the default command)."""

from __future__ import annotations

import argparse

from r1console.commands._common import user_config
from r1console.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="the interactive console (also: r1console with no command)",
                       description="The keyboard-driven console. Without a configured cluster it opens a "
                       "welcome screen that explains the config file and offers the demo.")
    p.add_argument("--cluster", help="a cluster from the config, an SSH host alias, or 'local'")
    p.add_argument("--job", help="open this job's screen at start")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from r1console.tui.factory import cluster_opener, make_app

    config = user_config()
    opener = None
    try:
        spec = config.cluster(args.cluster)
        opener = cluster_opener(spec)
    except ConfigError:
        if args.cluster:
            raise
    app = make_app(config, opener=opener, open_job=args.job)
    result = app.run()
    if result == "demo":
        from r1console.commands.demo import run_demo

        return run_demo(argparse.Namespace())
    return int(app.return_code or 0)
