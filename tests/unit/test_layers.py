"""The layer order, read from the source (every ``import``, function bodies and TYPE_CHECKING blocks included).

``commands`` > ``tui`` > ``demo`` > ``adapters`` > ``core``: a layer imports only layers below it,
and the headless core none of the I/O or UI libraries. The run-time check that importing the
core loads no Textual is ``test_import_boundary.py``; this one also sees the imports that run late.
"""

from __future__ import annotations

import ast
from pathlib import Path

import r1console

ROOT = Path(r1console.__file__).parent

#: layer -> (r1console sub-packages it must not import, third-party packages it must not import)
FORBIDDEN: dict[str, tuple[set[str], set[str]]] = {
    "core": ({"adapters", "tui", "commands", "demo", "cli", "dev"}, {"textual", "rich", "asyncssh", "httpx", "psutil"}),
    "adapters": ({"tui", "commands", "demo", "cli"}, {"textual"}),
    "demo": ({"tui", "commands", "cli"}, {"textual"}),
    "tui": ({"commands", "cli"}, {"asyncssh"}),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, wherever it stands."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # `from r1console import tui` names a sub-package too
            if name == "r1console":
                out += [(node.lineno, f"r1console.{alias.name}") for alias in node.names]
    return out


def layer_violations() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        layer = path.relative_to(ROOT).parts[0]
        if layer not in FORBIDDEN:
            continue
        own, external = FORBIDDEN[layer]
        for line, name in imports_of(path):
            top, _, rest = name.partition(".")
            sub = rest.split(".")[0]
            if (top == "r1console" and sub in own) or top in external:
                problems.append(f"{path.relative_to(ROOT.parent)}:{line}: the {layer} layer imports {name}")
    return problems


def test_layers_import_only_downwards():
    assert layer_violations() == []


def test_the_walk_sees_late_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "r1console" / "core"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..tui import app\n    import textual.widgets\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path / "r1console")
    assert [name for _line, name in imports_of(pkg / "x.py")] == ["r1console.tui", "textual.widgets"]
    assert layer_violations() == [
        "r1console/core/x.py:2: the core layer imports r1console.tui",
        "r1console/core/x.py:3: the core layer imports textual.widgets",
    ]
