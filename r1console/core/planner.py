"""The memory planner's old home: everything now lives in :mod:`r1console.core.plan` (re-exported here)."""

from __future__ import annotations

from r1console.core.plan import *  # noqa: F403
from r1console.core.plan import __all__  # noqa: F401
