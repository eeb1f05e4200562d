"""Helpers shared by command modules (not a command itself: the leading underscore hides it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from r1console.core.errors import R1Error
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


# ---- argparse value types ---------------------------------------------------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


# ---- reaching a server --------------------------------------------------------------------------

def add_target_args(parser: argparse.ArgumentParser, *, deployment: bool = False) -> None:
    """--job | --url (| --deployment), --cluster, --api-key-file, --model, --timeout: chat, batch and sweep."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--job", metavar="JOBID", help="the SLURM job serving the model (via the cluster layer)")
    if deployment:
        target.add_argument("--deployment", metavar="NAME",
                            help="a named deployment: spread the requests over all its ready replicas")
    target.add_argument("--url", metavar="URL",
                        help="base URL of any OpenAI-compatible server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--cluster", metavar="NAME", help="cluster of --job (default: the configured default)")
    parser.add_argument("--api-key-file", metavar="FILE",
                        help="file holding the server's API key (vLLM --api-key); overrides the job's key")
    parser.add_argument("--model", metavar="ID", help="model name to send (default: the server's, from /v1/models)")
    parser.add_argument("--timeout", type=positive_float, default=600.0, metavar="S",
                        help="longest the server may stay silent during one reply (default: 600)")



def read_api_key_file(path: str) -> str:
    """The key in ``path`` (surrounding whitespace removed); a clear error if unusable."""
    try:
        key = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as err:
        raise R1Error(f"cannot read --api-key-file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise R1Error(f"--api-key-file {path} is not a text file") from None
    if not key:
        raise R1Error(f"--api-key-file {path} is empty")
    if "\n" in key:
        raise R1Error(f"--api-key-file {path} has more than one line; it must hold just the key")
    return key


def open_job_server(job_id: str, cluster: str | None):
    """The deployment's server through the cluster connection: ``async with ... as (url, key)``."""
    from r1console.adapters.reach import open_server

    return open_server(job_id, cluster)
