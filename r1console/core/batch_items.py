"""The requests of a batch: :class:`BatchItem` (one request) and :class:`BatchInput` (a whole,
validated input file). :mod:`r1console.core.batch_input` reads files into these."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from r1console.core.batch_input_checks import text_of


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch. ``index`` is its position in the input (output order);
    ``line`` the 1-based line where it starts in the file."""

    id: str
    index: int
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    line: int | None = None

    def request_hash(self) -> str:
        """A digest of what is sent (messages + params + model): the journal uses it to redo
        an item whose prompt changed between a run and its ``--resume``."""
        doc = json.dumps({"m": list(self.messages), "p": dict(self.params), "model": self.model},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(doc.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @property
    def prompt(self) -> str:
        """The last user message's text (for display)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return text_of(m.get("content"))
        return ""


@dataclass(frozen=True)
class BatchInput:
    source: str
    format: str
    items: tuple[BatchItem, ...]
    system_prompt: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]
