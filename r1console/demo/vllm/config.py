"""The simulated vLLM server's settings (:class:`SimServerConfig`): what ``vllm serve`` was given, plus
the simulator's clock scale, seed, faults and log streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from r1console.demo.sim_engine import DEFAULT_KV_CACHE_TOKENS, LengthModel
from r1console.demo.sim_versions import DEFAULT_VERSION
from r1console.demo.vllm.faults import Faults


@dataclass
class SimServerConfig:
    host: str = "127.0.0.1"
    port: int = 0                                   # 0: a free port (see SimServer.port)
    vllm_version: str = DEFAULT_VERSION
    model: str = "deepseek-ai/DeepSeek-R1"          # the model path (``root`` in /v1/models)
    served_model_name: str | None = None            # default: the model path, like vLLM
    api_key: str | None = None
    job_id: str = ""                                # answered by /r1c/identity (the job's SLURM_JOB_ID)
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    max_model_len: int = 163_840
    kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS
    block_size: int | None = None                   # default: 64 (FlashMLA) before 0.11, else 16
    prefill_tokens_per_s: float = 8000.0
    time_scale: float = 1.0
    seed: int = 0
    lengths: LengthModel = field(default_factory=LengthModel)
    faults: Faults = field(default_factory=Faults)
    log_stream: TextIO | None = None                # vLLM logger + uvicorn access lines (stdout)
    err_stream: TextIO | None = None                # uvicorn startup lines (stderr)
    stats_interval_s: float = 10.0                  # periodic throughput line (wall seconds)
    max_records: int = 10_000

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model
