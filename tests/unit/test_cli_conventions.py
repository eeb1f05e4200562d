"""CLI conventions and first-hour papercuts: lazy start-up, completion, config init, exit codes, NO_COLOR,
did-you-mean for --set and --cluster, render without this machine's $HOME, log-status's exit code,
declared dependencies and the licence."""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from r1console import cli
from r1console.cli import ALL, build_parser, main
from r1console.core import errors

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "data" / "logs"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1console", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


# ---- start-up: only the command being run is imported -------------------------------------------

def test_help_and_version_import_no_command_module():
    code = ("import sys\nfrom r1console.cli import main\n"
            "for argv in (['--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "mods = sorted(m for m in sys.modules if m.startswith(('r1console.commands.', 'r1console.adapters',"
            " 'pydantic', 'yaml', 'textual', 'asyncio', 'httpx')))\n"
            "print('MODULES', mods)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "MODULES ['r1console.commands._index']" in out, out


def test_a_command_imports_only_its_own_module():
    code = ("import sys\nfrom r1console.cli import main\n"
            "try:\n    main(['render', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('MODULES', sorted(m for m in sys.modules if m.startswith('r1console.commands.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "MODULES ['r1console.commands._common', 'r1console.commands._index', 'r1console.commands.render']" in out


def test_lazy_help_is_the_eager_help():
    assert build_parser(None).format_help() == build_parser(ALL).format_help()


def test_the_command_index_is_current():
    from r1console.commands._index import COMMANDS

    assert COMMANDS == cli.scan_commands(), "run: python3 -m r1console.commands._index"


def test_a_command_missing_from_the_index_still_runs(monkeypatch, capsys):
    from r1console.commands import _index

    monkeypatch.setattr(_index, "COMMANDS", {k: v for k, v in _index.COMMANDS.items() if k != "config"})
    monkeypatch.setenv("R1CONSOLE_CONFIG", "/nonexistent/r1c.yaml")
    assert main(["config", "path"]) == 0 and capsys.readouterr().out.strip() == "/nonexistent/r1c.yaml"


def test_unknown_command_is_a_usage_error_listing_the_commands():
    result = run_cli("rendr", "h200x8")
    assert result.returncode == errors.EXIT_USAGE and "invalid choice: 'rendr'" in result.stderr
    assert "'render'" in result.stderr and "'serve-web'" in result.stderr


# ---- shell completion --------------------------------------------------------------------------

def test_bash_completion_completes_commands_and_options(tmp_path):
    script = tmp_path / "r1console.bash"
    result = run_cli("completion", "bash")
    assert result.returncode == 0
    script.write_text(result.stdout)
    probe = (f"source {script}\n"
             "complete_words() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMP_LINE=\"$*\"; "
             "COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _shtab_r1console; echo \"${COMPREPLY[*]}\"; }\n"
             "complete_words r1console serve-\ncomplete_words r1console log-status --js\n"
             "complete_words r1console config i\n")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert out == ["serve-web", "--json", "init"], out


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_zsh_and_tcsh_scripts_load(shell, tmp_path):
    result = run_cli("completion", shell)
    assert result.returncode == 0 and "serve-web" in result.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed to load the script")
    script = tmp_path / f"r1console.{shell}"
    script.write_text(result.stdout)
    check = ["zsh", "-n", str(script)] if shell == "zsh" else ["tcsh", "-f", "-c", f"source {script}"]
    loaded = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert loaded.returncode == 0, loaded.stderr


# ---- config init -------------------------------------------------------------------------------

def test_config_init_writes_a_valid_commented_starter(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "sub" / "config.yaml"
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(cfg))
    assert main(["config", "init"]) == 0 and f"wrote {cfg}" in capsys.readouterr().out
    text = cfg.read_text()
    assert text.count("\n#") > 10  # commented
    assert main(["config", "check"]) == 0 and "ok (0 cluster(s)" in capsys.readouterr().out
    # uncommenting the example keys gives a valid config with the example cluster as the default
    cfg.write_text(re.sub(r"(?m)^# ?( *[a-z_-]+:( |$))", r"\1", text))
    assert main(["config", "check"]) == 0
    assert "ok (2 cluster(s), default: mycluster)" in capsys.readouterr().out


def test_config_init_refuses_to_overwrite_without_force(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("theme: mine\n")
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(cfg))
    assert main(["config", "init"]) == errors.EXIT_USAGE
    assert "exists already; not overwritten" in capsys.readouterr().err and cfg.read_text() == "theme: mine\n"
    assert main(["config", "init", "--force"]) == 0 and "theme: textual-dark" in cfg.read_text()


# ---- exit codes --------------------------------------------------------------------------------

def test_readme_exit_code_table_matches_the_constants():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `(EXIT_[A-Z_]+)` \|", section, re.M)
    constants = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert {name: int(code) for code, name in rows} == constants
    assert [int(code) for code, _ in rows] == sorted(constants.values())


def test_error_classes_use_the_table():
    from r1console.adapters.transport import TransportError

    assert errors.ConfigError(["x"]).exit_code == errors.EXIT_CONFIG
    assert errors.ClusterError("x").exit_code == errors.EXIT_CLUSTER
    assert TransportError("x").exit_code == errors.EXIT_CLUSTER
    assert errors.RemoteError("x").exit_code == errors.EXIT_ERROR
    assert errors.R1Error("x").exit_code == errors.EXIT_USAGE


def test_log_status_exit_code_reflects_a_failed_job():
    failed = run_cli("log-status", *map(str, sorted((LOGS / "0.8.5-ray" / "nccl_timeout").iterdir())))
    assert failed.returncode == errors.EXIT_DEPLOYMENT_FAILED and "failed" in failed.stdout
    ready = run_cli("log-status", *map(str, sorted((LOGS / "0.8.5-ray" / "ready").iterdir())))
    assert ready.returncode == errors.EXIT_OK and "ready" in ready.stdout


# ---- NO_COLOR ----------------------------------------------------------------------------------

def test_sweep_plot_has_no_colour_under_no_color(monkeypatch):
    from rich.console import Console

    from r1console.commands import sweep

    asked = []
    monkeypatch.setattr(sweep, "render_plot", lambda rows, **kw: asked.append(kw["color"]) or "plot")
    monkeypatch.delenv("NO_COLOR", raising=False)
    sweep.plot([], Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.setenv("NO_COLOR", "1")
    sweep.plot([], Console(file=io.StringIO(), force_terminal=True))
    assert asked == [True, False]


def test_chat_output_has_no_colour_under_no_color(monkeypatch):
    from rich.console import Console

    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    Console(file=out, force_terminal=True).print("[dim]thinking[/dim] [red]answer[/red]")
    assert "answer" in out.getvalue() and not re.search(r"\x1b\[[0-9;]*3[0-9]", out.getvalue())


async def test_the_console_is_monochrome_under_no_color(monkeypatch):
    from textual.filter import Monochrome, NoColor

    from r1console.core.userconfig import UserConfig
    from r1console.tui.factory import make_app

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(UserConfig())
    assert app.no_color and any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)
    monkeypatch.delenv("NO_COLOR")
    assert not make_app(UserConfig()).no_color


# ---- did you mean ------------------------------------------------------------------------------

def test_set_with_a_bare_key_suggests_its_section():
    result = run_cli("render", "h200x8", "--set", "nodes=3")
    assert result.returncode == errors.EXIT_CONFIG
    assert "--set nodes=3: unknown key `nodes`; did you mean `slurm.nodes`?" in result.stderr
    typo = run_cli("render", "h200x8", "--set", "vllm.max_num_seq=3")
    assert "did you mean `max_num_seqs`?" in typo.stderr  # a look-alike at the same level still wins there


def test_mistyped_cluster_says_so(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  ServerAliveInterval 30\nHost holylogin\n  HostName h.example\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("clusters:\n  fasrc: {ssh_host: holylogin}\n")
    env = {"HOME": str(home), "R1CONSOLE_CONFIG": str(cfg)}
    result = run_cli("status", "--cluster", "fasrcc", env=env)
    assert result.returncode == errors.EXIT_CLUSTER, result.stderr
    assert "unknown cluster 'fasrcc'" in result.stderr and "did you mean 'fasrc'?" in result.stderr
    assert "host key" not in result.stderr
    result = run_cli("status", "--cluster", "holylogn", env=env)
    assert "did you mean 'holylogin'?" in result.stderr  # Host aliases from ~/.ssh/config count too

    from r1console.core.userconfig import load_user_config

    monkeypatch.setenv("HOME", str(home))
    config = load_user_config(cfg)
    assert config.cluster("holylogin").host == "holylogin"                 # a Host alias
    assert config.cluster("login.example.edu").host == "login.example.edu"  # a full host name


# ---- render: the cluster's $HOME, not this machine's ------------------------------------------

def test_render_does_not_bake_the_local_home_into_the_script(tmp_path):
    result = run_cli("render", "h200x8", env={"HOME": "/home/alice-laptop"})
    assert result.returncode == 0
    script = result.stdout
    assert "alice-laptop" not in script and "--chdir" not in script
    assert 'R1C_WORKDIR="$HOME"/r1console' in script and "no --chdir" in result.stderr
    settings = "\n".join(line for line in script.splitlines() if line.startswith(("R1C_WORKDIR=", "R1C_API_KEY_FILE=")))
    shown = subprocess.run(["bash", "-c", settings + '\necho "$R1C_WORKDIR $R1C_API_KEY_FILE"'],
                           env={"HOME": "/home/alice-cluster", "PATH": os.environ["PATH"]},
                           capture_output=True, text=True).stdout.split()
    assert shown[0] == "/home/alice-cluster/r1console" and shown[1].startswith("/home/alice-cluster/r1console/keys/")
    explicit = run_cli("render", "h200x8", "--workdir", "/scratch/alice/r1")
    assert "#SBATCH --chdir=/scratch/alice/r1" in explicit.stdout


# ---- packaging ---------------------------------------------------------------------------------

def test_rich_is_declared_and_the_licence_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert {"rich", "textual", "textual-serve", "shtab"} <= names
    licence = (REPO / "LICENSE").read_text()
    assert project["license"] == {"text": "Apache-2.0"}
    assert "Apache License" in licence[:200] and "Version 2.0, January 2004" in licence[:200]


def test_serve_web_runs_this_r1console_with_the_same_options():
    from r1console.commands.serve_web import console_argv

    base = [sys.executable, "-m", "r1console"]
    assert console_argv(argparse.Namespace(demo=True, cluster=None, job=None)) == [*base, "demo"]
    assert console_argv(argparse.Namespace(demo=False, cluster="fas rc", job="42")) == \
        [*base, "tui", "--cluster", "fas rc", "--job", "42"]
    assert run_cli("serve-web", "--port", "70000").returncode == errors.EXIT_USAGE
