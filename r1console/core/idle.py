"""Idle stop: cancel a deployment nobody used for ``idle_stop`` (from its own request counters).

The watch is fed the deployment's own counters at each poll: the requests its replicas have
seen (vLLM's ``vllm:request_success_total`` summed with the running and waiting gauges, and the
endpoint's own count of requests it forwarded). Any change, or anything in flight, is use.
The clock starts at the first observation (so loading never counts, like physics-intern's
watchdog). A warning comes ``warn_before`` ahead of the stop (default: a tenth of ``idle_stop``,
at least 1 s, at most 15 min); a request after the warning resets it.
"""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
WARN = "warn"
STOP = "stop"


def default_warning(idle_stop_s: float) -> float:
    return max(1.0, min(15 * 60.0, idle_stop_s / 10))


@dataclass
class IdleWatch:
    idle_stop_s: float
    warn_before_s: float | None = None
    last_used: float | None = None
    _last_counter: float | None = None
    warned: bool = False
    stopped: bool = False

    def __post_init__(self) -> None:
        if self.idle_stop_s <= 0:
            raise ValueError("idle_stop must be more than 0")
        if self.warn_before_s is None:
            self.warn_before_s = default_warning(self.idle_stop_s)
        self.warn_before_s = min(self.warn_before_s, self.idle_stop_s)

    def observe(self, now: float, requests_counter: float, in_flight: float = 0) -> str:
        """Feed one reading; returns ``ok``, ``warn`` (once per idle stretch) or ``stop`` (once)."""
        if self.stopped:
            return OK
        used = in_flight > 0 or (self._last_counter is not None and requests_counter != self._last_counter)
        self._last_counter = requests_counter
        if used or self.last_used is None:
            self.last_used = now
            self.warned = False
            return OK
        idle = now - self.last_used
        if idle >= self.idle_stop_s:
            self.stopped = True
            return STOP
        warn_before = self.warn_before_s if self.warn_before_s is not None else default_warning(self.idle_stop_s)
        if not self.warned and idle >= self.idle_stop_s - warn_before:
            self.warned = True
            return WARN
        return OK

    def idle_for(self, now: float) -> float:
        return 0.0 if self.last_used is None else max(0.0, now - self.last_used)

    def remaining(self, now: float) -> float:
        return max(0.0, self.idle_stop_s - self.idle_for(now))


__all__ = ["OK", "STOP", "WARN", "IdleWatch", "default_warning"]
