"""How the batch engine treats a failed send (:func:`classify_error`: unreachable, transient,
permanent, fatal; see :mod:`r1console.core.batch_engine`), the journal's error object, and the
retry backoff (:class:`RetryPolicy`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

from r1console.core.api_errors import (
    AuthError,
    ModelNotFoundError,
    ProtocolError,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
    StreamInterrupted,
)

FREE_UNREACHABLE = 3   # "unreachable" sends of one item, while the server looks up, that cost no attempt

class ErrorKind(str, Enum):
    UNREACHABLE = "unreachable"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FATAL = "fatal"


def classify_error(exc: BaseException) -> ErrorKind:
    """How the engine treats an exception from ``send`` (see the module docstring)."""
    if isinstance(exc, (AuthError, ModelNotFoundError)):
        return ErrorKind.FATAL
    if isinstance(exc, ServerUnreachable) or isinstance(exc, ConnectionRefusedError):
        return ErrorKind.UNREACHABLE
    if isinstance(exc, ServerError):
        status = exc.status
        if status is None or status in (408, 429) or status >= 500:
            return ErrorKind.TRANSIENT  # None: an error sent inside the stream
        return ErrorKind.PERMANENT
    if isinstance(exc, (ServerTimeout, StreamInterrupted, ProtocolError, TimeoutError,
                        asyncio.TimeoutError, ConnectionError, OSError)):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def error_info(exc: BaseException) -> dict[str, Any]:
    """The journal's ``error`` object for an exception."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    status = getattr(exc, "status", None)
    return {"message": message, "status": status if isinstance(status, int) else None,
            "type": type(exc).__name__}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter. ``backoff(n)`` is the wait before the ``n``-th retry:
    uniform in ``[d/2, d]`` with ``d = min(max_delay, base_delay · 2^(n-1))`` ("equal jitter":
    spread out, never zero)."""

    max_attempts: int = 8            # sends per request for transient errors
    base_delay: float = 0.5
    max_delay: float = 30.0
    give_up_after: float | None = 900.0   # server unreachable this long → stop the run

    def backoff(self, n: int, rng: random.Random) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** max(0, n - 1)))
        return d / 2 + rng.random() * d / 2
