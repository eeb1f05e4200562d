"""Memory planner: what fits on each GPU, how many KV-cache tokens, how many concurrent requests.

Pure except :mod:`~r1console.core.plan.local` (which reads a local ``config.json``): model
descriptions come from a built-in table (DeepSeek-R1/V3 FP8) or from a ``config.json`` dict, and
:func:`read_model_desc` takes a ``read_file`` callable so the caller decides where files come from.

The modules, in the order a plan is made:

* :mod:`.gpus`: the GPU catalogue and the GPU a profile asks for;
* :mod:`.model`: model descriptions (``config.json`` parsing, the weight estimate);
* :mod:`.kv`: KV-cache element size, blocks and token capacity (exact, as vLLM V1);
* :mod:`.budget`: the memory budget per device (weights, activations, overheads: estimates);
* :mod:`.plan`: :func:`make_plan`, the pipeline, and the :class:`Plan` it returns;
* :mod:`.recommend`: recommended ``max_num_seqs`` / ``max_num_batched_tokens``;
* :mod:`.compare`: a plan next to what vLLM logged;
* :mod:`.text`: the human table.
"""

from __future__ import annotations

from r1console.core.plan.budget import (
    CUDAGRAPH_BYTES,
    CUDAGRAPH_PROFILED_SINCE,
    HIDDEN_COPIES,
    MOE_CHUNK_TOKENS,
    NON_TORCH_BYTES,
    BatchLimits,
    Budget,
    Layout,
    PlanRow,
    activation_bytes,
    default_batch_limits,
    weights_per_gpu,
)
from r1console.core.plan.compare import PlanComparison, compare_with_observed
from r1console.core.plan.gpus import CPU_DEVICE, GPUS, GpuSpec, find_gpu, gpu_from_profile
from r1console.core.plan.kv import kv_cache_dtype_bytes, kv_token_capacity
from r1console.core.plan.model import (
    DEEPSEEK_R1,
    DEEPSEEK_R1_CHECKPOINT_BYTES,
    DEEPSEEK_V3_CONFIG,
    AsyncReadFile,
    ModelDesc,
    ReadFile,
    aread_model_desc,
    builtin_model_for,
    model_desc_from_texts,
    model_from_config,
    read_model_desc,
)
from r1console.core.plan.plan import KvGeometry, Plan, make_plan
from r1console.core.plan.recommend import BATCHED_TOKENS_PER_SEQ, MAX_RECOMMENDED_BATCHED_TOKENS, Recommendation
from r1console.core.plan.units import GB, GiB, MiB, format_bytes, parse_size

__all__ = [
    "BATCHED_TOKENS_PER_SEQ", "CPU_DEVICE", "CUDAGRAPH_BYTES", "CUDAGRAPH_PROFILED_SINCE", "DEEPSEEK_R1",
    "DEEPSEEK_R1_CHECKPOINT_BYTES", "DEEPSEEK_V3_CONFIG", "GB", "GPUS", "HIDDEN_COPIES",
    "MAX_RECOMMENDED_BATCHED_TOKENS", "MOE_CHUNK_TOKENS", "NON_TORCH_BYTES", "AsyncReadFile", "BatchLimits",
    "Budget", "GiB", "GpuSpec", "KvGeometry", "Layout", "MiB", "ModelDesc", "Plan", "PlanComparison", "PlanRow",
    "ReadFile", "Recommendation", "activation_bytes", "aread_model_desc", "builtin_model_for",
    "compare_with_observed", "default_batch_limits", "find_gpu", "format_bytes", "gpu_from_profile",
    "kv_cache_dtype_bytes", "kv_token_capacity", "make_plan", "model_desc_from_texts", "model_from_config",
    "parse_size", "read_model_desc", "weights_per_gpu",
]
