"""Model descriptions: the built-in DeepSeek-R1/V3 numbers, ``config.json`` parsing and the weight estimate.

:func:`read_model_desc` takes a ``read_file`` callable, so the caller decides where the files come
from (local disk, SSH).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from r1console.core.errors import R1Error
from r1console.core.plan.units import GB

DTYPE_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "float": 4,
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
    dtype_bytes = DTYPE_BYTES.get(_dtype_name(config), 2)
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


def _experts(cfg: dict) -> int:
    return int(cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts") or 0)


class _Sizer:
    """Weight bytes of one decoder config's tensors (TP 1): quantized matrices with their block scales,
    plain (model-dtype) tensors, per attention block and per MLP."""

    def __init__(self, cfg: dict, wbytes: float, block: tuple[int, int] | None, dtype_bytes: int) -> None:
        self.cfg, self.wbytes, self.block, self.dtype_bytes = cfg, wbytes, block, dtype_bytes
        self.h = int(cfg["hidden_size"])
        self.vocab = int(cfg.get("vocab_size", 0))
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg.get("num_attention_heads", 1))
        self.inter = int(cfg.get("intermediate_size", 4 * self.h))
        self.experts = _experts(cfg)
        self.moe_inter = int(cfg.get("moe_intermediate_size") or self.inter)
        self.shared = int(cfg.get("n_shared_experts") or 0)
        self.shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0)
        self.dense_layers = int(cfg.get("first_k_dense_replace", 0)) if self.experts else self.layers
        self.freq = int(cfg.get("moe_layer_freq", 1) or 1)

    def quantized(self, out_f: int, in_f: int) -> int:
        size = out_f * in_f * self.wbytes
        if self.block:
            size += math.ceil(out_f / self.block[0]) * math.ceil(in_f / self.block[1]) * 4  # fp32 block scales
        return int(size)

    def plain(self, *dims: int) -> int:
        return math.prod(dims) * self.dtype_bytes

    def attention(self) -> tuple[int, int]:
        """(sharded, replicated) bytes of one attention block with its norms."""
        cfg, h, heads, q, p = self.cfg, self.h, self.heads, self.quantized, self.plain
        if cfg.get("kv_lora_rank"):
            kvr, rope = int(cfg["kv_lora_rank"]), int(cfg["qk_rope_head_dim"])
            nope, vd = int(cfg["qk_nope_head_dim"]), int(cfg["v_head_dim"])
            qr = cfg.get("q_lora_rank")
            rep = q(kvr + rope, h) + p(kvr)
            if qr:
                rep += q(int(qr), h) + p(int(qr))
                sh = q(heads * (nope + rope), int(qr))
            else:
                sh = q(heads * (nope + rope), h)
            sh += q(heads * (nope + vd), kvr) + q(h, heads * vd)
            return sh, rep + p(2 * h)
        hd = int(cfg.get("head_dim") or h // heads)
        kvh = int(cfg.get("num_key_value_heads") or heads)
        sh = q(heads * hd, h) + 2 * q(kvh * hd, h) + q(h, heads * hd)
        return sh, p(2 * h)

    def mlp(self, layer: int) -> tuple[int, int]:
        """(sharded, replicated) bytes of layer ``layer``'s MLP: dense, or routed + shared experts and router."""
        h, q = self.h, self.quantized
        is_moe = self.experts and layer >= self.dense_layers and (layer - self.dense_layers) % self.freq == 0
        if not is_moe:
            return 3 * q(self.inter, h), 0
        sh = self.experts * 3 * q(self.moe_inter, h)
        if self.shared:
            sh += 3 * q(self.moe_inter * self.shared, h)
        if self.shared_inter:
            sh += 3 * q(self.shared_inter, h) + self.plain(h)
        rep = self.plain(self.experts, h)  # router: replicated, not quantized
        if self.cfg.get("topk_method") == "noaux_tc":
            rep += self.experts * 4  # e_score_correction_bias, fp32
        return sh, rep

    def mtp(self, attention: int) -> int:
        """DeepSeek's MTP modules: in the checkpoint, not served."""
        h, vocab, p = self.h, self.vocab, self.plain
        total = 0
        for _ in range(int(self.cfg.get("num_nextn_predict_layers") or 0)):
            # one MoE decoder layer + enorm/hnorm + eh_proj (bf16) + its own copies of the embedding and
            # output head (shared_head) + norm
            m_sh, m_rep = self.mlp(max(self.layers, self.dense_layers))
            total += attention + m_sh + m_rep + p(2 * h) + p(h, 2 * h) + 2 * p(vocab, h) + p(h)
        return total

    def derived(self) -> int:
        """vLLM's MLA keeps W_UK^T and W_UV: kv_b_proj dequantized to the model dtype, per layer, split by TP."""
        cfg = self.cfg
        if not cfg.get("kv_lora_rank"):
            return 0
        return self.layers * self.heads * (int(cfg["qk_nope_head_dim"]) + int(cfg["v_head_dim"])) * \
            int(cfg["kv_lora_rank"]) * self.dtype_bytes


def _estimate_weights(cfg: dict, wbytes: float, block: tuple[int, int] | None, dtype_bytes: int) -> dict[str, int]:
    """Bytes of the main model, the replicated part, the MTP layers, the MLA-derived copies (TP 1)."""
    sizer = _Sizer(cfg, wbytes, block, dtype_bytes)
    sharded = sizer.plain(sizer.vocab, sizer.h)  # embeddings (vocab-parallel)
    if not cfg.get("tie_word_embeddings", False):
        sharded += sizer.plain(sizer.vocab, sizer.h)  # lm_head
    replicated = sizer.plain(sizer.h)  # final norm
    a_sh, a_rep = sizer.attention()
    for layer in range(sizer.layers):
        m_sh, m_rep = sizer.mlp(layer)
        sharded += a_sh + m_sh
        replicated += a_rep + m_rep
    return {"main": sharded + replicated, "replicated": replicated, "mtp": sizer.mtp(a_sh + a_rep),
            "derived": sizer.derived()}


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
    dtype_bytes = DTYPE_BYTES.get(dtype_name, 2)
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
    experts = _experts(cfg)
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


# DeepSeek-V3 / R1 (deepseek-ai/DeepSeek-V3 inference/configs/config_671B.json, in HF names; docs/facts.md §4.1).
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
#: deepseek-ai/DeepSeek-R1 at 56d4cbbb: 163 safetensors files, MTP layer included (docs/facts.md §4.2).
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
            raw: Any = read_file(path)  # an async reader, or a plain one
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
