"""Typed, past-tense messages that workers post and handlers react to.

Workers (all I/O) never touch widgets; they post one of these. High-rate ones are coalesced:
``can_replace`` drops an older pending message of the same kind (used where the message only
says "something changed, read the latest state").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # textual-free types of the layers below
    from r1console.adapters.deployments import Deployment
    from r1console.core.batch_engine import BatchProgress
    from r1console.core.nvidia_smi import NodeGpus
    from r1console.core.plan import Plan
    from r1console.core.profiles import LoadedProfile
    from r1console.core.prometheus import ServerMetrics
    from r1console.core.slurm_parse import JobInfo


@dataclass
class JobsRefreshed(Message):
    """A new squeue/sacct view of the user's jobs."""

    jobs: list[JobInfo]
    history: list[JobInfo]
    deployments: dict[str, Deployment]


@dataclass
class CancelFinished(Message):
    """scancel returned: the job's state afterwards, or the error SLURM gave (user-facing text)."""

    job_id: str
    state: str | None
    error: str | None = None


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
    """The job's lifecycle may have moved (read the watch's snapshot; coalesced)."""

    job_id: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LifecycleChanged) and message.job_id == self.job_id


@dataclass
class GpusSampled(Message):
    job_id: str
    samples: list[NodeGpus]
    error: str | None = None


@dataclass
class MetricsSampled(Message):
    job_id: str
    metrics: ServerMetrics | None
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
    progress: BatchProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BatchProgressed)


@dataclass
class BatchEnded(Message):
    summary: BatchProgress | None
    error: str | None = None


@dataclass
class PreviewReady(Message):
    """The launch screen's preview for one set of inputs: the loaded profile (or its errors), script, plan."""

    key: tuple[str, tuple[str, ...]]  # (profile, overrides) it was made for
    loaded: LoadedProfile | None
    errors: str
    script: str | None
    plan: Plan | None
    plan_text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PreviewReady)
