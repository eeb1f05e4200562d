"""nvidia-smi query parsing: real H200 captures (tests/data/nvidia-smi/h200x2) and srun -l captures."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1console.core.nvidia_smi import (
    GPU_QUERY_FIELDS,
    NvidiaSmiParseError,
    nvidia_smi_argv,
    parse_labelled,
    parse_query,
)

DATA = Path(__file__).resolve().parents[1] / "data"
H200 = DATA / "nvidia-smi" / "h200x2"
CAPTURE_FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.used", "memory.total", "memory.free",
                  "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit")
LAB_FIELDS = ("index", "name", "memory.used", "memory.total", "utilization.gpu")


def sections(name: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in (H200 / name).read_text().splitlines():
        if line.strip() == "===":
            out.append([])
        elif line.strip():
            out[-1].append(line)
    return out


def lab_output(name: str) -> str:
    text = (DATA / "slurm" / "mn" / name).read_text()
    return text.split("\n", 1)[1].rsplit("[rc=", 1)[0]


def test_argv_asks_for_csv_without_units():
    argv = nvidia_smi_argv()
    assert argv[0] == "nvidia-smi" and argv[-1] == "--format=csv,noheader,nounits"
    assert argv[1] == "--query-gpu=" + ",".join(GPU_QUERY_FIELDS)


def test_h200_load_capture_without_units():
    plain = "\n".join(sections("smi_query_load.txt")[1])
    gpus = parse_query(plain, "gpu-a", CAPTURE_FIELDS)
    assert [g.index for g in gpus] == [0, 1]
    g0, g1 = gpus
    assert g0.name == "NVIDIA H200" and g0.uuid == "GPU-eec477df-b062-470d-6f74-15ac9da7933d"
    assert (g0.memory_used_mib, g0.memory_total_mib, g0.utilization_pct) == (41843, 143771, 100)
    assert g0.power_w == pytest.approx(692.29) and g0.power_limit_w == 700 and g0.temperature_c == 55
    assert g1.utilization_pct == 0 and g1.memory_pct == pytest.approx(100 * 72207 / 143771)


def test_h200_capture_with_units_parses_the_same_numbers():
    units = sections("smi_query_idle.txt")[0][1:]  # header line dropped
    plain = sections("smi_query_idle.txt")[1]
    with_units = parse_query("\n".join(units), "n", CAPTURE_FIELDS)
    without = parse_query("\n".join(plain), "n", CAPTURE_FIELDS)
    for a, b in zip(with_units, without):
        assert (a.memory_used_mib, a.memory_total_mib, a.utilization_pct, a.temperature_c) == \
               (b.memory_used_mib, b.memory_total_mib, b.utilization_pct, b.temperature_c)
        assert a.power_w == pytest.approx(b.power_w, abs=5)  # two samples a moment apart


def test_srun_labels_map_tasks_to_nodes_two_and_four_nodes():
    two = parse_labelled(lab_output("2nodes_07_srun_overlap_nvidia_smi.txt"), ["node1", "node2"], LAB_FIELDS)
    assert [(n.node, n.task, [g.index for g in n.gpus]) for n in two] == [
        ("node1", 0, [0, 1, 2, 3]), ("node2", 1, [0, 1, 2, 3])]
    assert all(g.name == "Fake GPU" and g.memory_total_mib == 81920 for n in two for g in n.gpus)
    four = parse_labelled(lab_output("4nodes_07_srun_overlap_nvidia_smi.txt"), [f"node{i}" for i in range(1, 5)],
                          LAB_FIELDS)
    assert [n.node for n in four] == ["node1", "node2", "node3", "node4"]
    assert sum(len(n.gpus) for n in four) == 16


def test_padded_labels_and_missing_values():
    text = " 9: 0, NVIDIA H100 80GB HBM3, [N/A], 10, 81559, [Not Supported], 30, [N/A], 700\n"
    fields = ("index", "name", "uuid", "memory.used", "memory.total", "utilization.gpu", "temperature.gpu",
              "power.draw", "power.limit")
    [node] = parse_labelled(text, [f"n{i}" for i in range(10)], fields)
    [gpu] = node.gpus
    assert node.node == "n9" and gpu.uuid is None and gpu.utilization_pct is None and gpu.power_w is None
    assert gpu.memory_used_mib == 10 and gpu.power_limit_w == 700


def test_comma_in_gpu_name_and_bad_lines():
    [gpu] = parse_query("0, Weird, Inc. GPU, 1, 2, 3\n", "n", LAB_FIELDS)
    assert gpu.name == "Weird, Inc. GPU" and gpu.utilization_pct == 3
    with pytest.raises(NvidiaSmiParseError, match="without a task label"):
        parse_labelled("0, Fake GPU, 0, 81920, 0\n", ["node1"], LAB_FIELDS)
    badfield = (H200 / "smi_badfield.txt").read_text().splitlines()[0]
    with pytest.raises(NvidiaSmiParseError):
        parse_query(badfield, "n", LAB_FIELDS)


def test_live_stand_in_capture_with_the_query_r1console_sends():
    text = (DATA / "slurm" / "live" / "srun_nvidia_smi_2nodes.txt").read_text()
    command, _, rest = text.partition("\n")
    assert command.endswith(" ".join(nvidia_smi_argv()))
    nodes = parse_labelled(rest.rsplit("[rc=", 1)[0], ["node1", "node2"])
    assert [(n.node, [g.index for g in n.gpus]) for n in nodes] == [("node1", [0, 1, 2, 3]), ("node2", [0, 1, 2, 3])]
    g = nodes[1].gpus[3]
    assert g.uuid.endswith("0203") and (g.memory_total_mib, g.temperature_c, g.power_limit_w) == (143771, 36, 700)
