"""The README's first command, exactly as written, on a copy of the source tree in a temporary directory.

It must work on a stock Debian/Ubuntu Python, whose pip refuses to install outside a venv (PEP 668), so
the line creates a venv and installs into it. The test runs every part of the line before the final
`r1console demo` verbatim with bash (a fresh venv WITHOUT system site-packages: every dependency is
resolved and installed from the package index, so an undeclared dependency fails here), then, instead
of the interactive demo, runs the same installed `r1console` non-interactively and imports the modules
that need each runtime dependency. Costs 25-50 s (pip downloads ~40 wheels; cached after .ci/run's pip).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "r1console", "profiles", "slurm")


def readme_first_command() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no ```bash block"
    line = block.group(1).splitlines()[0]
    return line.split("   #", 1)[0].strip()


def test_readme_install_line_in_a_fresh_venv(tmp_path):
    command = readme_first_command()
    parts = command.split(" && ")
    assert parts[-1].endswith("r1console demo"), command
    assert "pip install" in command and ("venv" in command or "pipx" in command or "uv tool" in command), command
    install = " && ".join(parts[:-1])
    r1console = parts[-1][: -len(" demo")]  # the README's own path to the installed command

    tree = tmp_path / "r1console-src"
    tree.mkdir()
    for name in SOURCE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tree / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_USER")}
    env["R1CONSOLE_CONFIG"] = str(tmp_path / "none.yaml")
    done = subprocess.run(["bash", "-c", install], cwd=tree, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{install!r} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", " ".join([r1console, *argv])], cwd=tree, env=env, capture_output=True,
                              text=True, timeout=120)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("r1console "), version
    demo = run("demo", "--help")
    assert demo.returncode == 0 and "simulated" in demo.stdout, demo
    rendered = run("render", "h200x8")  # the shipped profiles and the template came with the wheel
    assert rendered.returncode == 0 and rendered.stdout.startswith("#!/bin/bash"), rendered.stderr
    python = str((tree / os.path.expanduser(r1console)).with_name("python"))  # run outside the tree: the installed copy
    code = ("import importlib.metadata as m, r1console.tui.app, r1console.adapters.web, r1console.adapters.vllm_client, "
            "r1console.commands.completion, rich, shtab; "
            "print(any(str(f).endswith('LICENSE') for f in m.files('r1console')))")
    imported = subprocess.run(["bash", "-c", f"{python} -c \"{code}\""], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "True", "the wheel does not ship LICENSE"
