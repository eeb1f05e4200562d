"""What the batch engine shows of a run: its state (:class:`EngineState`), its events
(:class:`BatchEvent`) and its snapshots and final summary (:class:`BatchProgress`, ``--json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from r1console.core.batch_record import RequestRecord
from r1console.core.stats import EMPTY, Summary, throughput


class EngineState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING_SERVER = "waiting-server"
    STOPPING = "stopping"
    STOPPED = "stopped"          # by stop() or give_up_after: resumable
    FINISHED = "finished"        # every item has a record
    FAILED = "failed"            # a fatal error (run() raised it)


@dataclass(frozen=True)
class BatchEvent:
    """``kind``: started | finished | retry | state | server-down | server-up."""

    kind: str
    item_id: str | None = None
    attempt: int | None = None
    record: RequestRecord | None = None
    delay_s: float | None = None
    error: str | None = None
    state: EngineState | None = None


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a run (also the final summary). Times in seconds."""

    state: EngineState
    total: int                   # items in the input
    skipped: int                 # done in an earlier run (not sent)
    ok: int
    failed: int
    in_flight: int
    queued: int                  # not sent yet
    waiting_retry: int           # backing off before a retry
    retries: int                 # retry sends so far
    concurrency: int
    output_tokens: int           # of finished requests (usage.completion_tokens)
    live_tokens: int             # token chunks streamed so far, finished or not
    elapsed_s: float
    mean_in_flight: float
    occupancy: float | None              # mean_in_flight / concurrency over the run
    occupancy_backlogged: float | None   # the same while unsent work was waiting
    ttft: Summary = EMPTY
    ttfot: Summary = EMPTY               # time to first answer token (after reasoning)
    itl: Summary = EMPTY                 # pooled inter-token gaps
    e2e: Summary = EMPTY
    tpot: Summary = EMPTY
    waiting_server_s: float = 0.0        # time spent waiting for an unreachable server
    backlog_s: float = 0.0               # time running with unsent work waiting (window full)
    backlog_tokens: int = 0              # token chunks streamed during that time
    stop_reason: str | None = None
    last_error: str | None = None

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.done

    @property
    def output_tok_s(self) -> float | None:
        return throughput(self.output_tokens, self.elapsed_s)

    @property
    def live_tok_s(self) -> float | None:
        return throughput(self.live_tokens, self.elapsed_s)

    @property
    def steady_tok_s(self) -> float | None:
        """Token rate while the window was full (work waiting): the throughput *at* this
        concurrency, without the ramp-down at the end of a finite batch."""
        return throughput(self.backlog_tokens, self.backlog_s)

    @property
    def request_per_s(self) -> float | None:
        return throughput(self.done, self.elapsed_s)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` summary: latencies in milliseconds."""
        return {
            "state": self.state.value,
            "requests": {"total": self.total, "skipped": self.skipped, "ok": self.ok,
                         "failed": self.failed, "unfinished": self.remaining, "retries": self.retries},
            "concurrency": self.concurrency,
            "output_tokens": self.output_tokens,
            "wall_time_s": round(self.elapsed_s, 6),
            "output_tok_s": _r(self.output_tok_s),
            "steady_tok_s": _r(self.steady_tok_s),
            "request_per_s": _r(self.request_per_s),
            "mean_in_flight": _r(self.mean_in_flight),
            "occupancy": _r(self.occupancy),
            "occupancy_backlogged": _r(self.occupancy_backlogged),
            "ttft_ms": self.ttft.to_dict(1000, 3),
            "ttfot_ms": self.ttfot.to_dict(1000, 3),
            "itl_ms": self.itl.to_dict(1000, 3),
            "e2e_ms": self.e2e.to_dict(1000, 3),
            "tpot_ms": self.tpot.to_dict(1000, 3),
            "waiting_server_s": round(self.waiting_server_s, 3),
            "stop_reason": self.stop_reason,
        }


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)
