"""The 2-node shapes: tiny-cpu-2node (Ray, TP2) and tiny-cpu-2node-mp (vLLM's multi-node mp backend).

Rendering, the per-node steps run outside SLURM (fake srun/scontrol/vllm/python3), and the stage machine on
the REAL logs of 2-node runs on the test cluster (tests/data/ray-2node/, tests/data/mp-2node/; captured by
tests/integration/test_e2e_tiny_cpu_2node.py's jobs).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from r1console.core import fatal
from r1console.core.errors import ConfigError
from r1console.core.lifecycle import JobLifecycle
from r1console.core.logparse import LogParser
from r1console.core.profiles import load_profile
from r1console.core.render import RenderPlan, render_script

DATA = Path(__file__).resolve().parents[1] / "data"


def vllm_args(script: str) -> list[str]:
    line = next(line for line in script.splitlines() if line.startswith("VLLM_ARGS=("))
    return shlex.split(line[len("VLLM_ARGS=("):-1])


def rendered(name: str, *overrides: str) -> str:
    profile = load_profile(name, overrides=list(overrides)).profile
    return render_script(profile, RenderPlan("/w", None))


# ---- profiles and rendering ------------------------------------------------------------------------

def test_tiny_cpu_2node_is_two_nodes_ray_tp2_with_ray_on_path():
    loaded = load_profile("tiny-cpu-2node")
    p = loaded.profile
    assert (p.slurm.nodes, p.slurm.gpus_per_node, p.backend, p.tensor_parallel_size) == (2, 0, "ray", 2)
    assert p.slurm.extra == ["--gpus-per-node=1"]  # a fake GPU per node for `gpus` and Ray's count only
    assert p.model.path == "/opt/r1c-vllm/models/tiny-r1"  # inherited from tiny-cpu
    assert any("/opt/r1c-vllm/venv/bin" in line for line in p.env.setup)  # python3 and `ray` with Ray
    assert p.env.vars["VLLM_HOST_IP"] == ""  # one address per node, set by the script
    args = vllm_args(rendered("tiny-cpu-2node"))
    pairs = dict(zip(args, args[1:]))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--distributed-executor-backend"] == "ray"


def test_tiny_cpu_2node_mp_renders_a_headless_rank_per_other_node():
    script = rendered("tiny-cpu-2node-mp")
    assert dict(zip(vllm_args(script), vllm_args(script)[1:]))["--distributed-executor-backend"] == "mp"
    assert '--node-rank "$rank" --headless' in script and "--node-rank 0)" in script
    assert '--nnodes "${#nodes_array[@]}" --master-addr "$head_node_ip"' in script


def test_mp_across_nodes_needs_a_vllm_that_has_it():
    with pytest.raises(ConfigError) as err:
        load_profile("tiny-cpu-2node-mp", overrides=["vllm.version=0.8.5"])
    assert "the mp backend runs on one node, but slurm.nodes is 2" in str(err.value)
    assert "this profile names 0.8.5" in str(err.value)


# ---- the per-node steps, run outside SLURM -------------------------------------------------------

FAKE_SRUN = """#!/bin/bash
# fake srun: record the node, run the command from `bash -c ...` on
node=""; while [[ $# -gt 0 && "$1" != bash ]]; do [[ "$1" == -w ]] && node=$2; shift; done
echo "srun -w $node: ${*:4}" >> "$LOG"
exec "$@"
"""
FAKE_SCONTROL = '#!/bin/bash\nprintf "node1\\nnode2\\n"\n'


def _bin(tmp_path: Path, **scripts: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    return bindir


def _run(tmp_path: Path, script: str, bindir: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "LOG": str(tmp_path / "log"),
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_ID": "77"}
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60)


def test_a_worker_rank_that_exits_fails_the_job_naming_its_node(tmp_path):
    # the headless rank (node2) dies at once; the serving rank would run on: the script must notice
    vllm = '#!/bin/bash\nfor a in "$@"; do [[ $a == --headless ]] && { echo "rank on $VLLM_HOST_IP dies"; exit 1; }; done\nexec sleep 20\n'
    bindir = _bin(tmp_path, srun=FAKE_SRUN, scontrol=FAKE_SCONTROL, vllm=vllm)
    result = _run(tmp_path, rendered("tiny-cpu-2node-mp", "env.setup=[]"), bindir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[r1console] mp_worker node=node2 rank=1" in result.stdout
    assert "[r1console] FATAL node_step_died node=node2" in result.stdout
    steps = (tmp_path / "log").read_text()
    assert "srun -w node2:" in steps and "--node-rank 1 --headless" in steps


def test_ray_not_importable_on_a_node_is_named_by_the_step(tmp_path):
    # python3 without Ray everywhere: the head's own step reports it by node, then the script stops
    bindir = _bin(tmp_path, srun=FAKE_SRUN, scontrol=FAKE_SCONTROL,
                  python3="#!/bin/bash\nexec /usr/bin/python3 -S \"$@\"\n",
                  ray="#!/bin/bash\necho ray should not start; exit 9\n")
    result = _run(tmp_path, rendered("tiny-cpu-2node", "env.setup=[]", "ray.wait_timeout_s=30"), bindir)
    assert result.returncode == 1, result.stdout + result.stderr
    missing = [ln for ln in result.stdout.splitlines() if "FATAL ray_python_missing" in ln]
    assert missing and "node=" in missing[0] and "No module named 'ray'" in missing[0], result.stdout
    assert "[r1console] FATAL ray_step_died node=node1" in result.stdout
    assert "ray should not start" not in result.stdout


RAY_OK_PYTHON3 = """#!/bin/bash
# python3 with Ray importable, and a Ray that always counts both nodes
if [[ "$1" == -c && "$2" == "import ray" ]]; then exit 0; fi
if [[ "$1" == - ]]; then cat >/dev/null; echo "2 0"; exit 0; fi
exec /usr/bin/python3 "$@"
"""
# a Ray older than token auth (no token file to write); `ray start` records its temp dir, then blocks
RAY_RECORDS_TEMP_DIR = """#!/bin/bash
[[ "$1" == --version ]] && { echo "ray, version 2.9.0"; exit 0; }
for a in "$@"; do
    if [[ $a == --temp-dir=* ]]; then d=${a#--temp-dir=}; echo "temp_dir $d $(stat -c '%a %u' "$d")" >> "$LOG"; fi
done
exec sleep 30
"""


def test_each_ray_step_runs_in_a_private_temp_dir_of_its_own_that_it_removes(tmp_path):
    # not /tmp/$USER/<job>: another user (or a deleted account of the same name) may own /tmp/$USER
    bindir = _bin(tmp_path, srun=FAKE_SRUN, scontrol=FAKE_SCONTROL, python3=RAY_OK_PYTHON3,
                  ray=RAY_RECORDS_TEMP_DIR, vllm="#!/bin/bash\nexec sleep 2\n")
    script = rendered("tiny-cpu-2node", "env.setup=[]", "ray.wait_timeout_s=30")
    assert "/tmp/${USER" not in script
    _run(tmp_path, script, bindir)
    dirs = [line.split() for line in (tmp_path / "log").read_text().splitlines() if line.startswith("temp_dir ")]
    assert len(dirs) == 2, (tmp_path / "log").read_text()  # the head's step and node2's
    assert len({d[1] for d in dirs}) == 2
    for _, path, mode, uid in dirs:
        assert path.startswith("/tmp/r1c-ray-77.") and mode == "700" and int(uid) == os.getuid()
    deadline = time.monotonic() + 10
    while any(Path(d[1]).exists() for d in dirs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [d[1] for d in dirs if Path(d[1]).exists()]  # each step removed its own when stopped


def test_a_ray_temp_dir_that_cannot_be_made_is_named_with_its_node(tmp_path):
    mktemp = ('#!/bin/bash\nfor a in "$@"; do [[ $a == *r1c-ray-* ]] && '
              '{ echo "mktemp: failed to create directory via template: No space left on device" >&2; exit 1; }; done\n'
              'exec /usr/bin/mktemp "$@"\n')
    no_head = RAY_OK_PYTHON3.replace('echo "2 0"; exit 0', "exit 1")  # no step starts Ray, so none answers
    bindir = _bin(tmp_path, srun=FAKE_SRUN, scontrol=FAKE_SCONTROL, python3=no_head,
                  ray=RAY_RECORDS_TEMP_DIR, mktemp=mktemp)
    result = _run(tmp_path, rendered("tiny-cpu-2node", "env.setup=[]", "ray.wait_timeout_s=30"), bindir)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "FATAL ray_tmp_unusable" in ln)
    assert "node=" in line and "No space left on device" in line
    assert "[r1console] FATAL ray_step_died node=node1" in result.stdout
    assert "temp_dir" not in (tmp_path / "log").read_text()  # Ray never started without its dir
    explanation, _ = fatal.script_fatal("ray_tmp_unusable", "node=node1 ...")
    assert "private temp dir" in explanation


# ---- the stage machine on the real 2-node logs -----------------------------------------------------

def _lifecycle(case: Path):
    life = JobLifecycle(live=False)
    for stream in ("out", "err"):
        (path,) = case.glob(f"job.*.{stream}")
        life.on_events(LogParser(stream).feed(path.read_bytes()))
    return life.snapshot()


@pytest.mark.parametrize(("case", "stage", "kinds"), [
    ("ray-2node/unsupported-platform", "failed", ["ray_unsupported_platform", "engine_failed"]),
    ("ray-2node/worker-step-killed", "failed", ["ray_step_died"]),
    ("ray-2node/ray-missing-node2", "failed", ["ray_python_missing", "ray_step_died"]),
    ("ray-2node/cancelled", "cancelled", []),
    ("mp-2node/served-cancelled", "cancelled", []),
])
def test_real_2node_logs(case, stage, kinds):
    snap = _lifecycle(DATA / case)
    assert snap.stage.value == stage, snap
    assert [e.kind for e in snap.errors] == kinds
    if kinds:
        assert snap.primary_error.kind == kinds[0]


def test_ray_came_up_on_both_nodes_in_every_ray_capture():
    for case in ("unsupported-platform", "worker-step-killed", "cancelled"):
        (out,) = (DATA / "ray-2node" / case).glob("job.*.out")
        text = out.read_text()
        assert "[r1console] ray_worker node=node2" in text and "[r1console] ray_ready nodes=2 gpus=2" in text


def test_the_failures_name_node2():
    snap = _lifecycle(DATA / "ray-2node" / "worker-step-killed")
    assert "node=node2" in snap.primary_error.explanation
    snap = _lifecycle(DATA / "ray-2node" / "ray-missing-node2")
    assert "node=node2" in snap.primary_error.explanation and "No module named 'ray'" in snap.primary_error.explanation


def test_unsupported_platform_signature():
    m = fatal.match("(EngineCore pid=26693) ValueError: current platform cpu does not support ray.")
    assert m is not None and m.signature.kind == "ray_unsupported_platform" and m.detail == "cpu"
    assert m.signature.root_cause and not m.signature.consequence
    assert fatal.match("INFO supports ray placement") is None
