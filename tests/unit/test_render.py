"""Script rendering: seed shape, version-correct flags, quoting, bash -n and shellcheck."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from r1console.core.profiles import load_profile
from r1console.core.render import RenderPlan, key_file_for, render_script
from r1console.core.vllm_flags import serve_args

SHIPPED = ["h100x16", "h200x8", "h200x8-current", "tiny-cpu", "tiny-cpu-2node", "tiny-cpu-2node-mp"]
WORKDIR = "/home/alice/r1console"


def render(name: str, overrides: list[str] | None = None, workdir: str = WORKDIR) -> str:
    profile = load_profile(name, overrides=overrides).profile
    return render_script(profile, RenderPlan(workdir, key_file_for(profile, workdir, f"{name}-test")))


def vllm_args(script: str) -> list[str]:
    line = next(line for line in script.splitlines() if line.startswith("VLLM_ARGS=("))
    return shlex.split(line[len("VLLM_ARGS=("):-1])


def header(script: str) -> list[str]:
    return [line[len("#SBATCH "):] for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_h100x16_renders_the_seed_deployment():
    script = render("h100x16")
    h = header(script)
    assert {"--nodes=4", "--gpus-per-node=4", "--ntasks-per-node=1", "--cpus-per-task=96", "--mem=1440G",
            "--exclusive", "--constraint=h100", "--time=3-00:00:00", "--output=job.%N.%j.out",
            "--error=job.%N.%j.err", f"--chdir={WORKDIR}"} <= set(h)
    args = vllm_args(script)
    pairs = dict(zip(args, args[1:]))
    assert pairs["--tensor-parallel-size"] == "16"
    assert pairs["--max-num-seqs"] == "112" and pairs["--max-num-batched-tokens"] == "57344"
    assert pairs["--gpu-memory-utilization"] == "0.9"
    assert pairs["--distributed-executor-backend"] == "ray" and pairs["--reasoning-parser"] == "deepseek_r1"
    assert "--enforce-eager" in args and "--trust-remote-code" in args
    assert 'vllm serve "$R1C_MODEL_PATH" "${VLLM_ARGS[@]}"' in script


def test_h200x8_is_two_nodes_tp8():
    script = render("h200x8")
    assert "--nodes=2" in header(script) and "--constraint=h200" in header(script)
    pairs = dict(zip(vllm_args(script), vllm_args(script)[1:]))
    assert pairs["--tensor-parallel-size"] == "8" and pairs["--max-num-seqs"] == "144"
    assert pairs["--max-num-batched-tokens"] == "98304" and pairs["--gpu-memory-utilization"] == "0.93"


@pytest.mark.parametrize("version,expected", [("0.7.3", True), ("0.8.5", True), ("0.8.5.post1", True),
                                              ("0.9.2", False), ("0.10.2", False), ("0.33.0", False)])
def test_enable_reasoning_only_where_it_is_needed(version, expected):
    args = vllm_args(render("h100x16", [f"vllm.version={version}"]))
    assert ("--enable-reasoning" in args) is expected
    assert "--reasoning-parser" in args


def test_expert_parallel_and_current_settings():
    args = vllm_args(render("h200x8-current"))
    assert "--enable-expert-parallel" in args and "--enforce-eager" not in args
    pairs = dict(zip(args, args[1:]))
    assert pairs["--max-model-len"] == "65536" and pairs["--gpu-memory-utilization"] == "0.95"
    assert pairs["--served-model-name"] == "deepseek-r1"
    assert "export VLLM_USE_DEEP_GEMM=1" in render("h200x8-current")
    old = serve_args(load_profile("h200x8-current", overrides=["vllm.version=0.7.3"]).profile)
    assert "--enable-expert-parallel" not in old


def test_tiny_cpu_is_single_node_mp_without_gpus():
    script = render("tiny-cpu")
    assert not any(line.startswith("--gpus-per-node") for line in header(script))
    assert "R1C_BACKEND=mp" in script
    pairs = dict(zip(vllm_args(script), vllm_args(script)[1:]))
    assert pairs["--tensor-parallel-size"] == "1" and pairs["--distributed-executor-backend"] == "mp"


def test_api_key_comes_from_a_file_never_the_command_line():
    script = render("h200x8")
    assert "--api-key" not in script
    assert f"R1C_API_KEY_FILE={WORKDIR}/keys/h200x8-test.key" in script
    assert 'r1c_api_key="$(<"$R1C_API_KEY_FILE")"' in script
    assert "R1C_API_KEY_FILE=''" in render("h200x8", ["server.api_key=none"])


def test_markers_for_the_console():
    script = render("h200x8")
    for marker in ('echo "Head node: $head_node"', 'r1c_mark "head_node=$head_node"', 'r1c_mark "head_ip=',
                   'r1c_mark "port=$R1C_PORT"', 'r1c_mark "rendered_by=r1console', "ray_ready nodes=",
                   'r1c_fatal "ray_timeout', 'echo "[r1console] FATAL $*"'):
        assert marker in script


def test_ray_waits_for_nodes_instead_of_sleeping_blindly():
    script = render("h200x8")
    assert "sleep 10" not in script
    assert "R1C_RAY_WAIT_S=600" in script and "ray.nodes()" in script


def test_values_are_quoted_against_injection():
    nasty = "/models/$(touch /tmp/pwned)/R1 'x' `id`"
    script = render("h200x8", [f"model.path={nasty}", "env.vars.MY_VAR=a b;c", "vllm.extra_args=[--foo, 'a b']"],
                    workdir="/home/a b/$(id)")
    assert f"R1C_MODEL_PATH={shlex.quote(nasty)}" in script
    assert f"export MY_VAR={shlex.quote('a b;c')}" in script
    assert "--chdir" not in "\n".join(header(script))  # unsafe for an #SBATCH line: submit passes it as argv
    assert vllm_args(script)[-2:] == ["--foo", "a b"]
    # bash sees exactly these values when it evaluates the settings block
    settings = "\n".join(line for line in script.splitlines() if line.startswith(("R1C_", "VLLM_ARGS=")))
    out = subprocess.run(["bash", "-c", settings + '\nprintf "%s\\n" "$R1C_MODEL_PATH" "$R1C_WORKDIR"'],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [nasty, "/home/a b/$(id)"]


@pytest.mark.parametrize("name", SHIPPED)
def test_bash_n_and_shellcheck_pass(name, tmp_path):
    path = tmp_path / f"{name}.sbatch"
    path.write_text(render(name))
    subprocess.run(["bash", "-n", str(path)], check=True)
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck; .ci/run installs it)"
    result = subprocess.run([shellcheck, "-s", "bash", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_script_runs_to_vllm_with_the_mp_backend(tmp_path):
    """Execute the rendered tiny-cpu script outside SLURM with a fake `vllm` that records its argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vllm").write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$ARGV_OUT"\necho "key=$VLLM_API_KEY" >> "$ARGV_OUT"\n')
    (bindir / "vllm").chmod(0o755)
    key = tmp_path / "k.key"
    key.write_text("s3cret")
    profile = load_profile("tiny-cpu", overrides=["env.setup=[]"]).profile
    script = render_script(profile, RenderPlan(str(tmp_path), str(key)))
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "ARGV_OUT": str(tmp_path / "argv"), "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "[r1console] vllm_starting" in result.stdout and "[r1console] vllm_exited code=0" in result.stdout
    recorded = (tmp_path / "argv").read_text().splitlines()
    assert recorded[0] == "serve" and recorded[1] == "/opt/r1c-vllm/models/tiny-r1"
    assert recorded[-1] == "key=s3cret"


def test_missing_key_file_fails_with_a_marker(tmp_path):
    profile = load_profile("tiny-cpu", overrides=["env.setup=[]"]).profile
    path = tmp_path / "job.sbatch"
    path.write_text(render_script(profile, RenderPlan(str(tmp_path), str(tmp_path / "missing.key"))))
    result = subprocess.run(["bash", str(path)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "[r1console] FATAL api_key_missing" in result.stdout
