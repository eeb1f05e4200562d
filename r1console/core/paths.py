"""Where r1console keeps things. One module, so every path has one definition.

Environment overrides (tests and unusual setups):
  R1CONSOLE_CONFIG     the user config file (default: <user config dir>/config.yaml)
  R1CONSOLE_STATE_DIR  deployment records and other state (default: platformdirs user state dir)
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "r1console"
_PACKAGE = Path(__file__).resolve().parent.parent


def config_file() -> Path:
    override = os.environ.get("R1CONSOLE_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def config_dir() -> Path:
    return config_file().parent


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def state_dir() -> Path:
    override = os.environ.get("R1CONSOLE_STATE_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_state_dir(APP))


def _data_dir(name: str) -> Path:
    """Shipped data: inside the wheel (``r1console/_data/<name>``) or the source checkout."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def shipped_profiles_dir() -> Path:
    return _data_dir("profiles")


def templates_dir() -> Path:
    return _data_dir("slurm")
