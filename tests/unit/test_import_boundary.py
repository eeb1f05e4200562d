"""The headless core and the adapters never import Textual (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import r1console

HEADLESS_PACKAGES = ("r1console.core", "r1console.adapters", "r1console.demo")
UI_PACKAGES = ("r1console.tui",)


def headless_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(r1console.__path__, prefix="r1console."):
        if info.name.startswith(HEADLESS_PACKAGES):
            names.append(info.name)
    return sorted(names)


def test_there_is_a_core_to_check():
    assert "r1console.core.profiles" in headless_modules()


def test_headless_modules_do_not_import_textual():
    modules = headless_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"textual imported by the headless core: {result.stdout.strip()}"


def test_headless_cli_commands_do_not_import_textual():
    """`r1console render` and friends must work (and stay fast) without loading the UI."""
    code = (
        "import sys\n"
        "from r1console.cli import build_parser\n"
        "build_parser()\n"
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
