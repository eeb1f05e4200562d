"""One send of the batch engine: what the sender sees (:class:`SendContext`, the ``Send`` and ``Probe``
callables) and the engine's own records of a request in flight (``_Slot``) or waiting to retry (``_Retry``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from r1console.core.batch_input import BatchItem
from r1console.core.batch_progress import EngineState
from r1console.core.streaming import ChatResult

if TYPE_CHECKING:
    from r1console.core.batch_engine import BatchEngine


class SendContext:
    """Handed to ``send`` with each attempt. The sender reports progress through it:
    :meth:`connected` when the server accepted the request, :meth:`chunk` per token-carrying
    chunk (live tok/s, and proof that the server is up)."""

    def __init__(self, engine: BatchEngine, item: BatchItem, attempt: int) -> None:
        self._engine = engine
        self.item = item
        self.attempt = attempt          # 1 for the first send
        self.chunks = 0
        self.answer_chunks = 0

    def connected(self) -> None:
        self._engine._server_alive(answered=True)

    def chunk(self, answer: bool = False, tokens: int = 1) -> None:
        self.chunks += 1
        if answer:
            self.answer_chunks += 1
        engine = self._engine
        engine._live_tokens += tokens
        if engine._pending and engine.state is EngineState.RUNNING:
            engine._backlog_tokens += tokens
        if self.chunks == 1:
            self._engine._server_alive(answered=True)


Send = Callable[[BatchItem, SendContext], Awaitable[ChatResult]]
Probe = Callable[[], Awaitable[bool]]


@dataclass(order=True)
class _Retry:
    not_before: float
    index: int
    item: BatchItem = field(compare=False)


@dataclass
class _Slot:
    item: BatchItem
    attempt: int
    first_sent_at: float            # wall time of the first attempt
    while_down: bool = False        # sent as the test request while the server was down
    task: asyncio.Task | None = None
