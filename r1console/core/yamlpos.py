"""YAML loading that remembers where every key and value came from (file:line:col).

Profiles and the user config are validated after loading; an error must point at the exact
place in the file. PyYAML's composer gives us node marks; we walk the node tree alongside
the constructed data and record the mark of every mapping key and value by its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from r1console.core.errors import ConfigError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        if self.line <= 0:  # not from a file, e.g. a command-line override
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Located:
    """Loaded YAML data plus the marks of its keys (``keys``) and values (``values``)."""

    data: Any
    file: str
    keys: dict[PathKey, Mark]
    values: dict[PathKey, Mark]

    def mark(self, path: PathKey) -> Mark:
        """Best mark for ``path``: the key itself, else the nearest enclosing key, else the file."""
        for cut in range(len(path), 0, -1):
            sub = tuple(path[:cut])
            if sub in self.keys:
                return self.keys[sub]
            if sub in self.values:
                return self.values[sub]
        return Mark(self.file, 1, 1)


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(file: str, node: yaml.Node, path: PathKey, keys: dict, values: dict) -> None:
    values[path] = _mark(file, node)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            keys[child] = _mark(file, key_node)
            _walk(file, value_node, child, keys, values)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(file, item, (*path, index), keys, values)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node, deep=False):  # noqa: D401 - PyYAML API
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                m = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first defined on line {seen[key].start_mark.line + 1})", m
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_text(text: str, file: str) -> Located:
    """Parse YAML ``text``; ``file`` names it in errors. Raises ConfigError with file:line:col."""
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{file}: YAML error: {err}"]) from None
    keys: dict[PathKey, Mark] = {}
    values: dict[PathKey, Mark] = {}
    if node is not None:
        _walk(file, node, (), keys, values)
    return Located(data=data, file=file, keys=keys, values=values)


def load_file(path: str | Path) -> Located:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{p}: not UTF-8 text ({err.reason} at byte {err.start})"]) from None
    except OSError as err:
        raise ConfigError([f"{p}: cannot read: {err.strerror}"]) from None
    return load_text(text, str(path))
