"""A deployment's replicas and which one takes the next request (least outstanding requests).

Pure state, no I/O: the endpoint (``adapters/serve_proxy``) calls :meth:`ReplicaSet.choose`
for each request, :meth:`ReplicaSet.begin`/:meth:`ReplicaSet.end` around it, and
:meth:`ReplicaSet.mark_down` when a replica refuses or dies; the controller adds replicas as
their jobs become ready, drains the old one of a relay and removes it once it is idle.

Choice: among replicas that are ready and not draining, the one with the fewest requests in
flight; ties go to the one that was chosen least recently, so an idle set alternates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

UP = "up"
DOWN = "down"           # refused a connection or died mid-request; the controller probes it again
DRAINING = "draining"   # takes no new requests, finishes the ones it has (relay handover)


@dataclass
class Replica:
    name: str                   # the SLURM job id (or any label)
    url: str                    # base URL, no /v1
    api_key: str | None = None
    state: str = UP
    outstanding: int = 0        # requests in flight through the endpoint
    started: int = 0            # requests sent to it
    failed: int = 0             # requests it could not answer (connection refused, cut, 5xx)
    completed: int = 0
    last_pick: int = 0          # order of the last choice (tie-breaker)
    meta: dict = field(default_factory=dict)

    @property
    def takes_requests(self) -> bool:
        return self.state == UP

    def to_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "state": self.state, "outstanding": self.outstanding,
                "started": self.started, "completed": self.completed, "failed": self.failed}


class ReplicaSet:
    """The replicas behind one endpoint, keyed by name (insertion order kept)."""

    def __init__(self) -> None:
        self._replicas: dict[str, Replica] = {}
        self._ticket = itertools.count(1)

    # ---- membership --------------------------------------------------------------------
    def add(self, replica: Replica) -> Replica:
        """Add (or replace, keeping the counters of) a replica; it takes requests at once."""
        old = self._replicas.get(replica.name)
        if old is not None:
            replica.outstanding, replica.started = old.outstanding, old.started
            replica.completed, replica.failed = old.completed, old.failed
        self._replicas[replica.name] = replica
        return replica

    def remove(self, name: str) -> Replica | None:
        return self._replicas.pop(name, None)

    def get(self, name: str) -> Replica | None:
        return self._replicas.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._replicas

    def __len__(self) -> int:
        return len(self._replicas)

    def all(self) -> list[Replica]:
        return list(self._replicas.values())

    def ready(self) -> list[Replica]:
        return [r for r in self._replicas.values() if r.takes_requests]

    # ---- state changes -----------------------------------------------------------------
    def mark_down(self, name: str) -> None:
        rep = self._replicas.get(name)
        if rep is not None and rep.state == UP:
            rep.state = DOWN

    def mark_up(self, name: str) -> None:
        rep = self._replicas.get(name)
        if rep is not None and rep.state == DOWN:
            rep.state = UP

    def drain(self, name: str) -> None:
        rep = self._replicas.get(name)
        if rep is not None:
            rep.state = DRAINING

    def drained(self, name: str) -> bool:
        """True when ``name`` is gone or draining with nothing left in flight."""
        rep = self._replicas.get(name)
        return rep is None or (rep.state == DRAINING and rep.outstanding == 0)

    # ---- per request -------------------------------------------------------------------
    def choose(self, exclude: set[str] | frozenset[str] = frozenset()) -> Replica | None:
        """The ready replica with the fewest requests in flight (None: no replica can take one)."""
        best: Replica | None = None
        for rep in self._replicas.values():
            if not rep.takes_requests or rep.name in exclude:
                continue
            if best is None or (rep.outstanding, rep.last_pick) < (best.outstanding, best.last_pick):
                best = rep
        if best is not None:
            best.last_pick = next(self._ticket)
        return best

    def begin(self, rep: Replica) -> None:
        rep.outstanding += 1
        rep.started += 1

    def end(self, rep: Replica, *, ok: bool) -> None:
        rep.outstanding = max(0, rep.outstanding - 1)
        if ok:
            rep.completed += 1
        else:
            rep.failed += 1

    @property
    def outstanding(self) -> int:
        return sum(r.outstanding for r in self._replicas.values())

    def snapshot(self) -> list[dict]:
        return [r.to_dict() for r in self._replicas.values()]


__all__ = ["DOWN", "DRAINING", "UP", "Replica", "ReplicaSet"]
