"""Deployment profile models: the typed sections of one profile and their field checks.

A profile is one YAML file describing one deployment (SLURM allocation, environment set-up,
model, vLLM engine arguments, server). The documented format is in README.md; the models below
are the contract. Every field is documented where it is declared. Loading, ``extends:`` and the
file:line:col errors are in ``r1console.core.profiles``, which re-exports these names.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from r1console.core.versions import parse_version

# Values that end up on ``#SBATCH`` lines are parsed by sbatch itself, not by a shell, so they
# cannot be quoted: allow only characters SLURM uses in names, features and limits.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which would end an #SBATCH line.
_SBATCH_SAFE = re.compile(r"^[A-Za-z0-9_.,:;&|!*\[\]()+=@/%-]+\Z")
_MEM = re.compile(r"^\d+[KMGTkmgt]?\Z")
_TIME = re.compile(
    r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2}"
    r"|infinite|UNLIMITED|unlimited)\Z"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# sbatch options r1console sets itself: log discovery, the workdir and the reconcile tag depend on them
_RESERVED_SBATCH = {"--output": "output", "-o": "output", "--error": "error", "-e": "error",
                    "--chdir": "chdir", "-D": "chdir", "--comment": "comment", "--parsable": "parsable"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _sbatch_value(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not _SBATCH_SAFE.match(value):
        raise ValueError(
            f"{what} {value!r} contains characters that cannot appear on an #SBATCH line "
            "(spaces, quotes, '#', '$', '\\' or control characters)"
        )
    return value


class SlurmSpec(_Section):
    """The allocation: one line of ``#SBATCH`` per field that is set."""

    nodes: int = Field(1, ge=1, description="Number of nodes (--nodes).")
    gpus_per_node: int = Field(4, ge=0, description="GPUs per node (--gpus-per-node); 0 for CPU-only.")
    ntasks_per_node: int = Field(1, ge=1, description="Tasks per node; the script runs one Ray daemon per node.")
    cpus_per_task: int | None = Field(None, ge=1, description="CPUs per task (--cpus-per-task).")
    mem: str | None = Field(None, description="Memory per node, e.g. 1440G (--mem).")
    time: str | None = Field(None, description='Time limit, e.g. "3-00:00:00" (--time).')
    partition: str | None = Field(None, description="Partition (--partition).")
    account: str | None = Field(None, description="Account (--account).")
    qos: str | None = Field(None, description="QOS (--qos).")
    constraint: str | None = Field(None, description="Node features, e.g. h200 (--constraint).")
    exclusive: bool = Field(False, description="Whole nodes (--exclusive).")
    job_name: str = Field("r1console", description="Job name (--job-name).")
    extra: list[str] = Field(default_factory=list, description='More sbatch options, e.g. ["--qos=high"].')

    @field_validator("mem", "time", mode="before")
    @classmethod
    def _number_to_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("mem")
    @classmethod
    def _check_mem(cls, value: str | None) -> str | None:
        if value is not None and not _MEM.match(value):
            raise ValueError(f"memory {value!r} is not a SLURM size such as 1440G, 512000M or 0")
        return value

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str | None) -> str | None:
        if value is not None and not _TIME.match(value):
            raise ValueError(
                f"time {value!r} is not a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
            )
        return value

    @field_validator("partition", "account", "qos", "constraint", "job_name")
    @classmethod
    def _check_sbatch_safe(cls, value: str | None, info) -> str | None:
        return _sbatch_value(value, info.field_name)

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("-"):
                raise ValueError(f"extra sbatch option {item!r} must start with '-' (e.g. '--qos=high')")
            if any(ch in item for ch in "\n\r\0#"):
                raise ValueError(f"extra sbatch option {item!r} contains a newline, NUL or '#'")
            flag = item.split("=", 1)[0].split(None, 1)[0]
            if flag in _RESERVED_SBATCH or (flag[:2] in ("-o", "-e", "-D") and not flag.startswith("--")):
                raise ValueError(f"extra sbatch option {item!r} overrides an option r1console sets itself "
                                 "(--output/--error/--chdir/--comment/--parsable): the console would lose "
                                 "the job's logs or the job; set workdir instead")
        return value


def _env_vars(value: dict[str, str]) -> dict[str, str]:
    """Environment variables with valid names, values as strings (``env.vars``, ``vllm.env``)."""
    for name in value:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
    return {k: str(v) for k, v in value.items()}


class EnvSpec(_Section):
    """How the job prepares its environment before Ray and vLLM start."""

    setup: list[str] = Field(default_factory=list, description="Shell lines run first (module load, conda activate).")
    vars: dict[str, str] = Field(default_factory=dict, description="Environment variables exported (values quoted).")

    @field_validator("setup")
    @classmethod
    def _one_line_each(cls, value: list[str]) -> list[str]:
        for line in value:
            if "\0" in line:
                raise ValueError("setup lines cannot contain NUL")
        return value

    @field_validator("vars")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        return _env_vars(value)


class ModelSpec(_Section):
    """The checkpoint to serve."""

    path: str = Field(..., description="Model directory on the cluster (or a hub id).")
    served_name: str | None = Field(None, description="Name clients send as `model`; default: the path.")
    trust_remote_code: bool = Field(True, description="Pass --trust-remote-code.")


class VllmSpec(_Section):
    """Engine arguments for ``vllm serve``; flags are rendered correctly for ``version``."""

    version: str = Field(..., description='vLLM version on the cluster, e.g. "0.8.5" (decides which flags exist).')
    max_num_seqs: int | None = Field(None, ge=1, description="--max-num-seqs (concurrent sequences).")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="--max-num-batched-tokens.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="--gpu-memory-utilization, in (0, 1].")
    max_model_len: int | None = Field(None, ge=1, description="--max-model-len.")
    enforce_eager: bool = Field(False, description="--enforce-eager (no CUDA graphs / torch.compile).")
    reasoning_parser: str | None = Field("deepseek_r1", description="--reasoning-parser.")
    distributed_executor_backend: Literal["ray", "mp"] | None = Field(
        None, description="ray (multi-node) or mp (one node); default: ray when nodes > 1."
    )
    tensor_parallel_size: int | None = Field(None, ge=1, description="Default: nodes x gpus_per_node / pipeline.")
    pipeline_parallel_size: int = Field(1, ge=1, description="--pipeline-parallel-size.")
    enable_expert_parallel: bool = Field(False, description="--enable-expert-parallel (vLLM >= 0.8).")
    kv_cache_dtype: str = Field("auto", description="--kv-cache-dtype (auto, fp8, ...).")
    env: dict[str, str] = Field(default_factory=dict, description="Engine environment, e.g. VLLM_USE_DEEP_GEMM: '1'.")
    extra_args: list[str] = Field(default_factory=list, description="More `vllm serve` arguments, passed quoted.")

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, value: Any) -> Any:
        if isinstance(value, float):  # `version: 0.10` in YAML is a float: keep what the user typed
            value = repr(value)
        parse_version(str(value))
        return str(value)

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        return _env_vars(value)


class ServerSpec(_Section):
    """The OpenAI-compatible HTTP server on the head node."""

    port: int = Field(8000, ge=1, le=65535, description="--port.")
    host: str = Field("0.0.0.0", description="--host (the console reaches it through an SSH forward).")
    api_key: str | None = Field(
        "auto", description="auto: a fresh key per deployment (0600 file); none: no key; or a key file path."
    )

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None or value in ("auto", "none") or value.startswith(("/", "~")):
            return value
        raise ValueError("api_key must be 'auto', 'none' or the absolute path of a key file on the cluster")


class RaySpec(_Section):
    """Ray bring-up across the nodes (backend ray)."""

    wait_timeout_s: int = Field(600, ge=10, description="How long to wait for every node and GPU to join.")
    head_port: int | None = Field(None, ge=1024, le=65535, description="GCS port; default: a free one in 15000-20000.")


def _span_field(value: Any, what: str) -> Any:
    if value is None:
        return None
    from r1console.core.relay import parse_span

    seconds = parse_span(value, what)
    if seconds <= 0:
        raise ValueError(f"{what} must be more than 0")
    return seconds


class RelaySpec(_Section):
    """Keep serving past the walltime: a successor job before this one's end (``r1console serve``)."""

    lead_time: float = Field(45 * 60.0, description="Submit the successor this long before the end, e.g. 45m.")
    max_restarts: int = Field(3, ge=0, description="Resubmit a failed job at most this many times in a row.")
    restart_backoff: float = Field(60.0, description="Wait before the first resubmit (doubles each time), e.g. 1m.")

    @field_validator("lead_time", "restart_backoff", mode="before")
    @classmethod
    def _span(cls, value: Any, info) -> Any:
        return _span_field(value, info.field_name)

    def policy_dict(self) -> dict:
        return {"lead_time_s": self.lead_time, "max_restarts": self.max_restarts,
                "restart_backoff_s": self.restart_backoff}


class Profile(_Section):
    """One deployment."""

    name: str = Field(..., description="Profile name (file name without .yaml by convention).")
    description: str = Field("", description="One line shown in lists.")
    extends: str | None = Field(None, description="Name or path of a profile this one overrides.")
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)
    env: EnvSpec = Field(default_factory=EnvSpec)
    model: ModelSpec
    vllm: VllmSpec
    server: ServerSpec = Field(default_factory=ServerSpec)
    ray: RaySpec = Field(default_factory=RaySpec)
    workdir: str = Field("~/r1console", description="Directory on the cluster for scripts, logs and keys.")
    replicas: int = Field(1, ge=1, le=64, description="Jobs of one deployment behind one endpoint (submit --replicas).")
    relay: RelaySpec | None = Field(None, description="Relay past the walltime: {lead_time: 45m, max_restarts, "
                                    "restart_backoff}.")
    idle_stop: float | None = Field(None, description="Cancel the deployment after this long unused, e.g. 2h.")

    @field_validator("idle_stop", mode="before")
    @classmethod
    def _idle_span(cls, value: Any) -> Any:
        return _span_field(value, "idle_stop")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROFILE_NAME.match(value):
            raise ValueError(f"name {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("workdir")
    @classmethod
    def _check_workdir(cls, value: str) -> str:
        if not value or any(ch in value for ch in "\n\r\0"):
            raise ValueError("workdir must be a non-empty path without newlines")
        return value

    # ---- derived values -------------------------------------------------------------------
    @property
    def total_gpus(self) -> int:
        return self.slurm.nodes * self.slurm.gpus_per_node

    @property
    def tensor_parallel_size(self) -> int:
        if self.vllm.tensor_parallel_size:
            return self.vllm.tensor_parallel_size
        return max(1, self.total_gpus // self.vllm.pipeline_parallel_size)

    @property
    def backend(self) -> str:
        if self.vllm.distributed_executor_backend:
            return self.vllm.distributed_executor_backend
        return "ray" if self.slurm.nodes > 1 else "mp"

    @property
    def served_model_name(self) -> str:
        return self.model.served_name or self.model.path

