"""Profile loading and validation: every rule, with file:line:col in the message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from r1console.core import paths
from r1console.core.errors import ConfigError
from r1console.core.profiles import list_profiles, load_profile

SHIPPED = ["h100x16", "h200x8", "h200x8-current", "tiny-cpu", "tiny-cpu-2node", "tiny-cpu-2node-mp"]

BASE = """\
name: t
slurm: {nodes: 2, gpus_per_node: 4}
model: {path: /models/DeepSeek-R1}
vllm: {version: "0.8.5", max_num_seqs: 16, max_num_batched_tokens: 4096}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_profile(write(tmp_path, text), dirs=[tmp_path])
    return str(info.value)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_without_warnings(name):
    loaded = load_profile(name)
    assert loaded.profile.name == name
    assert loaded.warnings == []


def test_seed_profiles_have_the_seed_values():
    h100 = load_profile("h100x16").profile
    assert (h100.slurm.nodes, h100.slurm.gpus_per_node, h100.tensor_parallel_size) == (4, 4, 16)
    assert (h100.vllm.max_num_seqs, h100.vllm.max_num_batched_tokens, h100.vllm.gpu_memory_utilization) == (
        112, 57344, 0.9)
    h200 = load_profile("h200x8").profile
    assert (h200.slurm.nodes, h200.slurm.gpus_per_node, h200.tensor_parallel_size) == (2, 4, 8)
    assert (h200.vllm.max_num_seqs, h200.vllm.max_num_batched_tokens, h200.vllm.gpu_memory_utilization) == (
        144, 98304, 0.93)
    assert h200.backend == "ray" and h200.slurm.constraint == "h200" and h200.slurm.exclusive


def test_extends_merges_sections_key_by_key():
    current = load_profile("h200x8-current")
    p = current.profile
    assert [c.name for c in current.chain] == ["h200x8-current.yaml", "h200x8.yaml"]
    assert p.slurm.nodes == 2 and p.slurm.constraint == "h200"  # inherited
    assert p.vllm.version == "0.33.0" and p.vllm.enable_expert_parallel and not p.vllm.enforce_eager
    assert p.vllm.reasoning_parser == "deepseek_r1"  # inherited inside an overridden section
    assert p.model.path == "/path/to/DeepSeek-R1" and p.model.served_name == "deepseek-r1"


def test_unknown_key_names_file_line_col_and_suggests(tmp_path):
    text = BASE.replace("max_num_seqs: 16", "max_num_seq: 16")
    msg = problems(tmp_path, text)
    assert f"{tmp_path / 'p.yaml'}:4:26: unknown key `vllm.max_num_seq`; did you mean `max_num_seqs`?" in msg


def test_unknown_top_level_key_block_style(tmp_path):
    msg = problems(tmp_path, BASE + "slurrm:\n  nodes: 1\n")
    assert "p.yaml:5:1: unknown key `slurrm`; did you mean `slurm`?" in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    msg = problems(tmp_path, BASE + "server: {zzz: 1}\n")
    assert "unknown key `server.zzz` (valid keys here: api_key, host, port)" in msg


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("nodes: 2", "nodes: 0", "`slurm.nodes`: Input should be greater than or equal to 1 (got 0)"),
        ("nodes: 2", "nodes: two", "`slurm.nodes`: Input should be a valid integer"),
        ("max_num_seqs: 16", "max_num_seqs: 16, gpu_memory_utilization: 1.5",
         "`vllm.gpu_memory_utilization`: Input should be less than or equal to 1 (got 1.5)"),
        ("max_num_seqs: 16", "max_num_seqs: 16, gpu_memory_utilization: 0",
         "`vllm.gpu_memory_utilization`: Input should be greater than 0 (got 0)"),
        ('"0.8.5"', '"latest"', "`vllm.version`: not a version: 'latest'"),
        ("gpus_per_node: 4", "gpus_per_node: 4, mem: lots", "`slurm.mem`: memory 'lots' is not a SLURM size"),
        ("gpus_per_node: 4", 'gpus_per_node: 4, time: "3 days"', "`slurm.time`: time '3 days' is not a SLURM"),
        ("gpus_per_node: 4", "gpus_per_node: 4, partition: 'gpu; rm -rf ~'",
         "`slurm.partition`: partition 'gpu; rm -rf ~' contains characters that cannot appear on an #SBATCH line"),
        ("gpus_per_node: 4", "gpus_per_node: 4, extra: [qos=high]", "must start with '-'"),
    ],
)
def test_bad_values_are_reported_at_their_line(tmp_path, old, new, expected):
    msg = problems(tmp_path, BASE.replace(old, new))
    assert expected in msg
    assert "p.yaml:" in msg


def test_batched_tokens_below_num_seqs_points_at_the_field(tmp_path):
    msg = problems(tmp_path, BASE.replace("max_num_batched_tokens: 4096", "max_num_batched_tokens: 8"))
    assert "p.yaml:4:68: `vllm.max_num_batched_tokens`: max_num_batched_tokens (8) must be >= max_num_seqs (16)" in msg


def test_mp_backend_on_several_nodes_is_an_error(tmp_path):
    text = BASE.replace('version: "0.8.5"', 'version: "0.8.5", distributed_executor_backend: mp')
    assert "the mp backend runs on one node, but slurm.nodes is 2" in problems(tmp_path, text)


def test_missing_required_key(tmp_path):
    msg = problems(tmp_path, "name: t\nmodel: {path: /m}\n")
    assert "missing required key `vllm`" in msg


def test_missing_nested_required_key_points_at_section(tmp_path):
    msg = problems(tmp_path, BASE.replace("model: {path: /models/DeepSeek-R1}", "model: {served_name: x}"))
    assert "p.yaml:3:1: missing required key `model.path`" in msg


def test_several_problems_reported_together(tmp_path):
    msg = problems(tmp_path, BASE.replace("nodes: 2", "nodes: 0").replace("max_num_seqs", "max_seqs"))
    assert "slurm.nodes" in msg and "vllm.max_seqs" in msg


def test_yaml_syntax_error_has_position(tmp_path):
    msg = problems(tmp_path, "name: t\nslurm: {nodes: 2\n")
    assert "p.yaml:3:1: YAML syntax error" in msg


def test_duplicate_key_is_an_error(tmp_path):
    assert "duplicate key 'name'" in problems(tmp_path, BASE + "name: again\n")


def test_not_a_mapping(tmp_path):
    assert "a profile must be a mapping" in problems(tmp_path, "- a\n- b\n")


def test_tensor_parallel_not_dividing_heads_warns(tmp_path):
    text = BASE.replace("gpus_per_node: 4", "gpus_per_node: 3")
    loaded = load_profile(write(tmp_path, text), dirs=[tmp_path])
    assert any("does not divide the model's 128 attention heads" in w for w in loaded.warnings)


def test_model_config_heads_are_used_when_given(tmp_path):
    loaded = load_profile(write(tmp_path, BASE.replace("DeepSeek-R1", "other")), dirs=[tmp_path],
                          model_config={"num_attention_heads": 12})
    assert any("does not divide the model's 12 attention heads" in w for w in loaded.warnings)


def test_idle_gpus_warn(tmp_path):
    text = BASE.replace('version: "0.8.5"', 'version: "0.8.5", tensor_parallel_size: 4')
    loaded = load_profile(write(tmp_path, text), dirs=[tmp_path])
    assert any("allocates 8 GPUs" in w for w in loaded.warnings)


def test_extends_child_error_points_at_child_file(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, "name: child\nextends: base\nvllm: {max_num_seqs: 0}\n", "child.yaml")
    with pytest.raises(ConfigError) as info:
        load_profile(child, dirs=[tmp_path])
    assert f"{child}:3:22: `vllm.max_num_seqs`" in str(info.value)


def test_extends_cycle_and_missing_parent(tmp_path):
    write(tmp_path, "name: a\nextends: b\n", "a.yaml")
    write(tmp_path, "name: b\nextends: a\n", "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_profile(tmp_path / "a.yaml", dirs=[tmp_path])
    write(tmp_path, "name: c\nextends: nothere\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml:2:10: profile 'nothere' not found"):
        load_profile(tmp_path / "c.yaml", dirs=[tmp_path])


def test_unknown_profile_name_suggests(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_profile("h200x9")
    assert "did you mean 'h200x8'" in str(info.value)


def test_overrides_apply_and_are_validated():
    p = load_profile("h200x8", overrides=["vllm.max_num_seqs=64", "slurm.partition=gpu_h200"]).profile
    assert p.vllm.max_num_seqs == 64 and p.slurm.partition == "gpu_h200"
    with pytest.raises(ConfigError, match=r"--set vllm.max_num_seqs=-1: `vllm.max_num_seqs`"):
        load_profile("h200x8", overrides=["vllm.max_num_seqs=-1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_profile("h200x8", overrides=["vllm.max_num_seqs"])


def test_user_profile_dir_comes_before_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    user_dir = paths.user_profiles_dir()
    user_dir.mkdir(parents=True)
    (user_dir / "h200x8.yaml").write_text("name: h200x8\nextends: " + str(paths.shipped_profiles_dir() / "h200x8.yaml")
                                          + "\nslurm: {partition: mine}\n")
    loaded = load_profile("h200x8")
    assert loaded.source == user_dir / "h200x8.yaml"
    assert loaded.profile.slurm.partition == "mine" and loaded.profile.slurm.nodes == 2
    assert set(SHIPPED) <= set(list_profiles())
