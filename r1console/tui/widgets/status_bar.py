"""The console's own footprint (CPU %, memory) — users on shared login nodes care."""

from __future__ import annotations

import psutil
from textual.reactive import reactive
from textual.widgets import Static


class ResourceUsage(Static):
    """Samples this process every few seconds (one cheap psutil call; no busy polling)."""

    interval: float = 3.0
    cpu_percent: reactive[float] = reactive(0.0)
    rss_mib: reactive[float] = reactive(0.0)

    def on_mount(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call always returns 0
        self.sample()
        self.set_interval(self.interval, self.sample)

    def sample(self) -> None:
        with self._proc.oneshot():
            self.cpu_percent = self._proc.cpu_percent(None)
            self.rss_mib = self._proc.memory_info().rss / 2**20

    def render(self) -> str:
        return f"r1console: CPU {self.cpu_percent:4.1f}%  RSS {self.rss_mib:5.0f} MiB"
