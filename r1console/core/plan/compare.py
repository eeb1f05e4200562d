"""A plan next to what vLLM logged (``Model loading took X GiB``, ``KV cache size: N tokens``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from r1console.core.plan.plan import Plan
from r1console.core.plan.units import GiB


@dataclass
class PlanComparison:
    """A plan next to vLLM's own figures; ``lines`` are ready to show."""

    planned_weights_gib: float
    observed_weights_gib: float | None
    planned_kv_tokens: int
    observed_kv_tokens: int | None
    weights_diff_gib: float | None
    kv_tokens_diff: int | None
    implied_kv_cache_gib: float | None   # observed tokens x bytes/token
    lines: list[str] = field(default_factory=list)

    @property
    def kv_tokens_ratio(self) -> float | None:
        if self.observed_kv_tokens is None or not self.planned_kv_tokens:
            return None
        return self.observed_kv_tokens / self.planned_kv_tokens


def _pct(diff: float, base: float) -> str:
    return f"{diff / base:+.1%}" if base else "n/a"


def compare_with_observed(plan: Plan, model_load_gib: float | None, kv_cache_tokens: int | None) -> PlanComparison:
    """Compare a plan with ``Model loading took X GiB`` and ``KV cache size: N tokens`` from vLLM's log."""
    planned_w = plan.weights_bytes_per_gpu / GiB
    lines: list[str] = []
    w_diff = None
    if model_load_gib is not None:
        w_diff = model_load_gib - planned_w
        lines.append(f"weights per {'GPU' if plan.platform == 'gpu' else 'node'}: planned {planned_w:.2f} GiB, "
                     f"vLLM loaded {model_load_gib:.2f} GiB ({w_diff:+.2f} GiB, {_pct(w_diff, planned_w)})")
    else:
        lines.append(f"weights: planned {planned_w:.2f} GiB; vLLM has not logged 'Model loading took'")
    kv_diff = implied = None
    if kv_cache_tokens is not None:
        kv_diff = kv_cache_tokens - plan.kv_tokens_per_gpu
        implied = kv_cache_tokens * plan.kv_bytes_per_token_per_gpu / GiB
        lines.append(f"KV cache: planned {plan.kv_tokens_per_gpu:,} tokens, vLLM {kv_cache_tokens:,} tokens "
                     f"({kv_diff:+,}, {_pct(kv_diff, plan.kv_tokens_per_gpu)})")
        planned_kv = plan.kv_cache_bytes_per_gpu / GiB
        gap = implied - planned_kv
        if abs(kv_diff) <= max(plan.block_size, 0.01 * max(plan.kv_tokens_per_gpu, 1)):
            lines.append("  the KV arithmetic matches vLLM (within a block / 1%)")
        else:
            lines.append(f"  vLLM's tokens need {implied:.2f} GiB of KV memory; the plan had {planned_kv:.2f} GiB "
                         f"({gap:+.2f} GiB)")
            if w_diff is not None:
                rest = -gap - w_diff
                lines.append(f"  of that, weights explain {-w_diff:+.2f} GiB; activations, CUDA graphs and non-torch "
                             f"memory the other {rest:+.2f} GiB (plan: "
                             f"{(plan.activation_bytes_per_gpu + plan.non_torch_bytes_per_gpu + plan.cudagraph_bytes_per_gpu) / GiB:.2f} GiB)")
        if plan.context_len:
            per_request = math.ceil(plan.context_len / plan.block_size) * plan.block_size
            lines.append(f"  concurrency at {plan.context_len:,} tokens: planned {plan.max_concurrency}, "
                         f"with vLLM's cache {kv_cache_tokens // per_request}")
    else:
        lines.append(f"KV cache: planned {plan.kv_tokens_per_gpu:,} tokens; vLLM has not logged 'KV cache size'")
    return PlanComparison(planned_weights_gib=planned_w, observed_weights_gib=model_load_gib,
                          planned_kv_tokens=plan.kv_tokens_per_gpu, observed_kv_tokens=kv_cache_tokens,
                          weights_diff_gib=w_diff, kv_tokens_diff=kv_diff, implied_kv_cache_gib=implied, lines=lines)
