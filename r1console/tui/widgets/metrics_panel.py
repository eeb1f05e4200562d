"""Live server metrics once the deployment is ready: queue, KV cache, throughput sparkline."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from r1console.core.prometheus import ServerMetrics


def metrics_text(metrics: ServerMetrics | None, tok_s: list[float]) -> str:
    if metrics is None:
        return "server: not up yet"
    kv = "-" if metrics.kv_cache_usage is None else f"{100 * metrics.kv_cache_usage:.1f}%"
    rate = f"{tok_s[-1]:.0f}" if tok_s else "-"
    peak = f"{max(tok_s):.0f}" if tok_s else "-"
    lines = [
        f"running {metrics.running or 0:.0f} · waiting {metrics.waiting or 0:.0f}",
        f"KV cache {kv}",
        f"generation {rate} tok/s (peak {peak})",
    ]
    if metrics.generation_tokens_total is not None:
        lines.append(f"tokens generated {metrics.generation_tokens_total:,.0f}")
    return "\n".join(lines)


class MetricsPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("server: not up yet", id="metrics-text")
        yield Sparkline([], id="metrics-sparkline")

    def show(self, metrics: ServerMetrics | None, tok_s: list[float]) -> None:
        self.query_one("#metrics-text", Static).update(metrics_text(metrics, tok_s))
        sparkline = self.query_one("#metrics-sparkline", Sparkline)
        sparkline.display = bool(tok_s) and max(tok_s) > 0  # an all-zero sparkline draws as a full bar
        sparkline.data = list(tok_s) or [0]
