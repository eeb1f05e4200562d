"""What a deployment used and served: GPU-hours from SLURM's times, tokens from the replicas.

``gpu_hours`` sums over the deployment's jobs: GPUs of the job (nodes x gpus_per_node when
SLURM does not report them) times the time it held them (SLURM's elapsed time). Tokens served
are vLLM's ``vllm:generation_tokens_total`` (and prompt tokens) of each job, as last scraped;
a counter that went down (a restarted engine) adds its new value instead of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobUsage:
    job_id: str
    gpus: int
    seconds: float

    @property
    def gpu_hours(self) -> float:
        return self.gpus * self.seconds / 3600.0


def gpu_hours(jobs: list[JobUsage]) -> float:
    return sum(j.gpu_hours for j in jobs)


@dataclass
class TokenLedger:
    """Tokens served per job, robust to counter resets (engine restarts)."""

    generation: dict[str, float] = field(default_factory=dict)
    prompt: dict[str, float] = field(default_factory=dict)
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def observe(self, job_id: str, generation_total: float | None, prompt_total: float | None = None) -> None:
        if generation_total is None:
            return
        prompt_total = prompt_total or 0.0
        last_gen, last_prompt = self._last.get(job_id, (0.0, 0.0))
        gain_gen = generation_total - last_gen if generation_total >= last_gen else generation_total
        gain_prompt = prompt_total - last_prompt if prompt_total >= last_prompt else prompt_total
        self.generation[job_id] = self.generation.get(job_id, 0.0) + gain_gen
        self.prompt[job_id] = self.prompt.get(job_id, 0.0) + gain_prompt
        self._last[job_id] = (generation_total, prompt_total)

    @property
    def tokens_served(self) -> int:
        return int(sum(self.generation.values()))

    @property
    def prompt_tokens(self) -> int:
        return int(sum(self.prompt.values()))

    def to_dict(self) -> dict:
        return {"generation": dict(self.generation), "prompt": dict(self.prompt),
                "last": {k: list(v) for k, v in self._last.items()}}

    @classmethod
    def from_dict(cls, data: dict | None) -> "TokenLedger":
        data = data or {}
        ledger = cls(generation={str(k): float(v) for k, v in (data.get("generation") or {}).items()},
                     prompt={str(k): float(v) for k, v in (data.get("prompt") or {}).items()})
        ledger._last = {str(k): (float(v[0]), float(v[1])) for k, v in (data.get("last") or {}).items()}
        return ledger


__all__ = ["JobUsage", "TokenLedger", "gpu_hours"]
