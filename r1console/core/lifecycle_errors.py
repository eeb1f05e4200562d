"""Which logged errors make a job failed (for ``lifecycle``): the error ledger.

Every fatal occurrence is kept, and the verdict is decided late, when a state is asked for:

* a teardown's errors (``Signature.consequence``) after a deliberate stop are *suppressed*: a stop
  in the same stream earlier, or in any stream at the same second or earlier by the lines' own
  timestamps;
* a fatal the job went past (later in the same stream vLLM reached loading or beyond, and no fatal
  after it stayed unrecovered) is *recovered*: it becomes a notice;
* a Ray placement-group wait followed by a stop, with no progress in between, is the GPUs never
  granted (``ray_placement_timeout``);
* a SLURM failure state (TIMEOUT, NODE_FAIL, …) is an error of its own unless a logged one says more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from r1console.core import fatal as _fatal
from r1console.core import logparse as lp
from r1console.core.lifecycle_state import ErrorInfo
from r1console.core.slurm_states import SLURM_ENDED, SLURM_FAILED

# per stream: (seq, milestone rank) each time that stream showed a further stage
RankMarks = Mapping[str, Sequence[tuple[int, int]]]


@dataclass
class Stop:
    """A deliberate end: vLLM's / uvicorn's shutdown, SLURM's ``CANCELLED AT`` or a SLURM end state."""

    stream: str
    seq: int
    ts: float | None
    cancel: bool


@dataclass
class FatalSeen:
    event: lp.FatalError
    seq: int
    rank: int = 0  # the milestone rank reached when it was logged


@dataclass(frozen=True)
class SlurmVerdict:
    """What SLURM says of the job, for the errors: its stage state and reason."""

    state: str | None
    reason: str | None


class ErrorLedger:
    """Fatals, notices, stops and the last Ray placement wait of one job, in the order fed."""

    def __init__(self) -> None:
        self.fatals: list[FatalSeen] = []  # every occurrence (suppression is decided late)
        self.notices: dict[str, ErrorInfo] = {}
        self.stops: list[Stop] = []
        self.placement_wait: tuple[int, lp.RayPlacementWait] | None = None

    def add_fatal(self, ev: lp.FatalError, seq: int, rank: int) -> None:
        self.fatals.append(FatalSeen(ev, seq, rank))

    def add_notice(self, ev: lp.Notice) -> None:
        old = self.notices.get(ev.kind)
        self.notices[ev.kind] = error_info(ev) if old is None else replace(old, count=old.count + ev.repeat)

    def add_stop(self, stream: str, seq: int, ts: float | None, *, cancel: bool) -> None:
        self.stops.append(Stop(stream, seq, ts, cancel))

    @property
    def cancelled(self) -> bool:
        return any(s.cancel for s in self.stops)

    def suppressed(self, f: FatalSeen) -> bool:
        ev = f.event
        if not ev.consequence:
            return False
        for stop in self.stops:
            if stop.stream == ev.stream and stop.seq < f.seq:
                return True
            if stop.stream != ev.stream and stop.ts is not None and ev.ts is not None and ev.ts >= stop.ts:
                return True
        return False

    def recovered(self, marks_by_stream: RankMarks, loading_rank: int) -> set[int]:
        """Seqs of fatals the job went past: later in the same stream vLLM reached a further stage
        (loading or beyond) and no fatal after it stayed unrecovered (a dead process makes no
        progress; vLLM logs some retried lookups at ERROR level)."""
        recovered: set[int] = set()
        later_unrecovered = False
        for f in reversed(self.fatals):
            if self.suppressed(f):
                continue
            marks = marks_by_stream.get(f.event.stream, ())
            if not later_unrecovered and any(s > f.seq and r > f.rank and r >= loading_rank for s, r in marks):
                recovered.add(f.seq)
            else:
                later_unrecovered = True
        return recovered

    def placement_failure(self, past_starting: bool, slurm_state: str | None) -> ErrorInfo | None:
        """vLLM waited for Ray's placement group (the GPUs) and the job stopped before any
        further progress: the GPUs were never granted."""
        if self.placement_wait is None or past_starting:
            return None
        seq, ev = self.placement_wait
        stopped = any(st.seq > seq for st in self.stops) or slurm_state in SLURM_ENDED \
            or slurm_state in SLURM_FAILED or slurm_state == "CANCELLED"
        if not stopped:
            return None
        sig = _fatal.BY_KIND["ray_placement_timeout"]
        return ErrorInfo(kind=sig.kind, line=ev.text, stream=ev.stream, lineno=ev.lineno, offset=ev.offset,
                         explanation=f"Ray never gathered the GPUs vLLM asked for: vLLM waited {ev.seconds}s "
                                     "for its placement group, then the job was stopped.",
                         what_to_try=sig.what_to_try)

    def errors(self, recovered: set[int], placement: ErrorInfo | None,
               slurm: SlurmVerdict) -> tuple[list[ErrorInfo], list[ErrorInfo]]:
        """(errors, root causes first; suppressed). Recovered fatals become notices."""
        errors: dict[str, ErrorInfo] = {}
        suppressed: dict[str, ErrorInfo] = {}
        if placement is not None:
            errors[placement.kind] = placement
        for f in self.fatals:
            if f.seq in recovered:
                self.notices.setdefault(f.event.kind, _recovered_info(f.event))
                continue
            _count_into(suppressed if self.suppressed(f) else errors, f.event)
        state = slurm.state
        if state in SLURM_FAILED:
            kind, explanation, what = SLURM_FAILED[state]
            if kind not in errors and not (state == "FAILED" and errors):
                reason = f" (reason: {slurm.reason})" if slurm.reason else ""
                errors[kind] = ErrorInfo(kind=kind, line=f"SLURM job state {state}{reason}",
                                         explanation=explanation, what_to_try=what, stream="slurm")
        ordered = sorted(errors.values(), key=lambda e: not e.root_cause)
        return ordered, list(suppressed.values())


def _count_into(target: dict[str, ErrorInfo], ev: lp.FatalError) -> None:
    kind = ev.kind
    if kind not in target:
        target[kind] = error_info(ev)
        return
    old = target[kind]
    if "RayTaskError(" in old.line and "RayTaskError(" not in ev.text:
        # Ray prints its wrapper first; the wrapped exception's own line proves it best
        old = error_info(ev)
    target[kind] = replace(old, count=target[kind].count + ev.repeat)


def error_info(ev: lp.FatalError | lp.Notice) -> ErrorInfo:
    return ErrorInfo(kind=ev.kind, line=ev.text, explanation=ev.explanation, what_to_try=ev.what_to_try,
                     stream=ev.stream, lineno=ev.lineno, offset=ev.offset, count=ev.repeat,
                     root_cause=getattr(ev, "root_cause", True), context=getattr(ev, "context", None))


def _recovered_info(ev: lp.FatalError) -> ErrorInfo:
    return ErrorInfo(kind=ev.kind, line=ev.text, stream=ev.stream, lineno=ev.lineno, offset=ev.offset,
                     explanation=f"Logged as an error, but the job went on past it: {ev.explanation}",
                     what_to_try="Nothing, unless a later step fails.", count=ev.repeat, root_cause=False)
