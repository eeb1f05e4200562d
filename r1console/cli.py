"""The ``r1console`` command line: argparse with one module per subcommand.

Every module in ``r1console.commands`` defines ``register(subparsers)``; it adds its parser and
sets ``func`` (``args -> int`` or an awaitable of int). Modules are discovered, so adding a
command never edits this file. With no subcommand, the TUI starts.

Start-up stays fast because only the command being run is imported: the other commands appear in
``--help`` through ``r1console/commands/_index.py`` (their names and one-line help, generated:
``python3 -m r1console.commands._index``; a test checks it is current). A command module missing from
the index still works, it is just imported on every start.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from r1console import __version__
from r1console.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, R1Error

EPILOG = """\
common workflows:
  r1console demo                       the console on a simulated cluster (no SLURM, no GPU)
  r1console render h200x8              print the SLURM script a profile renders to
  r1console submit h200x8 --cluster mycluster
  r1console status / logs JOBID --follow / chat --job JOBID "Hello"
  r1console serve-web --demo           the console in a web browser

Run 'r1console COMMAND --help' for a command's options; exit codes are listed in the README.
"""

ALL = "*"


def command_modules() -> list[str]:
    """The command modules' names (no import: a directory listing)."""
    import r1console.commands as pkg

    return sorted(info.name for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_"))


def scan_commands() -> dict[str, tuple[str, str]]:
    """Import every command module: module -> (command name, one-line help), what the index holds."""
    found: dict[str, tuple[str, str]] = {}
    for name in command_modules():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"r1console.commands.{name}").register(sub)
        (action,) = sub._choices_actions
        found[name] = (action.dest, action.help)
    return found


def _index() -> dict[str, tuple[str, str]]:
    try:
        from r1console.commands._index import COMMANDS
    except ImportError:
        return {}
    return COMMANDS


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The parser. ``command`` ALL: every command's real parser (completion, tests);
    a command's name: only that one is imported, the others are listed from the index; None: none."""
    parser = argparse.ArgumentParser(
        prog="r1console",
        description="Deploy, watch and use DeepSeek-R1 (vLLM) on a SLURM cluster.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"r1console {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    index = _index()
    for name in command_modules():
        listed = index.get(name)
        if command != ALL and listed is not None and listed[0] != command:
            sub.add_parser(listed[0], help=listed[1])  # a placeholder: the real one is built when it runs
            continue
        module = importlib.import_module(f"r1console.commands.{name}")
        module.register(sub)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def run_func(func, args: argparse.Namespace) -> int:
    result = func(args)
    if hasattr(result, "__await__"):  # a coroutine (inspect is not imported: start-up time)
        import asyncio

        result = asyncio.run(result)
    return int(result or 0)


def _wanted(argv: list[str]) -> str | None:
    """The command ``argv`` runs, as far as it can be told before parsing."""
    if not argv:
        return "tui"
    if argv[0].startswith("-"):
        return None if argv[0] in ("-h", "--help", "--version") else "tui"
    return argv[0]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_wanted(argv))
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
            return EXIT_USAGE
        args = parser.parse_args(["tui"])
        func = args.func
    try:
        return run_func(func, args)
    except R1Error as err:
        print(f"r1console: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("r1console: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
