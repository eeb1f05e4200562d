"""The job's stage in one line, with the fatal explanation when it failed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from r1console.core.lifecycle import LifecycleState, Stage, format_duration

ICONS = {Stage.QUEUED: "◷", Stage.STARTING: "◔", Stage.LOADING: "◑", Stage.INITIALISING: "◕",
         Stage.READY: "●", Stage.ENDED: "■", Stage.FAILED: "✖", Stage.CANCELLED: "■"}


def banner_text(state: LifecycleState) -> Text:
    stage = state.stage
    text = Text(f"{ICONS.get(stage, '?')} {stage.value.upper()}", style="bold")
    bits: list[str] = []
    if stage is Stage.QUEUED and state.slurm_reason:
        bits.append(f"SLURM: {state.slurm_state or 'PENDING'} ({state.slurm_reason})")
    if stage is Stage.STARTING and state.ray_nodes_total:
        bits.append(f"Ray {state.ray_nodes or 0}/{state.ray_nodes_total} nodes, "
                    f"{state.ray_gpus or 0}/{state.ray_gpus_total or 0} GPUs")
    if stage is Stage.LOADING and state.shards_total:
        bits.append(f"{state.shards_loaded or 0}/{state.shards_total} shards")
        if state.shard_rate:
            bits.append(f"{state.shard_rate:.2f} shards/s")
        if state.eta_s is not None:
            bits.append(f"ETA {format_duration(state.eta_s)}")
    if stage is Stage.READY:
        bits.append(f"serving {state.reachable_url or state.server_url or ''}".strip())
    if state.detail and stage not in (Stage.LOADING, Stage.READY):
        bits.append(state.detail)
    if state.vllm_version:
        bits.append(f"vLLM {state.vllm_version}")
    if bits:
        text.append("  ·  " + "  ·  ".join(bits))
    error = state.primary_error
    if stage is Stage.FAILED and error is not None:
        text.append(f"\n{error.kind}: {error.explanation}", style="bold red")
        text.append(f"\ntry: {error.what_to_try}", style="red")
    return text


class StageBanner(Static):
    def show(self, state: LifecycleState) -> None:
        self.update(banner_text(state))
        self.set_class(state.stage is Stage.FAILED, "failed")
        self.set_class(state.stage is Stage.READY, "ready")
