"""Recommended ``max_num_seqs`` / ``max_num_batched_tokens`` for a plan that fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from r1console.core.plan.budget import BatchLimits, Budget, Layout, activation_bytes, default_batch_limits
from r1console.core.plan.kv import kv_token_capacity, round_down
from r1console.core.plan.model import ModelDesc

if TYPE_CHECKING:
    from r1console.core.plan.plan import KvGeometry
    from r1console.core.profiles import VllmSpec

#: The tuned ratio of the seed scripts (16xH100: 112 sequences / 57,344 batched tokens).
BATCHED_TOKENS_PER_SEQ = 512
MAX_RECOMMENDED_BATCHED_TOKENS = 98304  # the largest the seed scripts ran (8xH200, 144 sequences)


@dataclass(frozen=True)
class Recommendation:
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    reasons: tuple[str, ...] = ()


NO_RECOMMENDATION = Recommendation(None, None, ("the profile does not fit; no recommendation",))


class _Search:
    """Tokens, sequences and batch budget that settle on each other for one plan."""

    def __init__(self, model: ModelDesc, layout: Layout, geometry: KvGeometry, limits: BatchLimits,
                 budget: Budget) -> None:
        self.model, self.layout, self.geometry, self.limits, self.budget = model, layout, geometry, limits, budget
        self.cap_seqs, self.default_batched = default_batch_limits(layout.device, layout.version)
        self.per_request = geometry.per_request(limits.context_len)
        mml = limits.max_model_len
        self.floor_batched = max(self.default_batched, mml if (not limits.chunked_prefill and mml) else 0)

    def tokens_for(self, batched_tokens: int, seqs: int) -> int:
        act = activation_bytes(self.model, batched_tokens, seqs, self.layout.tp, self.limits.expert_parallel)
        g = self.geometry
        return kv_token_capacity(self.budget.kv_for(act), g.per_layer, g.layers, g.block)[1]

    def seqs_for(self, tokens: int) -> int:
        n = min(self.cap_seqs, tokens // self.per_request)
        return max(1, round_down(n, 8) if n >= 16 else n)

    def batched_for(self, seqs: int) -> int:
        if self.layout.platform == "cpu":
            return max(self.floor_batched, seqs)
        return max(min(MAX_RECOMMENDED_BATCHED_TOKENS, BATCHED_TOKENS_PER_SEQ * seqs), self.floor_batched, seqs)


def recommend(vllm: VllmSpec, model: ModelDesc, layout: Layout, geometry: KvGeometry, limits: BatchLimits,
              budget: Budget) -> Recommendation:
    """The largest batch that keeps every request of the context length in the KV cache at once."""
    search = _Search(model, layout, geometry, limits, budget)
    cap_seqs, default_batched = search.cap_seqs, search.default_batched
    batched0 = vllm.max_num_batched_tokens or default_batched
    seqs = search.seqs_for(search.tokens_for(batched0, cap_seqs))
    batched = search.batched_for(seqs)
    # a different batch budget moves activation memory to or from the KV cache: settle once more
    tokens = search.tokens_for(batched, seqs)
    seqs = search.seqs_for(tokens)
    batched = min(batched, search.batched_for(seqs))
    tokens = search.tokens_for(batched, seqs)
    reasons = [
        f"max_num_seqs {seqs}: requests of {limits.context_len:,} tokens that fit at once in the {tokens:,}-token "
        f"KV cache left with the recommended batch budget"
        + (f" (capped at vLLM's default {cap_seqs})" if seqs == cap_seqs else ""),
    ]
    if layout.platform == "cpu":
        reasons.append(f"max_num_batched_tokens {batched:,}: vLLM's CPU default"
                       + (" or max_model_len (no chunked prefill with MLA on CPU)"
                          if search.floor_batched > default_batched else ""))
    else:
        reasons.append(f"max_num_batched_tokens {batched:,}: {BATCHED_TOKENS_PER_SEQ} per sequence (the seed's tuned "
                       f"112 -> 57,344), at least vLLM's default {default_batched:,}, at most "
                       f"{MAX_RECOMMENDED_BATCHED_TOKENS:,}")
    return Recommendation(seqs, batched, tuple(reasons))
