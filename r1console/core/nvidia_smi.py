"""Parse ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` output, also with srun's ``-l`` labels.

The SLURM client runs, inside a running job::

    srun --jobid J --overlap -N n --ntasks-per-node=1 -l nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits

Every line then starts with the task number (``0: 0, NVIDIA H200, ...``; srun right-aligns the label
when there are 10+ tasks). With ``-N n --ntasks-per-node=1`` SLURM's default block distribution puts
task k on the k-th node of the job's node list, so labels map to node names by position.
Fields the GPU cannot report (``[N/A]``, ``[Not Supported]``) become None.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from r1console.core.errors import R1Error

GPU_QUERY_FIELDS: tuple[str, ...] = (
    "index", "name", "uuid", "memory.used", "memory.total", "utilization.gpu",
    "temperature.gpu", "power.draw", "power.limit",
)
_LABEL = re.compile(r"^\s*(\d+):\s?(.*)$")
_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", "[gpu is lost]",
            "[insufficient permissions]", "[requires pro]"}
_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:MiB|GiB|KiB|%|W|C|MHz)?\s*$")


class NvidiaSmiParseError(R1Error):
    """nvidia-smi printed a line that does not fit the query."""


def nvidia_smi_argv(fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[str]:
    return ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class GpuSample:
    node: str
    index: int
    name: str
    uuid: str | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None

    @property
    def memory_pct(self) -> float | None:
        if self.memory_used_mib is None or not self.memory_total_mib:
            return None
        return 100.0 * self.memory_used_mib / self.memory_total_mib

    def to_dict(self) -> dict:
        data = asdict(self)
        data["memory_pct"] = self.memory_pct
        return data


@dataclass(frozen=True)
class NodeGpus:
    node: str
    task: int | None
    gpus: tuple[GpuSample, ...]

    def to_dict(self) -> dict:
        return {"node": self.node, "task": self.task, "gpus": [g.to_dict() for g in self.gpus]}


def _number(text: str) -> float | None:
    text = text.strip()
    if text.lower() in _MISSING:
        return None
    m = _UNIT.match(text)
    if not m:
        return None
    return float(m.group(1))


def _cells(line: str, fields: tuple[str, ...]) -> dict[str, str]:
    cells = [c.strip() for c in line.split(",")]
    if len(cells) > len(fields) and "name" in fields:  # a comma inside the GPU name
        extra = len(cells) - len(fields)
        at = fields.index("name")
        cells = cells[:at] + [", ".join(cells[at:at + extra + 1])] + cells[at + extra + 1:]
    if len(cells) != len(fields):
        raise NvidiaSmiParseError(
            f"nvidia-smi printed {len(cells)} fields where {len(fields)} were asked for: {line.strip()[:200]}")
    return dict(zip(fields, cells))


def sample_from_line(line: str, node: str, fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> GpuSample:
    row = _cells(line, fields)
    index_text = row.get("index", "")
    if not index_text.strip().isdigit():
        raise NvidiaSmiParseError(f"nvidia-smi printed a GPU index that is not a number: {line.strip()[:200]}")

    def num(key: str) -> float | None:
        return _number(row[key]) if key in row else None

    uuid = row.get("uuid")
    return GpuSample(
        node=node,
        index=int(index_text),
        name=row.get("name", "").strip(),
        uuid=None if uuid is None or uuid.lower() in _MISSING else uuid,
        memory_used_mib=num("memory.used"),
        memory_total_mib=num("memory.total"),
        utilization_pct=num("utilization.gpu"),
        temperature_c=num("temperature.gpu"),
        power_w=num("power.draw"),
        power_limit_w=num("power.limit"),
    )


def parse_query(text: str, node: str, fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[GpuSample]:
    """Unlabelled output of one nodes' ``nvidia-smi --query-gpu`` (``noheader``)."""
    return sorted((sample_from_line(ln, node, fields) for ln in text.splitlines() if ln.strip()),
                  key=lambda g: g.index)


def parse_labelled(text: str, nodes: list[str], fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[NodeGpus]:
    """``srun -l`` output -> one NodeGpus per task, in node-list order.

    ``nodes`` is the job's expanded node list; task k ran on ``nodes[k]``. A line without a task label
    raises NvidiaSmiParseError (srun's own messages go to stderr, never here).
    """
    per_task: dict[int, list[GpuSample]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LABEL.match(line)
        if not m:
            raise NvidiaSmiParseError(f"srun printed a line without a task label: {line.strip()[:200]}")
        task = int(m.group(1))
        node = nodes[task] if task < len(nodes) else f"task{task}"
        per_task.setdefault(task, []).append(sample_from_line(m.group(2), node, fields))
    return [NodeGpus(node=per_task[t][0].node, task=t, gpus=tuple(sorted(per_task[t], key=lambda g: g.index)))
            for t in sorted(per_task)]


__all__ = ["GPU_QUERY_FIELDS", "GpuSample", "NodeGpus", "NvidiaSmiParseError", "nvidia_smi_argv",
           "parse_labelled", "parse_query", "sample_from_line"]
