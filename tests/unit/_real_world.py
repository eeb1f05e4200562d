"""Where ../shared/real-world/ is (real outputs nobody on the team wrote; never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# ../shared/real-world beside the checkout (/work/main -> /work/shared; a worktree under /work/wt/
# one level further up); R1C_REAL_WORLD overrides.
_CANDIDATES = [Path(os.environ["R1C_REAL_WORLD"])] if os.environ.get("R1C_REAL_WORLD") else [
    REPO.parent / "shared" / "real-world", REPO.parent.parent / "shared" / "real-world"]
REAL = next((p.resolve() for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
needs_real_world = pytest.mark.skipif(not REAL.is_dir(), reason=f"real-world corpus absent: {REAL} does not exist")


def real_file(rel: str) -> Path:
    path = REAL / rel
    assert path.is_file(), f"missing real-world file {path}"
    return path
