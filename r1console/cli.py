"""The ``r1console`` command line: argparse with one module per subcommand.

Every module in ``r1console.commands`` defines ``register(subparsers)``; it adds its parser and
sets ``func`` (``args -> int`` or an awaitable of int). Modules are discovered, so adding a
command never edits this file. With no subcommand, the TUI starts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import pkgutil
import sys

from r1console import __version__
from r1console.core.errors import R1Error

EPILOG = """\
common workflows:
  r1console demo                       the console on a simulated cluster (no SLURM, no GPU)
  r1console render profiles/h200x8.yaml   print the SLURM script a profile renders to
  r1console submit h200x8 --cluster mycluster
  r1console status / logs JOBID --follow / chat --job JOBID "Hello"

Run 'r1console COMMAND --help' for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1console",
        description="Deploy, watch and use DeepSeek-R1 (vLLM) on a SLURM cluster.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"r1console {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    import r1console.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"r1console.commands.{info.name}")
        module.register(sub)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def run_func(func, args: argparse.Namespace) -> int:
    result = func(args)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `r1console --cluster X` (options but no command) means the console.
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version") \
            and "tui" in _subcommands(parser):
        argv = ["tui", *argv]
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # No subcommand: the interactive console, once the TUI command is there.
        if "tui" not in _subcommands(parser):
            parser.print_help()
            return 2
        args = parser.parse_args(["tui"])
        func = args.func
    try:
        return run_func(func, args)
    except R1Error as err:
        print(f"r1console: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("r1console: interrupted", file=sys.stderr)
        return 130
