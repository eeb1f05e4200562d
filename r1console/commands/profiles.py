"""`r1console profiles list|show|check`: the profiles r1console can see, and their validation."""

from __future__ import annotations

import argparse
import sys

import yaml

from r1console.commands._common import add_json_flag, print_json, user_config
from r1console.core.errors import ConfigError
from r1console.core.profiles import list_profiles, load_profile


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list, show or check deployment profiles")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = psub.add_parser("list", help="every profile on the search path")
    add_json_flag(ls)
    ls.set_defaults(func=run_list)
    show = psub.add_parser("show", help="the fully merged profile (extends resolved)")
    show.add_argument("profile")
    add_json_flag(show)
    show.set_defaults(func=run_show)
    check = psub.add_parser("check", help="validate profiles; non-zero exit on any problem")
    check.add_argument("profiles", nargs="+", metavar="PROFILE")
    check.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    config = user_config()
    rows = []
    for name, path in sorted(list_profiles(config.profile_search_dirs()).items()):
        try:
            description = load_profile(path, dirs=config.profile_search_dirs()).profile.description
        except ConfigError as err:
            description = f"INVALID: {err.problems[0]}"
        rows.append({"name": name, "path": str(path), "description": description})
    if args.json:
        print_json(rows)
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}\n{'':<{width}}  {r['path']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = user_config()
    loaded = load_profile(args.profile, dirs=config.profile_search_dirs())
    data = loaded.profile.model_dump(mode="json")
    if args.json:
        print_json({"source": str(loaded.source), "chain": [str(p) for p in loaded.chain],
                    "profile": data, "warnings": loaded.warnings})
        return 0
    print(f"# {loaded.source}" + (f" (extends {' -> '.join(str(p) for p in loaded.chain[1:])})"
                                  if len(loaded.chain) > 1 else ""))
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    for message in loaded.warnings:
        print(f"# warning: {message}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    config = user_config()
    failed = 0
    for ref in args.profiles:
        try:
            loaded = load_profile(ref, dirs=config.profile_search_dirs())
        except ConfigError as err:
            failed += 1
            print(str(err), file=sys.stderr)
            continue
        print(f"{loaded.source}: ok")
        for message in loaded.warnings:
            print(f"{loaded.source}: warning: {message}")
    return 1 if failed else 0
