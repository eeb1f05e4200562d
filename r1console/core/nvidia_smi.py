"""Parse ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` output, also with srun's ``-l`` labels.

Fallbacks, for older drivers and sites that wrap ``nvidia-smi`` (:func:`parse_any` picks one):

* CSV with a header and units (``--format=csv``: ``memory.used [MiB]`` header, ``1129 MiB`` cells),
  fields in any order, ``index`` optional (then GPUs are numbered in order; a ``-l`` loop capture
  gives the last sample of each GPU);
* the plain ``nvidia-smi`` table (``|   0  NVIDIA H200  On  | … |`` plus its memory/power row).

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
from r1console.core.textnum import is_ascii_int

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
    return _sample_from_row(_cells(line, fields), node, line)


def _sample_from_row(row: dict[str, str], node: str, line: str) -> GpuSample:
    index_text = row.get("index", "").strip()
    if not is_ascii_int(index_text):
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


_HEADER_FIELD = re.compile(r"^\s*([a-z][a-z0-9_.]*)(?:\s*\[[^\]]*\])?\s*$")
_TABLE_GPU = re.compile(r"^\|\s+(?P<index>\d{1,3})\s+(?P<name>.+?)\s+(?:On|Off)\s+\|")
_TABLE_STATS = re.compile(
    r"^\|\s*(?:\d+%|N/A|ERR!)\s+(?P<temp>\d+C|N/A)\s+\S+\s+(?P<power>\d+W|N/A)\s*/\s*(?P<limit>\d+W|N/A)\s*\|"
    r"\s*(?P<used>\d+)MiB\s*/\s*(?P<total>\d+)MiB\s*\|\s*(?P<util>\d+%|N/A)")


def _table_num(text: str) -> float | None:
    digits = text.rstrip("CW%")
    return float(digits) if digits.isascii() and digits.isdecimal() else None


def parse_table(text: str, node: str) -> list[GpuSample]:
    """The plain ``nvidia-smi`` table: each GPU row and the stats row under it."""
    out: list[GpuSample] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _TABLE_GPU.match(line.rstrip())
        if m is None:
            continue
        stats = _TABLE_STATS.match(lines[i + 1].strip()) if i + 1 < len(lines) else None
        if stats is None:
            raise NvidiaSmiParseError(f"nvidia-smi table: GPU {m.group('index')} has no memory/power row below it")
        out.append(GpuSample(node=node, index=int(m.group("index")), name=m.group("name").strip(),
                             memory_used_mib=float(stats.group("used")), memory_total_mib=float(stats.group("total")),
                             utilization_pct=_table_num(stats.group("util")), temperature_c=_table_num(stats.group("temp")),
                             power_w=_table_num(stats.group("power")), power_limit_w=_table_num(stats.group("limit"))))
    if not out:
        raise NvidiaSmiParseError("nvidia-smi table without any GPU row")
    return sorted(out, key=lambda g: g.index)


def _header_fields(line: str) -> tuple[str, ...] | None:
    names = []
    for cell in line.split(","):
        m = _HEADER_FIELD.match(cell)
        if m is None:
            return None
        names.append(m.group(1))
    return tuple(names) if "name" in names or "index" in names else None


def parse_csv_with_header(text: str, node: str) -> list[GpuSample]:
    """``--format=csv`` (header, units in the cells), fields in any order; see the module docstring."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    fields = _header_fields(lines[0]) if lines else None
    if fields is None:
        raise NvidiaSmiParseError("nvidia-smi CSV without a header line of field names")
    has_index = "index" in fields
    latest: dict[int, GpuSample] = {}
    position = 0
    stamp = None
    for line in lines[1:]:
        if line.strip() == lines[0].strip():
            continue  # a repeated header (loop captures)
        row = _cells(line, fields)
        if not has_index:
            if row.get("timestamp") != stamp:
                stamp, position = row.get("timestamp"), 0
            row["index"] = str(position)
            position += 1
        sample = _sample_from_row(row, node, line)
        latest[sample.index] = sample
    if not latest:
        raise NvidiaSmiParseError("nvidia-smi CSV has a header but no GPU rows")
    return [latest[i] for i in sorted(latest)]


def parse_any(text: str, node: str, fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[GpuSample]:
    """The query CSV (noheader), else CSV with a header, else the plain table."""
    stripped = text.lstrip()
    if "NVIDIA-SMI" in text or stripped.startswith("+--") or stripped.startswith("|"):
        return parse_table(text, node)
    first = stripped.splitlines()[0] if stripped else ""
    if _header_fields(first) is not None:
        return parse_csv_with_header(text, node)
    return parse_query(text, node, fields)


def parse_labelled(text: str, nodes: list[str], fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[NodeGpus]:
    """``srun -l`` output -> one NodeGpus per task, in node-list order.

    ``nodes`` is the job's expanded node list; task k ran on ``nodes[k]``. A line without a task label
    raises NvidiaSmiParseError (srun's own messages go to stderr, never here).
    """
    lines_by_task: dict[int, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LABEL.match(line)
        if not m:
            raise NvidiaSmiParseError(f"srun printed a line without a task label: {line.strip()[:200]}")
        lines_by_task.setdefault(int(m.group(1)), []).append(m.group(2))
    out = []
    for task in sorted(lines_by_task):
        node = nodes[task] if task < len(nodes) else f"task{task}"
        gpus = parse_any("\n".join(lines_by_task[task]), node, fields)
        out.append(NodeGpus(node=node, task=task, gpus=tuple(sorted(gpus, key=lambda g: g.index))))
    return out


__all__ = ["GPU_QUERY_FIELDS", "GpuSample", "NodeGpus", "NvidiaSmiParseError", "nvidia_smi_argv", "parse_any",
           "parse_csv_with_header", "parse_labelled", "parse_query", "parse_table", "sample_from_line"]
