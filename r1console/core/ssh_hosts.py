"""Which names the user's OpenSSH client config knows as ``Host`` aliases (for --cluster checks).

Reads ``Host`` lines of ``~/.ssh/config`` and the files it ``Include``s (globs, relative to ~/.ssh),
nothing else: enough to tell an alias from a typo. A pattern that is only wildcards (``Host *``)
matches every name, so it is not counted as knowing one.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path


def _lines(path: Path, seen: set[Path], depth: int = 0) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    seen.add(path)
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.replace("=", " ", 1).partition(" ")
        keyword, rest = keyword.lower(), rest.strip()
        if keyword == "include" and depth < 8:
            for item in rest.split():
                item = os.path.expanduser(item)
                pattern = item if os.path.isabs(item) else str(Path.home() / ".ssh" / item)
                for found in sorted(glob.glob(pattern)):
                    if Path(found) not in seen:
                        out += _lines(Path(found), seen, depth + 1)
        elif keyword == "host":
            out += [("host", word.strip('"')) for word in rest.split()]
    return out


def host_patterns(config: str | Path | None = None) -> list[str]:
    """Every ``Host`` pattern, in file order (negated ones with their ``!``)."""
    path = Path(os.path.expanduser(str(config))) if config else Path.home() / ".ssh" / "config"
    return [value for _, value in _lines(path, set())]


def knows(name: str, config: str | Path | None = None) -> bool:
    """True when a ``Host`` pattern other than a bare wildcard matches ``name`` (and no ``!pattern`` does)."""
    patterns = host_patterns(config)
    if any(p.startswith("!") and fnmatch.fnmatchcase(name, p[1:]) for p in patterns):
        return False
    return any(not p.startswith("!") and p.strip("*?") and fnmatch.fnmatchcase(name, p) for p in patterns)


def aliases(config: str | Path | None = None) -> list[str]:
    """The plain aliases (no wildcards): what a did-you-mean can offer."""
    return sorted({p for p in host_patterns(config) if not p.startswith("!") and not any(c in p for c in "*?")})
