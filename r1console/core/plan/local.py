"""The model description for a plan made here: a local ``config.json``, else the built-in DeepSeek-R1 numbers.

The one part of the planner that reads this machine's disk (the rest takes a ``read_file``
callable); the CLI's ``plan`` command and the TUI's launch and job screens share it.
"""

from __future__ import annotations

import json
from pathlib import Path

from r1console.core.errors import R1Error
from r1console.core.plan.model import ModelDesc, builtin_model_for, read_model_desc


def _read_local(path: str) -> bytes:
    return Path(path).expanduser().read_bytes()


def _read_dir(directory: Path) -> ModelDesc:
    desc = read_model_desc(_read_local, str(directory))
    if desc is None:  # config.json went away between the check and the read
        raise R1Error(f"{directory}/config.json: not readable")
    return desc


def resolve_model(model_path: str, model_config: str | None) -> tuple[ModelDesc, dict | None, str | None]:
    """(description, config dict for the profile checks, a note on where it came from)."""
    if model_config:
        target = Path(model_config).expanduser()
        directory = target.parent if target.name.endswith(".json") else target
        if not (directory / "config.json").is_file():
            raise R1Error(f"--model-config {model_config}: no config.json there")
        return _read_dir(directory), _config_dict(directory), None
    local = Path(model_path).expanduser()
    if (local / "config.json").is_file():
        return _read_dir(local), _config_dict(local), None
    builtin = builtin_model_for(model_path)
    if builtin is not None:
        return builtin, None, (f"config.json of {model_path} is not readable here: using the built-in "
                               "DeepSeek-R1 FP8 numbers")
    raise R1Error(
        f"cannot plan: {model_path}/config.json is not readable here and the model is not a built-in one "
        "(DeepSeek-R1/V3)",
        hint="pass --model-config PATH/TO/config.json (a local copy of the model's config)",
    )


def _config_dict(directory: Path) -> dict | None:
    try:
        data = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
