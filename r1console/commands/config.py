"""`r1console config path|show|check`: the user config file."""

from __future__ import annotations

import argparse
import sys

import yaml

from r1console.commands._common import add_json_flag, print_json
from r1console.core import paths
from r1console.core.userconfig import load_user_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="where the config file is, what it holds, whether it is valid")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("path", help="print the config file's path").set_defaults(func=run_path)
    show = psub.add_parser("show", help="print the effective config")
    add_json_flag(show)
    show.set_defaults(func=run_show)
    psub.add_parser("check", help="validate the config file").set_defaults(func=run_check)


def run_path(args: argparse.Namespace) -> int:
    print(paths.config_file())
    return 0


def run_show(args: argparse.Namespace) -> int:
    data = load_user_config().model_dump(mode="json")
    if args.json:
        print_json(data)
    else:
        print(f"# {paths.config_file()}" + ("" if paths.config_file().exists() else " (not created yet: defaults)"))
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def run_check(args: argparse.Namespace) -> int:
    config = load_user_config()
    path = paths.config_file()
    if not path.exists():
        print(f"{path}: no config file yet (defaults apply)")
        return 0
    print(f"{path}: ok ({len(config.clusters)} cluster(s), default: {config.default_cluster or 'none'})")
    return 0
