"""One simulated SLURM job: what its batch script asks for, what it prints and when, and what its
GPUs show. Pure (no I/O, no clock): ``sim_cluster`` plays the timeline back into real files.

* :func:`parse_script` reads an uploaded batch script the way sbatch and bash would: ``#SBATCH``
  lines up to the first command, then r1console's settings block (``R1C_PROFILE=…``,
  ``VLLM_ARGS=(…)``, every value shell-quoted, so ``shlex`` reads them back exactly).
* :func:`profile_from_script` rebuilds a :class:`~r1console.core.profiles.Profile` from it, so the
  planner and ``sim_logs.StartupSpec.from_profile`` see what the job really runs.
* :func:`build_timeline` is everything the job writes to ``job.%N.%j.out`` / ``.err``, each line
  with its time (simulated seconds after the job started): our script's ``[r1console]`` markers
  and ``Head node:`` line, ``ray start`` output of the head and every worker (Ray's CLI format),
  vLLM's startup for its version (``sim_logs.startup_log_lines``: Ray ``(RayWorkerWrapper pid=…,
  ip=…)`` prefixes, tqdm ``\\r…\\n`` bars for every shard, uvicorn lines), and, with a fault, the
  failure as a real job prints it (CUDA OOM traceback while loading; NCCL watchdog timeout).
* :class:`GpuModel` is every GPU's memory / utilisation / power over the job's phases: memory rises
  with the shards loaded and settles at the planner's weights + KV cache (+ CUDA context).

Formats: docs/facts.md §2 (vLLM, tqdm, uvicorn, Ray, NCCL, slurmstepd) and SLURM 22.05 captures
(single- and multi-node runs; some are kept in tests/data/slurm).

The code lives in ``r1console.demo.slurm.job`` (script, context, timeline, faults, gpu, hostlist); this module
re-exports its public names.
"""

from __future__ import annotations

from r1console.demo.slurm.job.context import Entry, JobContext, Phases, oom_rank
from r1console.demo.slurm.job.faults import stepd_line, uvicorn_shutdown_lines
from r1console.demo.slurm.job.gpu import GpuModel, gpu_uuid
from r1console.demo.slurm.job.hostlist import compress_hostlist
from r1console.demo.slurm.job.script import (
    JobScript,
    ScriptError,
    parse_mem_mb,
    parse_sbatch_args,
    parse_script,
    profile_from_script,
)
from r1console.demo.slurm.job.timeline import build_timeline

FAULTS = ("oom", "nccl", "ray_node_lost")  # ray_node_lost: the last node's Ray step dies mid-serve

__all__ = ["Entry", "FAULTS", "GpuModel", "JobContext", "JobScript", "Phases", "ScriptError", "build_timeline",
           "compress_hostlist", "gpu_uuid", "oom_rank", "parse_mem_mb", "parse_sbatch_args", "parse_script",
           "profile_from_script", "stepd_line", "uvicorn_shutdown_lines"]
