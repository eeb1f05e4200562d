"""Facts about vLLM that change with its version, in one place: the reasoning field of chat replies,
the error body shape, and the ``/metrics`` names that were renamed.

Read by the client side (:mod:`r1console.core.streaming`, :mod:`r1console.core.prometheus`), by
the simulated server (``r1console.demo.sim_versions``) and by the tests' scripted server, so the
three agree. A version bound ``X`` reads "from X on"; each is the first release with the change.

* Reasoning (DeepSeek-R1's ``<think>`` part, with ``--reasoning-parser deepseek_r1``): only
  ``reasoning_content`` before 0.11.2 (as DeepSeek's own API); both ``reasoning`` and
  ``reasoning_content`` with the same text in 0.11.2-0.15; only ``reasoning`` from 0.16. A reader
  takes ``reasoning or reasoning_content`` and never both, so nothing is doubled.
* Errors: a flat ``{"object": "error", "message", ...}`` before 0.10.1, ``{"error": {...}}`` from
  0.10.1 (vllm-project/vllm#22099).
* Metrics: ``vllm:kv_cache_usage_perc`` from 0.9 (``vllm:gpu_cache_usage_perc`` before 0.11,
  deprecated from 0.9); ``vllm:inter_token_latency_seconds`` from 0.10
  (``vllm:time_per_output_token_seconds`` before 0.15, deprecated from 0.11);
  ``vllm:gpu_prefix_cache_*`` became ``vllm:prefix_cache_*`` in 0.9 (the old names before 0.11).
"""

from __future__ import annotations

from r1console.core.versions import parse_version

Version = tuple[int, ...]

# ---- the reasoning field ----------------------------------------------------------------------
REASONING = "reasoning"
REASONING_CONTENT = "reasoning_content"
#: From this version replies carry ``reasoning`` next to ``reasoning_content``.
REASONING_BOTH_SINCE: Version = (0, 11, 2)
#: From this version replies carry only ``reasoning``.
REASONING_ONLY_SINCE: Version = (0, 16, 0)
#: The shapes by name, and the keys a delta or message carries in each.
REASONING_SHAPES: dict[str, tuple[str, ...]] = {
    REASONING_CONTENT: (REASONING_CONTENT,),
    "both": (REASONING, REASONING_CONTENT),
    REASONING: (REASONING,),
}


def reasoning_shape(version: str | Version) -> str:
    """``"reasoning_content"``, ``"both"`` or ``"reasoning"``: the reasoning field of that vLLM version."""
    v = parse_version(version) if isinstance(version, str) else version
    if v < REASONING_BOTH_SINCE:
        return REASONING_CONTENT
    return "both" if v < REASONING_ONLY_SINCE else REASONING


def reasoning_keys(version: str | Version) -> tuple[str, ...]:
    """The keys that carry the reasoning text in that version's replies."""
    return REASONING_SHAPES[reasoning_shape(version)]


# ---- error bodies -----------------------------------------------------------------------------
#: From this version an error is ``{"error": {"message", "type", "param", "code"}}``.
NESTED_ERRORS_SINCE: Version = (0, 10, 1)

# ---- /metrics names ---------------------------------------------------------------------------
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
GPU_CACHE_USAGE = "vllm:gpu_cache_usage_perc"  # the name before KV_CACHE_USAGE
KV_CACHE_USAGE_SINCE: Version = (0, 9, 0)
GPU_CACHE_USAGE_UNTIL: Version = (0, 11, 0)  # exposed before this version

INTER_TOKEN_LATENCY = "vllm:inter_token_latency_seconds"
TIME_PER_OUTPUT_TOKEN = "vllm:time_per_output_token_seconds"  # the name before INTER_TOKEN_LATENCY
INTER_TOKEN_LATENCY_SINCE: Version = (0, 10, 0)
TIME_PER_OUTPUT_TOKEN_DEPRECATED_SINCE: Version = (0, 11, 0)
TIME_PER_OUTPUT_TOKEN_UNTIL: Version = (0, 15, 0)

PREFIX_CACHE_RENAMED_SINCE: Version = (0, 9, 0)  # vllm:gpu_prefix_cache_* -> vllm:prefix_cache_*
GPU_PREFIX_CACHE_UNTIL: Version = (0, 11, 0)
