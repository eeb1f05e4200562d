"""One finished batch request as the journal records it (:class:`RequestRecord`).

The journal (:mod:`r1console.core.batch_journal`) writes and reads these records; the engine, the
progress counters and the output writers (:mod:`r1console.core.batch_output`) consume them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


@dataclass
class RequestRecord:
    """One finished request, as journalled. Times: ``*_s`` are seconds since the (last)
    attempt was sent; ``started_at``/``finished_at`` are Unix times of the first send and the
    end. ``itl`` is a per-request summary of inter-token gaps (count, mean, p50, p90, p99, max)."""

    id: str
    index: int
    ok: bool
    request_hash: str = ""
    reasoning: str | None = None
    content: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    ttft_s: float | None = None
    ttfot_s: float | None = None
    e2e_s: float | None = None
    itl: dict[str, Any] | None = None
    attempts: int = 1
    error: dict[str, Any] | None = None     # {"message", "status", "type"}
    response_id: str | None = None
    model: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def output_tokens(self) -> int:
        n = (self.usage or {}).get("completion_tokens")
        return int(n) if isinstance(n, int) else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        known = {f for f in cls.__dataclass_fields__}  # newer fields are ignored, older default
        if not isinstance(data.get("id"), str) or not isinstance(data.get("ok"), bool):
            raise ValueError("not a request record (needs id and ok)")
        return cls(**{k: v for k, v in data.items() if k in known})
