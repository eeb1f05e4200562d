"""Helpers shared by command modules (not a command itself: the leading underscore hides it)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from r1console.core.userconfig import UserConfig, load_user_config


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document for scripts")


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a profile field, e.g. --set vllm.max_num_seqs=64 (repeatable)",
    )


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def user_config() -> UserConfig:
    return load_user_config()


def warn(message: str) -> None:
    print(f"r1console: warning: {message}", file=sys.stderr)
