"""Relay past the walltime: when to submit a deployment's successor, when to move the endpoint.

Pure decisions; the serve controller (``adapters/serve_controller``) feeds in what SLURM and the
replicas report and carries out the :class:`Action` list :meth:`RelayChain.step` returns:

1. ``submit``: the current job has less than ``lead_time`` left (its time limit minus the time
   used, i.e. squeue's end time minus now) and there is no successor yet: submit one.
2. ``promote``: the successor answers ``/health``: new requests go to it, the old job drains
   (finishes what it has in flight, takes nothing new).
3. ``cancel``: a draining job has nothing left in flight (or its time is up): scancel it.
4. ``resubmit``: the current job (or a successor still loading) failed: submit again after
   ``restart_backoff * 2**n`` (capped at 1 h), at most ``max_restarts`` times; then ``give-up``.

Durations in profiles are text like ``45m``, ``2h``, ``1h30m``, ``90s`` or ``1d`` (:func:`parse_span`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
MAX_BACKOFF_S = 3600.0

SUBMIT = "submit"
PROMOTE = "promote"
CANCEL = "cancel"
RESUBMIT = "resubmit"
GIVE_UP = "give-up"

ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                   "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", "GONE"})


def parse_span(value: object, what: str = "duration") -> float:
    """``"45m"`` → 2700.0 seconds. A bare number is seconds. ValueError with the offending text."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a duration like 45m or 2h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value!r}")
        return float(value)
    text = str(value).strip().replace(" ", "")
    if not text:
        raise ValueError(f"{what} is empty")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _SPAN_PART.match(text, pos)
        if not m:
            raise ValueError(f"{what} {value!r} is not a duration like 45m, 2h, 1h30m, 90s or 1d")
        total += float(m.group(1)) * _UNIT[m.group(2).lower()]
        pos = m.end()
    return total


def format_span(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@dataclass(frozen=True)
class RelayPolicy:
    lead_time_s: float = 45 * 60.0
    max_restarts: int = 3
    restart_backoff_s: float = 60.0

    def backoff(self, restarts_done: int) -> float:
        return min(MAX_BACKOFF_S, self.restart_backoff_s * (2 ** max(0, restarts_done)))


@dataclass(frozen=True)
class JobView:
    """What the controller knows about one job of the chain right now."""

    job_id: str
    state: str                      # SLURM base state (PENDING, RUNNING, ...; GONE: unknown to SLURM)
    ready: bool = False             # its server answers /health
    remaining_s: float | None = None  # time limit minus time used; None: unlimited/unknown
    outstanding: int = 0            # requests in flight through the endpoint

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def _view(views: dict[str, JobView], job: str | None) -> JobView | None:
    return views.get(job) if job else None


@dataclass(frozen=True)
class Action:
    kind: str
    job_id: str | None = None
    reason: str = ""


@dataclass
class RelayChain:
    """One endpoint's chain of jobs. ``current`` serves; ``successor`` loads; ``draining`` finish."""

    policy: RelayPolicy
    current: str | None = None
    successor: str | None = None
    draining: list[str] = field(default_factory=list)
    restarts: int = 0
    not_before: float = 0.0          # no successor submit before this time (after a failed submit)
    restart_due: float | None = None  # when the scheduled resubmit goes out (backoff)
    restart_role: str = "current"
    gave_up: bool = False
    events: list[tuple[float, str]] = field(default_factory=list)
    _cancelled: set[str] = field(default_factory=set)
    _pending_submit: str | None = None   # "successor" | "current": a submit asked for, not yet reported

    def note(self, now: float, text: str) -> None:
        self.events.append((now, text))

    # ---- reports from the controller ----------------------------------------------------
    def submitted(self, job_id: str, now: float) -> None:
        """The submit/resubmit asked for by the last step went through as ``job_id``."""
        role, self._pending_submit = self._pending_submit, None
        if role == "current" or self.current is None and self.successor is None:
            self.current = job_id
            self.note(now, f"job {job_id} submitted (restart {self.restarts})" if self.restarts else
                      f"job {job_id} submitted")
        else:
            self.successor = job_id
            self.note(now, f"successor {job_id} submitted for {self.current}")

    def submit_failed(self, now: float, error: str) -> None:
        """sbatch refused: try again after the backoff (counts as a restart)."""
        role, self._pending_submit = self._pending_submit or "current", None
        self.note(now, f"submit failed: {error}")
        if role == "successor" and self.current is not None:
            self.restarts += 1
            self.not_before = now + self.policy.backoff(self.restarts - 1)
            if self.restarts > self.policy.max_restarts:
                self.gave_up = True
                self.note(now, f"gave up after {self.restarts - 1} restarts")
            return
        self._restart(now, role)

    def cancelled(self, job_id: str, now: float) -> None:
        self._cancelled.add(job_id)
        if job_id in self.draining:
            self.draining.remove(job_id)
        self.note(now, f"job {job_id} cancelled after draining")

    def jobs(self) -> list[str]:
        return [j for j in (self.current, self.successor, *self.draining) if j]

    # ---- the decision ------------------------------------------------------------------
    def step(self, now: float, views: dict[str, JobView]) -> list[Action]:
        """What to do now, given what SLURM and the replicas report (``views`` by job id)."""
        if self.gave_up or self._pending_submit:
            return []
        if self.restart_due is not None:
            return self._due(now)
        actions = self._check_draining(now, views)
        cur, succ = _view(views, self.current), _view(views, self.successor)
        if succ is not None and succ.ended:
            return actions + self._successor_failed(now, succ)
        if succ is not None and succ.ready:
            return actions + [self._promote(now, cur)]
        if self.current is not None and (cur is None or cur.ended):
            return actions + self._current_ended(now, cur)
        if self.current is None and self.successor is None:
            return actions
        submit = self._successor_submit(now, cur)
        return actions + ([submit] if submit is not None else [])

    def _check_draining(self, now: float, views: dict[str, JobView]) -> list[Action]:
        """1. Draining jobs: cancel once empty; forget one that already ended."""
        actions: list[Action] = []
        for job in list(self.draining):
            v = _view(views, job)
            if v is None or v.ended:
                self.draining.remove(job)
                self.note(now, f"job {job} ended while draining ({v.state if v else 'gone'})")
            elif v.outstanding == 0:
                actions.append(Action(CANCEL, job, "drained"))
        return actions

    def _successor_failed(self, now: float, succ: JobView) -> list[Action]:
        """2. A successor that ended before it was ready: submit it again (after the backoff)."""
        self.note(now, f"successor {self.successor} ended {succ.state} before it was ready")
        self.successor = None
        return self._restart(now, "successor")

    def _promote(self, now: float, cur: JobView | None) -> Action:
        """3. The successor is ready: move the endpoint to it; the old job drains."""
        old = self.current
        self.current, self.successor = self.successor, None
        if old and cur is not None and not cur.ended:
            self.draining.append(old)
        self.note(now, f"endpoint moved to {self.current}" + (f"; {old} drains" if old else ""))
        self.restarts = 0
        return Action(PROMOTE, self.current, f"successor ready, {old or 'nothing'} drains")

    def _current_ended(self, now: float, cur: JobView | None) -> list[Action]:
        """4. The current job ended: its successor (if any) takes over once ready, else restart."""
        state = cur.state if cur else "GONE"
        self.note(now, f"job {self.current} ended {state}")
        self.current = None
        if self.successor is not None:
            # the successor is on its way: it becomes the current job when it is ready
            self.current, self.successor = self.successor, None
            return []
        return self._restart(now, "current")

    def _successor_submit(self, now: float, cur: JobView | None) -> Action | None:
        """5. Time to submit the successor: the ready current job has under the lead time left."""
        if cur is not None and self.successor is None and cur.state == "RUNNING" and cur.ready \
                and cur.remaining_s is not None and cur.remaining_s <= self.policy.lead_time_s:
            if now >= self.not_before:
                self._pending_submit = "successor"
                return Action(SUBMIT, self.current,
                              f"{format_span(cur.remaining_s)} left, lead time "
                              f"{format_span(self.policy.lead_time_s)}")
        return None

    def _restart(self, now: float, role: str) -> list[Action]:
        """Schedule a resubmit after the backoff (or give up past max_restarts)."""
        if self.restarts >= self.policy.max_restarts:
            self.gave_up = True
            self.note(now, f"gave up after {self.restarts} restarts")
            return [Action(GIVE_UP, None, f"{self.restarts} restarts (max_restarts)")]
        self.restart_due = now + self.policy.backoff(self.restarts)
        self.restart_role = role
        self.note(now, f"restart {self.restarts + 1} of {self.policy.max_restarts} "
                       f"in {format_span(self.restart_due - now)}")
        return self._due(now)

    def _due(self, now: float) -> list[Action]:
        if self.restart_due is None or now < self.restart_due:
            return []
        self.restarts += 1
        self.restart_due = None
        self._pending_submit = self.restart_role
        return [Action(RESUBMIT, None, f"restart {self.restarts} of {self.policy.max_restarts}")]


__all__ = ["CANCEL", "ENDED", "GIVE_UP", "PROMOTE", "RESUBMIT", "SUBMIT", "Action", "JobView", "RelayChain",
           "RelayPolicy", "format_span", "parse_span"]
