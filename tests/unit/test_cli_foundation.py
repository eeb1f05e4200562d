"""The command line: --help, --version, render, profiles, config; errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from r1console import __version__
from r1console.cli import main
from r1console.core.errors import EXIT_CONFIG


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"r1console {__version__}"
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("render", "profiles", "config"):
        assert command in result.stdout


def test_render_prints_a_script(capsys):
    assert main(["render", "profiles/h100x16.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash") and "--tensor-parallel-size 16" in out


def test_render_to_file(tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    assert main(["render", "h200x8", "-o", str(out), "--set", "vllm.version=0.33.0"]) == 0
    assert "--enable-reasoning" not in out.read_text() and "--tensor-parallel-size 8" in out.read_text()


def test_typo_fails_cleanly_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        name: bad
        model: {path: /m}
        vllm:
          version: "0.8.5"
          max_num_seq: 8
        """))
    result = run_cli("render", str(bad))
    assert result.returncode == EXIT_CONFIG
    assert f"{bad}:5:3: unknown key `vllm.max_num_seq`; did you mean `max_num_seqs`?" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_profile_file():
    result = run_cli("render", "nope/missing.yaml")
    assert result.returncode == EXIT_CONFIG and "nope/missing.yaml: profile file not found" in result.stderr


def test_profiles_list_show_check(capsys, tmp_path):
    assert main(["profiles", "list", "--json"]) == 0
    import json

    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"h100x16", "h200x8", "h200x8-current", "tiny-cpu"} <= names
    assert main(["profiles", "show", "h200x8-current"]) == 0
    assert "enable_expert_parallel: true" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodel: {path: /m}\nvllm: {version: '0.8.5', max_num_seqs: 0}\n")
    assert main(["profiles", "check", "h200x8", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "h200x8.yaml: ok" in captured.out and "`vllm.max_num_seqs`" in captured.err


def test_config_path_show_check(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.yaml"
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(cfg))
    assert main(["config", "path"]) == 0 and capsys.readouterr().out.strip() == str(cfg)
    assert main(["config", "check"]) == 0 and "no config file yet" in capsys.readouterr().out
    cfg.write_text("default_cluster: c1\nclusters:\n  c1: {ssh_host: login1, workdir: /scratch/me}\n")
    assert main(["config", "check"]) == 0
    assert "1 cluster(s), default: c1" in capsys.readouterr().out
    assert main(["config", "show", "--json"]) == 0
    assert '"ssh_host": "login1"' in capsys.readouterr().out
    cfg.write_text("clusters:\n  c1: {ssh_hots: login1}\n")
    assert main(["config", "check"]) == EXIT_CONFIG
    assert f"{cfg}:2:8: unknown key `clusters.c1.ssh_hots`; did you mean `ssh_host`?" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["render"], ["profiles"], ["config"]])
def test_missing_arguments_are_usage_errors(args):
    result = run_cli(*args)
    assert result.returncode == 2 and "usage:" in result.stderr
