"""`vllm serve` arguments that are correct for the vLLM version a profile names.

Flag history (docs/facts.md §2.7, §4.4):
  --enable-reasoning        0.7.x-0.8.x: needed with --reasoning-parser; 0.9.x: deprecated (the parser alone
                            enables reasoning); removed in 0.10 (the seed's command no longer parses there).
  --reasoning-parser        from 0.7 (deepseek_r1 unchanged through 0.33).
  --enable-expert-parallel  from 0.8.
The API key is never an argument (it would show in `ps` and in the job's command line): the script
exports VLLM_API_KEY from a 0600 file, which every vLLM version reads.
"""

from __future__ import annotations

from r1console.core.profiles import Profile
from r1console.core.versions import parse_version

ENABLE_REASONING_UNTIL = (0, 9, 0)  # rendered only below this version
REASONING_PARSER_FROM = (0, 7, 0)
EXPERT_PARALLEL_FROM = (0, 8, 0)


def serve_args(profile: Profile) -> list[str]:
    """Arguments after ``vllm serve MODEL`` (the model path is passed separately)."""
    v, version = profile.vllm, parse_version(profile.vllm.version)
    args: list[str] = []
    if profile.model.served_name:
        args += ["--served-model-name", profile.model.served_name]
    args += ["--host", profile.server.host, "--port", str(profile.server.port)]
    args += ["--tensor-parallel-size", str(profile.tensor_parallel_size)]
    if v.pipeline_parallel_size > 1:
        args += ["--pipeline-parallel-size", str(v.pipeline_parallel_size)]
    if v.max_num_seqs is not None:
        args += ["--max-num-seqs", str(v.max_num_seqs)]
    if v.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(v.max_num_batched_tokens)]
    args += ["--gpu-memory-utilization", f"{v.gpu_memory_utilization:g}"]
    if v.max_model_len is not None:
        args += ["--max-model-len", str(v.max_model_len)]
    if v.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", v.kv_cache_dtype]
    if profile.model.trust_remote_code:
        args.append("--trust-remote-code")
    if v.reasoning_parser and version >= REASONING_PARSER_FROM:
        if version < ENABLE_REASONING_UNTIL:
            args.append("--enable-reasoning")
        args += ["--reasoning-parser", v.reasoning_parser]
    if v.enforce_eager:
        args.append("--enforce-eager")
    if v.enable_expert_parallel and version >= EXPERT_PARALLEL_FROM:
        args.append("--enable-expert-parallel")
    args += ["--distributed-executor-backend", profile.backend]
    args += list(v.extra_args)
    return args
