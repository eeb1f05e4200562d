"""Per-node, per-GPU memory bars and utilisation, from sampled nvidia-smi output."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from r1console.core.nvidia_smi import NodeGpus

BAR = 24


def _bar(fraction: float) -> Text:
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(round(fraction * BAR))
    colour = "green" if fraction < 0.80 else "yellow" if fraction < 0.95 else "red"
    return Text("█" * full, style=colour) + Text("░" * (BAR - full), style="grey37")


def gpu_table(nodes: list[NodeGpus]) -> Table:
    table = Table(box=None, expand=False, padding=(0, 1), show_header=True, header_style="bold")
    for column in ("node", "gpu", "memory", "used / total GiB", "util", "power"):
        table.add_column(column)
    for node in nodes:
        for gpu in node.gpus:
            used = (gpu.memory_used_mib or 0) / 1024
            total = (gpu.memory_total_mib or 0) / 1024
            fraction = used / total if total else 0.0
            table.add_row(
                node.node, f"{gpu.index}", _bar(fraction), f"{used:6.1f} / {total:5.1f}",
                "-" if gpu.utilization_pct is None else f"{gpu.utilization_pct:3.0f}%",
                "-" if gpu.power_w is None else f"{gpu.power_w:4.0f} W",
            )
    return table


class GpuPanel(Static):
    """Shows the latest sample; ``show_message`` when there is none (job pending, no nvidia-smi)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("GPUs: waiting for the job to run…", id=id)
        self.nodes: list[NodeGpus] = []

    def show(self, nodes: list[NodeGpus]) -> None:
        self.nodes = nodes
        total_used = sum((g.memory_used_mib or 0) for n in nodes for g in n.gpus) / 1024
        total = sum((g.memory_total_mib or 0) for n in nodes for g in n.gpus) / 1024
        count = sum(len(n.gpus) for n in nodes)
        self.border_title = f"GPUs: {count} on {len(nodes)} node(s) · {total_used:.0f} / {total:.0f} GiB"
        self.update(gpu_table(nodes))

    def show_message(self, text: str) -> None:
        self.update(Text(text, style="italic"))
