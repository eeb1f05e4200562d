"""The checkpoint-shard bar of the main model: n/N, the recent rate and the ETA (for ``lifecycle``).

ETA: remaining shards / the rate over the last ``eta_window`` updates, on tqdm's own elapsed clock
(right offline too); live, the time since the last update is subtracted. Lagging copies of the bar
(another rank) are ignored; a smaller bar after the main one completed is a draft model's.
"""

from __future__ import annotations

from collections import deque

from r1console.core import logparse as lp


class ShardProgressTracker:
    def __init__(self, eta_window: int = 10) -> None:
        self.eta_window = max(2, eta_window)
        self.total = 0
        self.n = 0
        self.desc = ""
        self.samples: deque[tuple[float, int]] = deque(maxlen=self.eta_window)  # (tqdm elapsed_s, n)
        self.tqdm_rate: float | None = None
        self.tqdm_remaining: float | None = None
        self.seen_at: float | None = None  # caller's clock at the last accepted update

    @property
    def complete(self) -> bool:
        return bool(self.total) and self.n >= self.total

    def restarts(self, ev: lp.ShardProgress) -> bool:
        return ev.total != self.total or (ev.n < self.n and self.complete)

    def is_secondary(self, ev: lp.ShardProgress, *, draft: bool) -> bool:
        """A new bar after the main one completed, smaller (or announced as the draft model's)."""
        return self.restarts(ev) and self.complete and (draft or ev.total <= self.total)

    def update(self, ev: lp.ShardProgress, now: float | None) -> bool:
        """Take one redraw; False when it is a lagging copy (ignored)."""
        if self.restarts(ev):
            self.total, self.n, self.desc = ev.total, ev.n, ev.desc
            self.samples = deque(maxlen=self.eta_window)
        elif ev.n < self.n:
            return False
        self.n = ev.n
        self.tqdm_rate = ev.rate_per_s
        self.tqdm_remaining = ev.remaining_s
        self.seen_at = now
        if self.samples and self.samples[-1][1] == ev.n:
            if ev.elapsed_s < self.samples[-1][0]:
                self.samples[-1] = (ev.elapsed_s, ev.n)
        else:
            self.samples.append((ev.elapsed_s, ev.n))
        return True

    def rate(self) -> float | None:
        """Shards per second, recent."""
        if len(self.samples) >= 2:
            (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
            if t1 > t0 and n1 > n0:
                return (n1 - n0) / (t1 - t0)
        return self.tqdm_rate

    def eta(self, rate: float | None, now: float | None) -> float | None:
        if not self.total:
            return None
        left = self.total - self.n
        if left <= 0:
            return 0.0
        if rate and rate > 0:
            eta = left / rate
        elif self.tqdm_remaining is not None:
            eta = self.tqdm_remaining
        else:
            return None
        if now is not None and self.seen_at is not None and now > self.seen_at:
            eta = max(0.0, eta - (now - self.seen_at))
        return eta


__all__ = ["ShardProgressTracker"]
