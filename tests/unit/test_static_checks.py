"""ruff (pyflakes, import order, complexity, bugbear) over the tree and mypy over the core, as configured
in pyproject.toml, so the README's test command runs them too. After a merge, ``tools/ruff-fix.sh``
applies the rules ruff can fix by itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, (f"ruff found problems (tools/ruff-fix.sh fixes the [*] ones):\n"
                                    f"{result.stdout}{result.stderr}")


def test_mypy_is_clean_on_the_core(tmp_path):
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "no issues found" in result.stdout
