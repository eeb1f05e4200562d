"""The failures of a simulated job as a real job prints them (CUDA OOM traceback while loading, NCCL
watchdog timeout, a node's Ray step killed), and SLURM's own lines (slurmstepd, uvicorn's shutdown).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

from r1console.demo.sim_logs import VllmLogFormat
from r1console.demo.slurm.job.context import SITE, JobContext, _Builder, _iso, _worker_prefix, oom_rank

if TYPE_CHECKING:
    from r1console.demo.slurm.job.gpu import GpuModel


# ---- faults ------------------------------------------------------------------------------------
def _ray_node_lost_lines(b: _Builder, ctx: JobContext, t: float) -> float:
    """The last node's Ray step killed while vLLM runs, as the 2-node test cluster printed it
    (tests/data/ray-2node/worker-step-killed): srun reports the step, the script's step check stops the
    job with a marker naming the node, SLURM tears the other steps down."""
    node, step, head = ctx.nodes[-1], len(ctx.nodes) - 1, ctx.nodes[0]
    b.err(t, f"srun: error: {node}: task 0: Killed")
    b.err(t, f"srun: Force Terminated StepId={ctx.job_id}.{step}")
    t += 0.8  # the script looks at its steps every second
    marker = (f"[r1console] FATAL ray_step_died node={node} the 'ray start' step on {node} exited; "
              "see its error above (is ray installed there?)")
    b.out(t, marker)
    b.err(t, marker)
    b.err(t, "srun: forcing job termination")
    b.err(t, "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.")
    t += 0.5
    b.err(t, f"slurmstepd-{head}: error: *** STEP {ctx.job_id}.0 ON {head} FAILED (non-zero exit code or "
             "other failure mode) ***")
    b.err(t, f"srun: error: {head}: task 0: Killed")
    return t + 0.2


def _block(b: _Builder, t: float, fmt: VllmLogFormat, fileinfo: str, text: str, *, level: str = "ERROR",
           process: str = "APIServer", ray: str | None = None, pid: int | None = None) -> None:
    """A multi-line log record: vLLM's NewLineFormatter repeats the header on every line."""
    when = b.at(t)
    for part in text.split("\n"):
        b.out(t, fmt.line(when, fileinfo, part, level=level, process=process, ray=ray, pid=pid))


def _engine_process(fmt: VllmLogFormat) -> str:
    return "EngineCore_DP0" if fmt.v >= (0, 10, 0) else "EngineCore"


def _engine_failed(b: _Builder, t: float, fmt: VllmLogFormat, cause: str, *, ray: bool = True) -> None:
    """EngineCore's ``EngineCore failed to start.`` record and the API server's RuntimeError (stderr)."""
    v = fmt.v
    proc = _engine_process(fmt)
    core = "core.py:396" if v < (0, 11, 0) else "core.py:708"
    tb = "\n".join([
        "EngineCore failed to start.",
        "Traceback (most recent call last):",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 387, in run_engine_core',
        "    engine_core = EngineCoreProc(*args, **kwargs)",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 329, in __init__',
        "    super().__init__(vllm_config, executor_class, log_stats,",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 64, in __init__',
        "    self.model_executor = executor_class(vllm_config)",
        f'  File "{SITE}/vllm/executor/executor_base.py", line 52, in __init__',
        "    self._init_executor()",
        *([f'  File "{SITE}/vllm/executor/ray_distributed_executor.py", line 114, in _init_executor',
           "    self._init_workers_ray(placement_group)",
           f'  File "{SITE}/vllm/executor/ray_distributed_executor.py", line 522, in _run_workers',
           "    ray_worker_outputs = ray.get(ray_worker_outputs)",
           f'  File "{SITE}/ray/_private/worker.py", line 2822, in get',
           "    values, debugger_breakpoint = worker.get_objects(object_refs, timeout=timeout)",
           f'  File "{SITE}/ray/_private/worker.py", line 930, in get_objects',
           "    raise value.as_instanceof_cause()"] if ray else
          [f'  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 93, in _init_executor',
           "    self.workers = WorkerProc.wait_for_ready(unready_workers)",
           f'  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 422, in wait_for_ready',
           "    raise e from None"]),
        cause,
    ])
    _block(b, t, fmt, core, tb, process=proc)
    # run_engine_core logs, then re-raises: multiprocessing prints the traceback on stderr.
    b.err(t + 0.1, f"Process {'EngineCore_DP0' if v >= (0, 10, 0) else 'EngineCore_0'}:")
    for text in ["Traceback (most recent call last):",
                 '  File "/usr/lib/python3.10/multiprocessing/process.py", line 314, in _bootstrap',
                 "    self.run()",
                 '  File "/usr/lib/python3.10/multiprocessing/process.py", line 108, in run',
                 "    self._target(*self._args, **self._kwargs)",
                 f'  File "{SITE}/vllm/v1/engine/core.py", line 400, in run_engine_core',
                 "    raise e",
                 *tb.split("\n")[2:]]:  # from the first frame after "Traceback ..."
        b.err(t + 0.1, text)
    failed = "Engine core initialization failed. See root cause above."
    if v >= (0, 10, 0):
        failed += " Failed core proc(s): {'EngineCore_DP0': 1}"
    b.err(t + 0.4, "Traceback (most recent call last):")
    for text in (f'  File "{SITE.rsplit("/lib/", 1)[0]}/bin/vllm", line 8, in <module>',
                 "    sys.exit(main())",
                 f'  File "{SITE}/vllm/entrypoints/cli/main.py", line 53, in main',
                 "    args.dispatch_function(args)",
                 f'  File "{SITE}/vllm/entrypoints/cli/serve.py", line 27, in cmd',
                 "    uvloop.run(run_server(args))",
                 f'  File "{SITE}/vllm/v1/engine/core_client.py", line 430, in _wait_for_engine_startup',
                 '    raise RuntimeError("Engine core initialization failed. "',
                 f"RuntimeError: {failed}"):
        b.err(t + 0.4, text)


def _oom_message(ctx: JobContext, model: "GpuModel | None") -> str:
    total_gib = (model.total_mib if model else 143771) / 1024 - 0.6
    used_gib = (model.process_mib_at_oom() if model else 49_900) / 1024
    other_gib = (model.stale_mib if model else 92_800) / 1024
    return (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB. GPU 0 has a total capacity "
            f"of {total_gib:.2f} GiB of which 1.02 GiB is free. Process 48213 has {other_gib:.2f} GiB memory in "
            f"use. Including non-PyTorch memory, this process has {used_gib:.2f} GiB memory in use. Of the "
            f"allocated memory {used_gib - 1.21:.2f} GiB is allocated by PyTorch, and 215.50 MiB is reserved by "
            f"PyTorch but unallocated. If reserved but unallocated memory is large try setting "
            f"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
            f"Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def _oom_lines(b: _Builder, ctx: JobContext, t: float, model: "GpuModel | None") -> float:
    """A rank runs out of GPU memory while loading a shard (another process holds part of that GPU)."""
    fmt = VllmLogFormat(ctx.script.version, ctx.api_pid, ctx.api_pid + 136)
    rank = oom_rank(ctx)
    ray = ctx.script.backend == "ray"
    prefix = _worker_prefix(ctx, rank) if ray else None
    proc = _engine_process(fmt) if not ray else "EngineCore"
    message = _oom_message(ctx, model)
    worker_tb = "\n".join([
        "Error executing method 'load_model'. This might cause deadlock in distributed execution.",
        "Traceback (most recent call last):",
        f'  File "{SITE}/vllm/worker/worker_base.py", line 612, in execute_method',
        "    return run_method(self, method, args, kwargs)",
        f'  File "{SITE}/vllm/utils.py", line 2456, in run_method',
        "    return func(*args, **kwargs)",
        f'  File "{SITE}/vllm/v1/worker/gpu_worker.py", line 162, in load_model',
        "    self.model_runner.load_model()",
        f'  File "{SITE}/vllm/v1/worker/gpu_model_runner.py", line 1332, in load_model',
        "    self.model = get_model(vllm_config=self.vllm_config)",
        f'  File "{SITE}/vllm/model_executor/model_loader/loader.py", line 455, in load_model',
        "    loaded_weights = model.load_weights(",
        f'  File "{SITE}/vllm/model_executor/models/deepseek_v2.py", line 805, in load_weights',
        "    weight_loader(param,",
        f'  File "{SITE}/vllm/model_executor/layers/fused_moe/layer.py", line 718, in weight_loader',
        "    self._load_model_weight_or_group_weight_scale(",
        f'  File "{SITE}/vllm/model_executor/layers/fused_moe/layer.py", line 507, in _load_w13',
        "    expert_data.copy_(loaded_weight)",
        message,
    ])
    _block(b, t, fmt, "worker_base.py:620", worker_tb, process=proc, ray=prefix)
    if ray:
        pid = 927 + rank * 7
        node = rank // max(1, ctx.gpus_per_node)
        cause = ("ray.exceptions.RayTaskError(OutOfMemoryError): ray::RayWorkerWrapper.execute_method() "
                 f"(pid={pid}, ip={ctx.ips[node]}, actor_id=3f1c0e8b2d6a4b1f9a7e5c0d01000000, "
                 "repr=<vllm.executor.ray_utils.RayWorkerWrapper object at 0x7f3c2c1b2e90>)\n"
                 f'  File "{SITE}/vllm/worker/worker_base.py", line 621, in execute_method\n'
                 "    raise e\n" + message)
    else:
        cause = message
    _engine_failed(b, t + 1.2, fmt, cause, ray=ray)
    return t + 2.2


def _nccl_lines(b: _Builder, ctx: JobContext, hang: float) -> float:
    """The first collective of the memory profiling run never completes between the nodes; PyTorch's
    NCCL watchdog aborts every rank after the timeout; Ray reports the dead workers; vLLM gives up."""
    fmt = VllmLogFormat(ctx.script.version, ctx.api_pid, ctx.api_pid + 136)
    ray = ctx.script.backend == "ray"
    t = hang + ctx.nccl_timeout_s
    world = ctx.world
    rank = world - 1
    glog = _nccl_watchdog_lines(rank, b.at(t), int(ctx.nccl_timeout_s * 1000))
    prefix = f"({_worker_prefix(ctx, rank)}) " if ray else ""
    for i, text in enumerate(glog):
        b.err(t + 0.001 * i, prefix + text)
    if ray and world > 1:
        _ray_rank_died(b, ctx, t, fmt, rank, glog[0])
        return t + 3.0
    _engine_failed(b, t + 0.5, fmt, "torch.distributed.DistBackendError: " + glog[0].split("] ", 1)[-1],
                   ray=ray)
    return t + 1.5


def _nccl_watchdog_lines(rank: int, when: _dt.datetime, timeout_ms: int) -> list[str]:
    """What PyTorch's NCCL watchdog prints (glog format) on the rank whose collective timed out."""
    stamp = f"E{when:%m%d %H:%M:%S}.{when.microsecond:06d}123"
    work = (f"WorkNCCL(SeqNum=12, OpType=ALLREDUCE, NumelIn=14680064, NumelOut=14680064, "
            f"Timeout(ms)={timeout_ms}) ran for {timeout_ms + 82} milliseconds before timing out.")
    return [
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:616] [Rank {rank}] Watchdog caught collective operation "
        f"timeout: {work}",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:1785] [PG ID 2 PG GUID 3 Rank {rank}] Exception (either an "
        "error or timeout) detected by watchdog at work: 12, last enqueued NCCL work: 12, last completed NCCL "
        "work: 11.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:630] [Rank {rank}] Some NCCL operations have failed or timed "
        "out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on "
        "corrupted/incomplete data.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:636] [Rank {rank}] To avoid data inconsistency, we are "
        "taking the entire process down.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:1595] [PG ID 2 PG GUID 3 Rank {rank}] Process group "
        f"watchdog thread terminated with exception: [Rank {rank}] Watchdog caught collective operation "
        f"timeout: {work}",
        "terminate called after throwing an instance of 'c10::DistBackendError'",
        f"*** SIGABRT received at time={int(when.timestamp())} on cpu 37 ***",
    ]


def _ray_rank_died(b: _Builder, ctx: JobContext, t: float, fmt: VllmLogFormat, rank: int, first: str) -> None:
    """Under Ray: the other ranks' deduplicated watchdog line, the raylet reporting the dead worker, and the
    engine failing on the dead actor."""
    world = ctx.world
    other = f"({_worker_prefix(ctx, 0)}) "
    b.err(t + 0.4, other + first.replace(f"rank{rank}", "rank0").replace(f"Rank {rank}", "Rank 0")
          + f" [repeated {world - 1}x across cluster] (Ray deduplicates logs by default. Set "
          "RAY_DEDUP_LOGS=0 to disable log deduplication, or see https://docs.ray.io/en/master/"
          "ray-observability/user-guides/configure-logging.html#log-deduplication for more options.)")
    node = rank // max(1, ctx.gpus_per_node)
    ip = ctx.ips[node]
    b.err(t + 1.5, f"(raylet, ip={ip}) A worker died or was killed while executing a task by an unexpected "
                   "system error. To troubleshoot the problem, check the logs for the dead worker. RayTask ID: "
                   "ffffffffffffffff3f1c0e8b2d6a4b1f9a7e5c0d01000000 Worker ID: 9b2f4c1d0e7a Node ID: "
                   f"4d8e2a6c1f3b Worker IP address: {ip} Worker port: 20012 Worker PID: {927 + rank * 7} "
                   "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a "
                   "connection error code 2. End of file. There are some potential root causes. (1) The "
                   "process is killed by SIGKILL by OOM killer due to high memory usage. (2) ray stop --force "
                   "is called. (3) The worker is crashed unexpectedly due to SIGSEGV or other unexpected errors.")
    cause = ("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
             "\tclass_name: RayWorkerWrapper\n"
             "\tactor_id: 3f1c0e8b2d6a4b1f9a7e5c0d01000000\n"
             f"\tpid: {927 + rank * 7}\n"
             f"\tnamespace: 5b6e2c1a-0d3f-4e7b-9a8c-2f1e0d9c8b7a\n"
             f"\tip: {ip}\n"
             "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker "
             "exit detail: Worker unexpectedly exits with a connection error code 2. End of file.")
    _engine_failed(b, t + 2.0, fmt, cause)


# ---- SLURM's own lines --------------------------------------------------------------------------
def stepd_line(host: str, what: str, ident: str, when: _dt.datetime, due: str | None = None) -> str:
    """``slurmstepd-HOST: error: *** JOB 5 ON HOST CANCELLED AT 2026-11-28T11:53:17 ***`` (captures 13, 23, 85)."""
    tail = f" DUE TO {due}" if due else ""
    return f"slurmstepd-{host}: error: *** {what} {ident} ON {host} CANCELLED AT {_iso(when)}{tail} ***"


def uvicorn_shutdown_lines(pid: int) -> list[str]:
    return ["INFO:     Shutting down", "INFO:     Waiting for application shutdown.",
            "INFO:     Application shutdown complete.", f"INFO:     Finished server process [{pid}]"]
