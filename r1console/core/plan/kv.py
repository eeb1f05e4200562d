"""KV-cache arithmetic as vLLM V1 does it: bytes per element, whole blocks, token capacity."""

from __future__ import annotations

import shlex

from r1console.core.errors import R1Error
from r1console.core.plan.model import DTYPE_BYTES


def kv_cache_dtype_bytes(kv_cache_dtype: str, model_dtype_bytes: int) -> int:
    """Bytes per KV element: ``auto`` is the model dtype; ``fp8*`` is 1."""
    value = (kv_cache_dtype or "auto").lower()
    if value == "auto":
        return model_dtype_bytes
    if value.startswith("fp8") or value in ("int8", "float8"):
        if value == "fp8_ds_mla":
            raise R1Error("kv_cache_dtype fp8_ds_mla is DeepSeek-V3.2 sparse MLA only; the planner does not model it")
        return 1
    if value in DTYPE_BYTES:
        return DTYPE_BYTES[value]
    raise R1Error(f"unknown kv_cache_dtype {kv_cache_dtype!r} (auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16, float16)")


def kv_token_capacity(kv_bytes: int, bytes_per_token_per_layer: int, num_layers: int, block_size: int) -> tuple[int, int]:
    """(blocks, tokens) as vLLM V1 computes them: ``available // page // num_layers`` whole blocks."""
    if kv_bytes <= 0:
        return 0, 0
    page = block_size * bytes_per_token_per_layer
    blocks = int(kv_bytes) // page // num_layers
    return blocks, blocks * block_size


def round_down(value: int, step: int) -> int:
    return value - value % step if value >= step else value


def extra_arg(args: list[str], flag: str) -> str | None:
    """The value of ``--flag V`` / ``--flag=V`` in a list of extra arguments (items may hold spaces)."""
    words: list[str] = []
    for item in args:
        try:
            words += shlex.split(item)
        except ValueError:
            words.append(item)
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None
