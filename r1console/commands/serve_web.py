"""`r1console serve-web [--port P] [--cluster C | --demo]`: the console in a web browser.

Serves the same console through textual-serve on 127.0.0.1 only. Every browser session starts its
own console process. The URL printed at start carries a random token (like Jupyter's); without it
the page and the websocket answer 403, because other users of a login node can reach 127.0.0.1 too
and a session holds your SSH connection. From a laptop: ssh -L 8642:127.0.0.1:8642 LOGIN, then
run `r1console serve-web --port 8642` there and open the printed URL locally.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-web", help="the console in a web browser (127.0.0.1, token in the URL)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--cluster", help="a cluster from the config, an SSH host alias, or 'local'")
    target.add_argument("--demo", action="store_true", help="serve the demo console (simulated cluster)")
    p.add_argument("--job", help="open this job's screen at start")
    p.set_defaults(func=run)


def console_argv(args: argparse.Namespace) -> list[str]:
    """The command each browser session runs: this Python, this r1console, the same options."""
    argv = [sys.executable, "-m", "r1console"]
    if args.demo:
        return [*argv, "demo"]
    argv.append("tui")
    if args.cluster:
        argv += ["--cluster", args.cluster]
    if args.job:
        argv += ["--job", args.job]
    return argv


def run(args: argparse.Namespace) -> int:
    from r1console.core.errors import R1Error

    if not 0 <= args.port <= 65535:
        raise R1Error(f"--port {args.port}: not a TCP port (0-65535)")
    try:
        from r1console.adapters import web
    except ImportError as err:
        raise R1Error(f"serve-web needs textual-serve: {err}", hint="pip install textual-serve") from None

    def announce(url: str) -> None:
        print("r1console serve-web: the console is served on 127.0.0.1 (ctrl+c stops it). Open:", flush=True)
        print(f"    {url}", flush=True)

    title = "r1console demo" if args.demo else "r1console"
    try:
        return web.serve(shlex.join(console_argv(args)), port=args.port, title=title, announce=announce)
    except OSError as err:
        raise R1Error(f"serve-web: cannot listen on 127.0.0.1:{args.port}: {err.strerror or err}") from None
