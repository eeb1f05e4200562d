"""`r1console completion bash|zsh|tcsh`: print a static shell completion script (shtab).

The script is generated from the parser, so it knows every command and option and costs nothing
at TAB time (no Python runs). Install it once, e.g.:
  bash: r1console completion bash > ~/.local/share/bash-completion/completions/r1console
  zsh:  r1console completion zsh > ~/.zfunc/_r1console   (with fpath+=(~/.zfunc) before compinit)
  tcsh: r1console completion tcsh > ~/.r1console.complete; echo 'source ~/.r1console.complete' >> ~/.tcshrc
"""

from __future__ import annotations

import argparse
import sys

SHELLS = ("bash", "zsh", "tcsh")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh, tcsh)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from r1console.cli import ALL, build_parser

    sys.stdout.write(shtab.complete(build_parser(ALL), shell=args.shell))
    return 0
