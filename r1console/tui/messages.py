"""Typed, past-tense messages that workers post and handlers react to.

Workers (all I/O) never touch widgets; they post one of these. High-rate ones are coalesced:
``can_replace`` drops an older pending message of the same kind (used where the message only
says "something changed, read the latest state").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class JobsRefreshed(Message):
    """A new squeue/sacct view of the user's jobs."""

    jobs: list[Any]
    history: list[Any]
    deployments: dict[str, Any]


@dataclass
class JobSubmitted(Message):
    deployment: Any


@dataclass
class JobCancelled(Message):
    job_id: str
    final_state: str


@dataclass
class ClusterFailed(Message):
    """A cluster command failed; ``error`` is user-facing text (SLURM's own stderr included)."""

    title: str
    error: str


@dataclass
class LogGrew(Message):
    """New bytes were appended to a job log buffer (read the buffer; coalesced)."""

    job_id: str
    stream: str  # "out" | "err"

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogGrew) and message.job_id == self.job_id and message.stream == self.stream


@dataclass
class LifecycleChanged(Message):
    job_id: str
    state: Any  # core.lifecycle snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LifecycleChanged) and message.job_id == self.job_id


@dataclass
class GpusSampled(Message):
    job_id: str
    samples: list[Any]
    error: str | None = None


@dataclass
class MetricsSampled(Message):
    job_id: str
    metrics: Any
    tokens_per_s: float | None


@dataclass
class ChatDeltaReceived(Message):
    """Reasoning/answer text that arrived since the last message (the worker coalesces deltas)."""

    turn_index: int
    reasoning: str
    content: str


@dataclass
class ChatTurnEnded(Message):
    turn_index: int
    state: str
    summary: str


@dataclass
class BatchProgressed(Message):
    progress: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BatchProgressed)


@dataclass
class BatchEnded(Message):
    summary: Any
    error: str | None = None
