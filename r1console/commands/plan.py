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

from r1console.core import planner
from r1console.core.plan.local import resolve_model
from r1console.core.plan.text import render_text
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


__all__ = ["register", "render_text", "resolve_model", "run"]
