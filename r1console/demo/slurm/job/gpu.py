"""Every GPU of a simulated job over its phases (:class:`GpuModel`: memory, utilisation, power,
temperature) and its UUID."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from r1console.demo.slurm.job.context import Phases

MiB = 1024**2
GiB = 1024**3


def _noise(*key: Any) -> float:
    """Deterministic pseudo-random number in [0, 1) for a key."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class GpuModel:
    """Memory, utilisation, power and temperature of each GPU of a job over its phases (MiB, %, W, C).

    ``weights_mib`` / ``kv_mib`` / ``activation_mib`` / ``context_mib`` per GPU come from the planner
    (``make_plan``): memory rises with the shards loaded, peaks at weights + activations while vLLM
    profiles, and settles at context + weights + KV cache.
    """

    phases: Phases
    world: int
    total_mib: int = 143771
    weights_mib: float = 81_442.0
    kv_mib: float = 39_466.0
    activation_mib: float = 11_776.0
    context_mib: float = 1024.0
    graphs: bool = False
    oom_rank: int | None = None
    oom_fraction: float = 0.6
    stale_mib: float = 0.0          # a leftover process on the OOM rank's GPU (oom fault)

    @classmethod
    def from_plan(cls, phases: Phases, world: int, plan: Any, *, total_mib: int, graphs: bool,
                  fault: str | None, oom_rank_: int | None, oom_fraction: float) -> "GpuModel":
        model = cls(phases=phases, world=world, total_mib=total_mib, graphs=graphs)
        if plan is not None:
            model.weights_mib = plan.weights_bytes_per_gpu / MiB
            model.kv_mib = plan.kv_cache_bytes_per_gpu / MiB
            model.activation_mib = plan.activation_bytes_per_gpu / MiB
            model.context_mib = plan.non_torch_bytes_per_gpu / MiB
        else:  # no plan (not a model the planner knows): 55% weights, the rest of 0.9 x total for KV
            model.weights_mib = 0.55 * total_mib
            model.activation_mib = 0.08 * total_mib
            model.context_mib = 1024.0
            model.kv_mib = max(0.0, 0.9 * total_mib - model.weights_mib - model.activation_mib - 1024.0)
        if fault == "oom" and oom_rank_ is not None:
            model.oom_rank = oom_rank_
            model.oom_fraction = oom_fraction
            model.stale_mib = max(0.0, total_mib - 1045 - model.process_mib_at_oom())
        return model

    def process_mib_at_oom(self) -> float:
        return self.context_mib + self.weights_mib * self.oom_fraction

    def memory_mib(self, rank: int, t: float) -> float:
        """vLLM's memory on the GPU of ``rank`` at ``t`` (sim seconds after the job started)."""
        p = self.phases
        stale = self.stale_mib if rank == self.oom_rank else 0.0
        if rank >= self.world or p.cuda is None or t < p.cuda:
            return stale
        ctx = self.context_mib * min(1.0, (t - p.cuda) / 2.0)
        jitter = 3.0 * rank
        if p.load0 is None or t < p.load0:
            return stale + ctx + (jitter if t - p.cuda > 2 else 0)
        span = max(1e-6, (p.load1 or p.load0) - p.load0)
        frac = min(1.0, (t - p.load0) / span)
        if rank == self.oom_rank and p.oom is not None and t >= p.oom:
            return self.total_mib - 1045.0
        base = stale + self.context_mib + jitter
        if frac < 1.0:
            return base + self.weights_mib * frac
        if p.hang is not None and t >= p.hang:
            return base + self.weights_mib + 0.3 * self.activation_mib
        if p.kv is None or t < p.kv:
            after = t - (p.load1 or t)
            return base + self.weights_mib + self.activation_mib * min(1.0, after / 4.0)
        settle = min(1.0, (t - p.kv) / 1.0)
        return base + self.weights_mib + self.activation_mib * (1 - settle) + self.kv_mib * settle \
            + (600.0 if self.graphs and p.ready is not None and t >= p.ready else 0.0)

    def activity(self, rank: int, t: float, busy: bool) -> str:
        p = self.phases
        if rank >= self.world or p.cuda is None or t < p.cuda:
            return "idle"
        if p.hang is not None and t >= p.hang:
            return "hang"
        if p.load0 is not None and p.load1 is not None and p.load0 <= t < p.load1:
            return "loading"
        if p.load1 is not None and t >= p.load1 and (p.ready is None or t < p.ready):
            return "profiling" if p.kv is None or t < p.kv + 1.0 else ("graphs" if self.graphs else "init")
        if p.ready is not None and t >= p.ready:
            return "serving" if busy else "idle"
        return "init"

    def sample(self, node: str, index: int, rank: int, t: float, busy: bool) -> dict[str, float]:
        """memory.used (MiB), utilization.gpu (%), power.draw (W), temperature.gpu (C)."""
        mem = self.memory_mib(rank, t)
        act = self.activity(rank, t, busy)
        tick = int(t // 2)
        n = _noise(node, index, tick)
        util, power = {
            "idle": (0, 112 + 12 * _noise(node, index)),
            "init": (int(5 * n), 150 + 20 * n),
            "loading": (int(4 * n), 135 + 30 * n),
            "profiling": (90 + int(10 * n), 430 + 160 * n),
            "graphs": (40 + int(40 * n), 300 + 150 * n),
            "serving": (88 + int(12 * n), 560 + 130 * n),
            "hang": (100, 240 + 60 * n),
        }[act]
        if rank == self.oom_rank and self.stale_mib and act == "idle":
            util, power = 0, 121.0 + 4 * n
        temp = 31 + (power - 100) / 600 * 26 + 3 * _noise(node, index, "t")
        return {"memory_used": round(mem), "utilization": util, "power": round(power, 2),
                "temperature": round(temp)}


def gpu_uuid(cluster: str, node: str, index: int) -> str:
    h = hashlib.sha256(f"{cluster}/{node}/{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
