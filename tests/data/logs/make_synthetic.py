#!/usr/bin/env python3
"""Write the synthetic per-version log fixtures under tests/data/logs/.

    python tests/data/logs/make_synthetic.py          # rewrites the synthetic fixtures

Formats follow docs/facts.md §2 (every line format with its vLLM source
location). Real captures live beside them (0.32-cpu/, slurm/, multinode/): those are copied
verbatim, never generated. Each directory is one job: its .out and .err as SLURM writes them
(vLLM's logger -> stdout -> .out; tqdm bars, uvicorn's startup lines, tracebacks and
slurmstepd -> stderr -> .err). Expected results: EXPECTED.json.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
CYAN, RESET = "\x1b[1;36m", "\x1b[0;0m"  # vLLM 0.10-0.24 decorate_logs()
RAY_CYAN, RAY_RESET = "\x1b[36m", "\x1b[0m"  # Ray's worker prefix colour


# ---- line builders ------------------------------------------------------------------------------
def v07(level: str, ts: str, where: str, msg: str) -> str:
    """0.7.x: `%(levelname)s %(asctime)s %(filename)s:%(lineno)d] %(message)s`."""
    return f"{level} {ts} {where}] {msg}\n"


def v08(level: str, ts: str, where: str, msg: str) -> str:
    """0.8-0.10+: `%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s`."""
    return f"{level} {ts} [{where}] {msg}\n"


def ansi(proc: str, line: str) -> str:
    """0.10-0.24 decorate_logs(): cyan `(name pid=N)` prefix, even into files."""
    return f"{CYAN}({proc}){RESET} {line}"


def plain(proc: str, line: str) -> str:
    """0.18+ without a tty, and 0.33's own `(%(vllm_process_name)s pid=%(process)d)`."""
    return f"({proc}) {line}"


def ray(prefix: str, line: str) -> str:
    """Ray forwards a worker's line with its own coloured prefix."""
    return f"{RAY_CYAN}({prefix}){RAY_RESET} {line}"


def interval(seconds: float) -> str:
    s = int(seconds)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def bar(desc: str, n: int, total: int, s_per_it: float, *, completed: bool = True) -> str:
    """vLLM's _BAR_FORMAT (0.7.3-0.33): `{desc}: {percentage:3.0f}% Completed | {n}/{total}
    [{elapsed}<{remaining}, {rate_fmt}]\\n`, written after tqdm's `\\r`."""
    pct = f"{100 * n / total:3.0f}%"
    mid = f"{pct} Completed | " if completed else f"{pct} "
    if n == 0:
        return f"\r{desc}: {mid}{n}/{total} [00:00<?, ?it/s]\n"
    elapsed = n * s_per_it
    remaining = (total - n) * s_per_it
    rate = f"{s_per_it:5.2f}s/it" if s_per_it >= 1 else f"{1 / s_per_it:5.2f}it/s"
    return f"\r{desc}: {mid}{n}/{total} [{interval(elapsed)}<{interval(remaining)}, {rate}]\n"


def bars(desc: str, upto: int, total: int, s_per_it: float, prefix: str = "", **kw) -> str:
    return "".join(prefix + bar(desc, n, total, s_per_it, **kw) for n in range(upto + 1))


def access(n: int, code: int = 200, path: str = "/v1/chat/completions") -> str:
    return "".join(f'INFO:     10.0.0.{n % 200 + 1}:{40000 + n} - "POST {path} HTTP/1.1" {code} OK\n'
                   for n in range(n))


UVICORN_START = ("INFO:     Started server process [51234]\n"
                 "INFO:     Waiting for application startup.\n"
                 "INFO:     Application startup complete.\n")

SEED_HEAD = ("Head node: holygpu8a11301\n"
             "Head node IP: 10.31.0.11\n"
             "Head port: 17136\n"
             "Starting Ray head on holygpu8a11301\n"
             "Starting Ray worker on holygpu8a11302\n"
             "Starting Ray worker on holygpu8a11303\n"
             "Starting Ray worker on holygpu8a11304\n")

R1 = "/n/holylfs06/LABS/kempner_shared/Everyone/testbed/models/DeepSeek-R1"


def write(rel: str, name: str, text: str) -> None:
    d = HERE / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(text.encode("utf-8"))


# ---- 0.7.3: V0 engine, no Ray ------------------------------------------------------------------
def v073() -> None:
    out = "".join([
        v07("INFO", "06-03 21:30:01", "api_server.py:840", "vLLM API server version 0.7.3"),
        v07("INFO", "06-03 21:30:01", "api_server.py:841", f"args: Namespace(model='{R1}', tensor_parallel_size=8)"),
        v07("INFO", "06-03 21:30:09", "config.py:542", "This model supports multiple tasks: {'generate'}. Defaulting to 'generate'."),
        v07("INFO", "06-03 21:30:09", "llm_engine.py:234",
            f"Initializing an LLM engine (v0.7.3) with config: model='{R1}', speculative_config=None, "
            "tokenizer_mode=auto, trust_remote_code=True, dtype=torch.bfloat16, max_seq_len=163840, "
            "tensor_parallel_size=8, pipeline_parallel_size=1, quantization=fp8, enforce_eager=False"),
        v07("WARNING", "06-03 21:30:10", "multiproc_worker_utils.py:300", "Reducing Torch parallelism from 96 threads to 1 to avoid unnecessary CPU contention."),
        v07("INFO", "06-03 21:30:15", "cuda.py:161", "Using Triton MLA backend."),
        v07("INFO", "06-03 21:30:20", "model_runner.py:1110", f"Starting to load model {R1}..."),
        v07("INFO", "06-03 21:30:20", "weight_utils.py:252", "Using model weights format ['*.safetensors']"),
    ])
    head = out
    out += "".join([
        v07("INFO", "06-03 21:49:40", "model_runner.py:1115", "Loading model weights took 78.3012 GB"),
        v07("INFO", "06-03 21:49:41", "model_runner.py:1117", "Model loading took 78.3012 GiB and 1160.52 seconds"),
        v07("INFO", "06-03 21:50:20", "worker.py:267", "Memory profiling takes 38.61 seconds"),
        v07("INFO", "06-03 21:50:21", "executor_base.py:111", "# cuda blocks: 2783, # CPU blocks: 1024"),
        v07("INFO", "06-03 21:50:21", "executor_base.py:116", "Maximum concurrency for 163840 tokens per request: 1.09x"),
        v07("INFO", "06-03 21:50:25", "model_runner.py:1434", "Capturing cudagraphs for decoding. This may lead to unexpected consequences if the model is not static. To run the model in eager mode, set 'enforce_eager=True' or use '--enforce-eager' in the CLI."),
        v07("INFO", "06-03 21:51:00", "model_runner.py:1562", "Graph capturing finished in 35 secs, took 2.10 GiB"),
        v07("INFO", "06-03 21:51:00", "llm_engine.py:431", "init engine (profile, create kv cache, warmup model) took 79.44 seconds"),
        v07("INFO", "06-03 21:51:02", "api_server.py:756", "Using supplied chat template:"),
        v07("INFO", "06-03 21:51:02", "launcher.py:21", "Available routes are:"),
        v07("INFO", "06-03 21:51:02", "launcher.py:29", "Route: /health, Methods: GET"),
        v07("INFO", "06-03 21:51:02", "api_server.py:958", "Starting vLLM API server on http://0.0.0.0:8000"),
        access(30),
        v07("INFO", "06-03 21:52:12", "metrics.py:455", "Avg prompt throughput: 12.3 tokens/s, Avg generation throughput: 40.2 tokens/s, Running: 3 reqs, Swapped: 0 reqs, Pending: 0 reqs, GPU KV cache usage: 2.1%, CPU KV cache usage: 0.0%."),
        access(12),
    ])
    err = bars("Loading safetensors checkpoint shards", 163, 163, 7.1) + "\n" + UVICORN_START
    write("0.7.3/ready", "job.gpu17.9001.out", out)
    write("0.7.3/ready", "job.gpu17.9001.err", err)

    # CUDA OOM while loading (uncaught traceback on stderr, no log header)
    err_oom = bars("Loading safetensors checkpoint shards", 57, 163, 7.1) + "".join([
        "Traceback (most recent call last):\n",
        '  File "/opt/venv/lib/python3.12/site-packages/vllm/entrypoints/openai/api_server.py", line 991, in <module>\n',
        "    uvloop.run(run_server(args))\n",
        '  File "/opt/venv/lib/python3.12/site-packages/vllm/model_executor/model_loader/loader.py", line 364, in load_model\n',
        "    param.data.copy_(loaded_weight)\n",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.02 GiB is free. Including non-PyTorch memory, this process has 78.07 GiB memory in use.\n",
    ])
    write("0.7.3/loading_oom", "job.gpu17.9002.out", head)
    write("0.7.3/loading_oom", "job.gpu17.9002.err", err_oom)


# ---- 0.8.5.post1 with Ray: the seed's stack ------------------------------------------------------
RAY0 = "RayWorkerWrapper pid=1187"
RAY1 = "RayWorkerWrapper pid=233, ip=10.31.0.12"


def v085_startup(ts_h: str = "21") -> str:
    return "".join([
        SEED_HEAD,
        "2025-06-03 21:40:02,118\tINFO worker.py:1654 -- Connecting to existing Ray cluster at address: 10.31.0.11:17136...\n",
        v08("INFO", f"06-03 {ts_h}:40:05", "api_server.py:1043", "vLLM API server version 0.8.5.post1"),
        v08("INFO", f"06-03 {ts_h}:40:05", "api_server.py:1044", f"args: Namespace(model='{R1}', tensor_parallel_size=16, enforce_eager=True, enable_reasoning=True, reasoning_parser='deepseek_r1', distributed_executor_backend='ray')"),
        v08("INFO", f"06-03 {ts_h}:40:14", "config.py:1770", "Defaulting to use ray for distributed inference"),
        v08("WARNING", f"06-03 {ts_h}:40:14", "arg_utils.py:1658", "Compute Capability < 8.0 is not supported by the V1 Engine. Falling back to V0. Unable to use FlashMLA: this warning is harmless here."),
        v08("INFO", f"06-03 {ts_h}:40:15", "core.py:58", f"Initializing a V1 LLM engine (v0.8.5.post1) with config: model='{R1}', tensor_parallel_size=16, enforce_eager=True"),
        "2025-06-03 21:40:15,402\tINFO worker.py:1841 -- Connected to Ray cluster.\n",
        v08("INFO", f"06-03 {ts_h}:40:15", "ray_utils.py:335", "No current placement group found. Creating a new placement group."),
        v08("INFO", f"06-03 {ts_h}:40:16", "ray_distributed_executor.py:176", "use_ray_spmd_worker: True"),
        ray(RAY0, v08("INFO", f"06-03 {ts_h}:40:30", "cuda.py:207", "Using FlashMLA backend on V1 engine.")),
        ray(RAY1, v08("INFO", f"06-03 {ts_h}:40:30", "cuda.py:156", "Forcing kv cache block size to 64 for FlashMLA backend.")
            .rstrip("\n") + " [repeated 15x across cluster] (Ray deduplicates logs by default. Set RAY_DEDUP_LOGS=0 to disable log deduplication, or see https://docs.ray.io/en/master/ray-observability/user-guides/configure-logging.html#log-deduplication for more options.)\n"),
        ray(RAY1, "holygpu8a11302:233:233 [0] NCCL INFO Bootstrap : Using ib0:10.31.0.12<0>\n"),
        ray(RAY1, "holygpu8a11302:233:233 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB ; OOB ib0:10.31.0.12<0> [repeated 15x across cluster]\n"),
        ray(RAY0, v08("INFO", f"06-03 {ts_h}:40:41", "parallel_state.py:1004", "rank 0 in world size 16 is assigned as DP rank 0, PP rank 0, TP rank 0")),
        ray(RAY0, v08("INFO", f"06-03 {ts_h}:40:41", "gpu_model_runner.py:1329", f"Starting to load model {R1}...")),
        ray(RAY0, v08("INFO", f"06-03 {ts_h}:40:42", "weight_utils.py:265", "Using model weights format ['*.safetensors']")),
    ])


def v085() -> None:
    start = v085_startup()
    prefix = ray(RAY0, "")
    write("0.8.5-ray/loading", "job.holygpu8a11301.4240.out", start)
    write("0.8.5-ray/loading", "job.holygpu8a11301.4240.err",
          "[step 1] srun: warning: can't honor --ntasks-per-node set to 1\n"
          + bars("Loading safetensors checkpoint shards", 57, 163, 6.9, prefix=prefix))

    ready_out = start + "".join([
        ray(RAY0, v08("INFO", "06-03 22:00:01", "loader.py:458", "Loading weights took 1139.22 seconds")),
        ray(RAY0, v08("INFO", "06-03 22:00:02", "gpu_model_runner.py:1347", "Model loading took 40.2291 GiB and 1140.512371 seconds")),
        ray(RAY1, v08("INFO", "06-03 22:00:02", "gpu_model_runner.py:1347", "Model loading took 40.2291 GiB and 1141.003312 seconds [repeated 15x across cluster]")),
        v08("INFO", "06-03 22:00:40", "kv_cache_utils.py:634", "GPU KV cache size: 1,234,560 tokens"),
        v08("INFO", "06-03 22:00:40", "kv_cache_utils.py:637", "Maximum concurrency for 163,840 tokens per request: 7.54x"),
        v08("INFO", "06-03 22:00:41", "core.py:159", "init engine (profile, create kv cache, warmup model) took 39.02 seconds"),
        v08("INFO", "06-03 22:00:41", "core_client.py:439", "Core engine process 0 ready."),
        v08("WARNING", "06-03 22:00:42", "config.py:1177", "Default sampling parameters have been overridden by the model's Hugging Face generation config recommended from the model creator. If this is not intended, please relaunch vLLM instance with `--generation-config vllm`."),
        v08("INFO", "06-03 22:00:42", "serving_chat.py:118", "Using default chat sampling params from model: {'temperature': 0.6, 'top_p': 0.95}"),
        v08("INFO", "06-03 22:00:42", "api_server.py:1090", "Starting vLLM API server on http://0.0.0.0:8000"),
        v08("INFO", "06-03 22:00:42", "launcher.py:28", "Available routes are:"),
        v08("INFO", "06-03 22:00:42", "launcher.py:36", "Route: /health, Methods: GET"),
        v08("INFO", "06-03 22:01:10", "logger.py:39", "Received request chatcmpl-5f1: prompt: '<｜begin▁of▁sentence｜>What are gravitational waves?<｜Assistant｜>', params: SamplingParams(n=1, temperature=0.6, top_p=0.95, max_tokens=163820), prompt_token_ids: None, lora_request: None, prompt_adapter_request: None."),
        v08("INFO", "06-03 22:01:10", "async_llm.py:252", "Added request chatcmpl-5f1."),
        access(40),
        v08("INFO", "06-03 22:01:20", "loggers.py:111", "Engine 000: Avg prompt throughput: 31.0 tokens/s, Avg generation throughput: 402.5 tokens/s, Running: 40 reqs, Waiting: 0 reqs, GPU KV cache usage: 3.2%, Prefix cache hit rate: 0.0%"),
        access(40),
    ])
    ready_err = (bars("Loading safetensors checkpoint shards", 163, 163, 6.9, prefix=prefix)
                 + prefix + "\n" + UVICORN_START)
    write("0.8.5-ray/ready", "job.holygpu8a11301.4241.out", ready_out)
    write("0.8.5-ray/ready", "job.holygpu8a11301.4241.err", ready_err)

    # time limit: SLURM stops a serving job; the teardown errors after it are not the cause
    write("0.8.5-ray/timeout", "job.holygpu8a11301.4242.out", ready_out + "".join([
        v08("ERROR", "06-06 21:40:01", "core.py:400", "EngineCore encountered a fatal error."),
        v08("ERROR", "06-06 21:40:01", "core.py:400", "ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task."),
        v08("ERROR", "06-06 21:40:02", "async_llm.py:399", "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."),
    ]))
    write("0.8.5-ray/timeout", "job.holygpu8a11301.4242.err", ready_err
          + "slurmstepd: error: *** JOB 4242 ON holygpu8a11301 CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n"
          + "slurmstepd: error: *** STEP 4242.0 ON holygpu8a11301 CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n"
          + "INFO:     Shutting down\n")

    # scancel of a serving job
    write("0.8.5-ray/cancelled", "job.holygpu8a11301.4243.out", ready_out + v08(
        "ERROR", "06-04 09:00:03", "async_llm.py:399",
        "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."))
    write("0.8.5-ray/cancelled", "job.holygpu8a11301.4243.err", ready_err
          + "slurmstepd: error: *** JOB 4243 ON holygpu8a11301 CANCELLED AT 2025-06-04T09:00:02 ***\n"
          + "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.\n"
          + "srun: error: holygpu8a11302: task 0: Terminated\n"
          + "INFO:     Shutting down\n")

    # NCCL watchdog during serving, then the Ray actors die
    write("0.8.5-ray/nccl_timeout", "job.holygpu8a11301.4244.out", ready_out + "".join([
        ray(RAY1, "[rank9]:[E603 23:10:00.123456789 ProcessGroupNCCL.cpp:616] [Rank 9] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=48211, OpType=ALLREDUCE, NumelIn=7168, NumelOut=7168, Timeout(ms)=600000) ran for 600081 milliseconds before timing out.\n"),
        ray(RAY1, "[rank9]:[E603 23:10:00.123789012 ProcessGroupNCCL.cpp:1785] [PG ID 2 PG GUID 3 Rank 9] Exception (either an error or timeout) detected by watchdog at work: 48211, last enqueued NCCL work: 48211, last completed NCCL work: 48210.\n"),
        v08("ERROR", "06-03 23:10:05", "core.py:400", "EngineCore encountered a fatal error."),
        v08("ERROR", "06-03 23:10:05", "core.py:400", "ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task."),
        v08("ERROR", "06-03 23:10:06", "async_llm.py:399", "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."),
        'INFO:     10.0.0.7:41234 - "POST /v1/chat/completions HTTP/1.1" 500 Internal Server Error\n',
    ]))
    write("0.8.5-ray/nccl_timeout", "job.holygpu8a11301.4244.err", ready_err + "INFO:     Shutting down\n")

    # Ray cannot place the GPU workers (a node did not join)
    write("0.8.5-ray/placement_wait", "job.holygpu8a11301.4245.out", "".join([
        SEED_HEAD,
        v08("INFO", "06-03 21:40:05", "api_server.py:1043", "vLLM API server version 0.8.5.post1"),
        v08("INFO", "06-03 21:40:15", "core.py:58", f"Initializing a V1 LLM engine (v0.8.5.post1) with config: model='{R1}', tensor_parallel_size=16"),
        v08("INFO", "06-03 21:40:15", "ray_utils.py:335", "No current placement group found. Creating a new placement group."),
        v08("INFO", "06-03 21:40:25", "ray_utils.py:216", "Waiting for creating a placement group of specs for 10 seconds. specs=[{'GPU': 1.0, 'node:10.31.0.11': 0.001}, {'GPU': 1.0}, {'GPU': 1.0}]. Check `ray status` and `ray list nodes` to see if you have enough resources, and make sure the IP addresses used by ray cluster are the same as VLLM_HOST_IP environment variable specified in each node if you are running on a multi-node."),
        v08("INFO", "06-03 21:40:45", "ray_utils.py:216", "Waiting for creating a placement group of specs for 30 seconds. specs=[{'GPU': 1.0, 'node:10.31.0.11': 0.001}, {'GPU': 1.0}, {'GPU': 1.0}]. Check `ray status` and `ray list nodes` to see if you have enough resources."),
        v08("INFO", "06-03 21:41:45", "ray_utils.py:216", "Waiting for creating a placement group of specs for 90 seconds. specs=[{'GPU': 1.0, 'node:10.31.0.11': 0.001}, {'GPU': 1.0}, {'GPU': 1.0}]. Check `ray status` and `ray list nodes` to see if you have enough resources."),
    ]))
    write("0.8.5-ray/placement_wait", "job.holygpu8a11301.4245.err", "")

    # no room for the KV cache (V1 engine start-up)
    write("0.8.5-ray/kv_no_memory", "job.holygpu8a11301.4246.out", start + "".join([
        ray(RAY0, v08("INFO", "06-03 22:00:02", "gpu_model_runner.py:1347", "Model loading took 78.1021 GiB and 1140.512371 seconds")),
        v08("ERROR", "06-03 22:00:30", "core.py:396", "EngineCore failed to start."),
        v08("ERROR", "06-03 22:00:30", "core.py:396", "Traceback (most recent call last):"),
        v08("ERROR", "06-03 22:00:30", "core.py:396", '  File "/opt/venv/lib/python3.12/site-packages/vllm/v1/core/kv_cache_utils.py", line 527, in check_enough_kv_cache_memory'),
        v08("ERROR", "06-03 22:00:30", "core.py:396", "    raise ValueError(\"No available memory for the cache blocks. \""),
        v08("ERROR", "06-03 22:00:30", "core.py:396", "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine."),
    ]))
    write("0.8.5-ray/kv_no_memory", "job.holygpu8a11301.4246.err",
          bars("Loading safetensors checkpoint shards", 163, 163, 6.9, prefix=prefix)
          + "RuntimeError: Engine core initialization failed. See root cause above.\n")


# ---- 0.11.2: ANSI process prefixes, Ray inside EngineCore_DP0 ----------------------------------------
API = "APIServer pid=4111"
ENG = "EngineCore_DP0 pid=4300"


def v011() -> None:
    start = "".join([
        ansi(API, v08("INFO", "03-04 10:00:01", "api_server.py:1839", "vLLM API server version 0.11.2")),
        ansi(API, v08("INFO", "03-04 10:00:01", "utils.py:253", f"non-default args: {{'model': '{R1}', 'tensor_parallel_size': 8, 'reasoning_parser': 'deepseek_r1'}}")),
        ansi(API, v08("INFO", "03-04 10:00:09", "model.py:631", "Resolved architecture: DeepseekV3ForCausalLM")),
        ansi(ENG, v08("INFO", "03-04 10:00:14", "core.py:93", f"Initializing a V1 LLM engine (v0.11.2) with config: model='{R1}', tensor_parallel_size=8")),
        ansi(ENG, "2026-03-04 10:00:15,002\tINFO worker.py:1833 -- Connecting to existing Ray cluster at address: 10.31.0.11:17136...\n"),
        ansi(ENG, "2026-03-04 10:00:15,018\tINFO worker.py:2013 -- Connected to Ray cluster.\n"),
        ansi(ENG, ray("RayWorkerWrapper pid=927", v08("INFO", "03-04 10:00:30", "gpu_model_runner.py:2843", f"Starting to load model {R1}..."))),
        ansi(ENG, ray("RayWorkerWrapper pid=233, ip=10.31.0.12", v08("WARNING", "03-04 10:00:30", "compilation.py:874", "Op 'quant_fp8' not present in model, enabling with '+quant_fp8' has no effect"))),
    ])
    out = start + "".join([
        ansi(ENG, ray("RayWorkerWrapper pid=927", v08("INFO", "03-04 10:16:12", "default_loader.py:314", "Loading weights took 951.20 seconds"))),
        ansi(ENG, ray("RayWorkerWrapper pid=927", v08("INFO", "03-04 10:16:13", "gpu_model_runner.py:2904", "Model loading took 78.1021 GiB memory and 952.301022 seconds"))),
        ansi(ENG, v08("INFO", "03-04 10:17:00", "gpu_worker.py:298", "Available KV cache memory: 28.27 GiB")),
        ansi(ENG, v08("INFO", "03-04 10:17:00", "kv_cache_utils.py:1087", "GPU KV cache size: 431,936 tokens")),
        ansi(ENG, v08("INFO", "03-04 10:17:00", "kv_cache_utils.py:1091", "Maximum concurrency for 163,840 tokens per request: 2.64x")),
        ansi(ENG, v08("INFO", "03-04 10:17:31", "gpu_model_runner.py:3540", "Graph capturing finished in 31 secs, took 1.95 GiB")),
        ansi(ENG, v08("INFO", "03-04 10:17:31", "core.py:210", "init engine (profile, create kv cache, warmup model) took 78.12 seconds")),
        ansi(API, v08("INFO", "03-04 10:17:35", "api_server.py:2053", "Starting vLLM API server 0 on http://0.0.0.0:8000")),
        ansi(API, v08("INFO", "03-04 10:17:35", "launcher.py:42", "Route: /health, Methods: GET")),
        access(20),
        ansi(API, v08("INFO", "03-04 10:18:00", "loggers.py:127", "Engine 000: Avg prompt throughput: 20.1 tokens/s, Avg generation throughput: 310.0 tokens/s, Running: 20 reqs, Waiting: 0 reqs, GPU KV cache usage: 4.0%, Prefix cache hit rate: 12.5%")),
    ])
    graphs = "".join(f"\rCapturing CUDA graphs (mixed prefill-decode, PIECEWISE): {100 * n // 67:3d}%|{'#' * (n * 10 // 67):<10}| {n}/67 [00:{n // 3:02d}<00:{(67 - n) // 3:02d},  3.10it/s]"
                     for n in range(0, 68, 11)) + "\n"
    err = (ansi(ENG, ray("RayWorkerWrapper pid=927", ""))
           + bars("Loading safetensors checkpoint shards", 163, 163, 5.8)
           + ansi(ENG, "") + graphs + UVICORN_START)
    write("0.11-ansi/ready", "job.holygpu8a11301.5001.out", out)
    write("0.11-ansi/ready", "job.holygpu8a11301.5001.err", err)

    # max_model_len does not fit in the KV cache (V1 wording with the "models's" typo)
    write("0.11-ansi/max_seq_len", "job.holygpu8a11301.5002.out", start + "".join([
        ansi(ENG, ray("RayWorkerWrapper pid=927", v08("INFO", "03-04 10:16:13", "gpu_model_runner.py:2904", "Model loading took 78.1021 GiB memory and 952.301022 seconds"))),
        ansi(ENG, v08("INFO", "03-04 10:17:00", "gpu_worker.py:298", "Available KV cache memory: 4.20 GiB")),
        ansi(ENG, v08("ERROR", "03-04 10:17:01", "core.py:708", "EngineCore failed to start.")),
        ansi(ENG, v08("ERROR", "03-04 10:17:01", "core.py:708", "Traceback (most recent call last):")),
        ansi(ENG, v08("ERROR", "03-04 10:17:01", "core.py:708", "ValueError: To serve at least one request with the models's max seq len (163840), (10.72 GiB KV cache is needed, which is larger than the available KV cache memory (4.20 GiB). Based on the available memory, the estimated maximum model length is 64128. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.")),
    ]))
    write("0.11-ansi/max_seq_len", "job.holygpu8a11301.5002.err",
          bars("Loading safetensors checkpoint shards", 163, 163, 5.8)
          + "Traceback (most recent call last):\n"
          + '  File "/opt/venv/lib/python3.12/site-packages/vllm/v1/engine/utils.py", line 965, in wait_for_engine_startup\n'
          + "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n")

    # the seed's --enable-reasoning on a vLLM that removed it
    write("0.11-ansi/bad_flag", "job.holygpu8a11301.5003.out", SEED_HEAD)
    write("0.11-ansi/bad_flag", "job.holygpu8a11301.5003.err", "".join([
        "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...\n",
        "vllm: error: unrecognized arguments: --enable-reasoning\n",
    ]))


# ---- 0.18: no colours, "Starting vLLM server on" ------------------------------------------------------
def v018() -> None:
    api, eng, wk = "APIServer pid=7001", "EngineCore_DP0 pid=7100", "Worker_TP0 pid=7200"
    start = "".join([
        plain(api, v08("INFO", "04-20 08:00:01", "api_server.py:1951", "vLLM API server version 0.18.0")),
        plain(eng, v08("INFO", "04-20 08:00:10", "core.py:95", f"Initializing a V1 LLM engine (v0.18.0) with config: model='{R1}', tensor_parallel_size=8")),
        plain(wk, v08("INFO", "04-20 08:00:20", "gpu_model_runner.py:3011", f"Starting to load model {R1}...")),
    ])
    out = start + "".join([
        plain(wk, v08("INFO", "04-20 08:14:02", "default_loader.py:320", "Loading weights took 821.42 seconds")),
        plain(wk, v08("INFO", "04-20 08:14:03", "gpu_model_runner.py:3100", "Model loading took 78.10 GiB memory and 822.921 seconds")),
        plain(eng, v08("INFO", "04-20 08:14:40", "kv_cache_utils.py:1120", "GPU KV cache size: 452,352 tokens")),
        plain(eng, v08("INFO", "04-20 08:14:40", "kv_cache_utils.py:1124", "Maximum concurrency for 163,840 tokens per request: 2.76x")),
        plain(eng, v08("INFO", "04-20 08:15:05", "core.py:230", "init engine (profile, create kv cache, warmup model) took 61.90 seconds")),
        plain(api, v08("INFO", "04-20 08:15:08", "api_server.py:580", "Starting vLLM server on http://0.0.0.0:8000")),
        access(10),
    ])
    write("0.18/ready", "job.gpu-h200-03.6001.out", out)
    write("0.18/ready", "job.gpu-h200-03.6001.err",
          bars("Loading safetensors checkpoint shards", 163, 163, 5.0) + UVICORN_START)

    # port 8000 taken on the head node
    write("0.18/address_in_use", "job.gpu-h200-03.6002.out", start + "".join([
        plain(wk, v08("INFO", "04-20 08:14:03", "gpu_model_runner.py:3100", "Model loading took 78.10 GiB memory and 822.921 seconds")),
        plain(api, v08("ERROR", "04-20 08:15:08", "api_server.py:600", "OSError: [Errno 98] Address already in use")),
    ]))
    write("0.18/address_in_use", "job.gpu-h200-03.6002.err",
          bars("Loading safetensors checkpoint shards", 163, 163, 5.0)
          + "Traceback (most recent call last):\n    sock.bind(addr)\nOSError: [Errno 98] Address already in use\n")


# ---- 0.33: `(name pid=N)` from the logger format itself, new wordings ----------------------------------
def v033() -> None:
    api, eng, wk = "APIServer pid=9001", "EngineCore pid=9100", "Worker_TP0 pid=9200"
    start = "".join([
        plain(api, v08("INFO", "11-02 14:00:01", "entrypoints/common/startup.py:18", f"vLLM server version 0.33.0, serving model {R1}")),
        plain(eng, v08("INFO", "11-02 14:00:11", "v1/engine/core.py:133", f"Initializing a V1 LLM engine (v0.33.0) with config: model='{R1}', tensor_parallel_size=8")),
        plain(wk, v08("INFO", "11-02 14:00:20", "v1/worker/gpu_model_runner.py:4020", f"Starting to load model {R1}...")),
    ])
    out = start + "".join([
        plain(wk, v08("INFO", "11-02 14:12:40", "model_loader/default_loader.py:501", "Loading weights took 738.11 seconds")),
        plain(wk, v08("INFO", "11-02 14:12:41", "v1/worker/gpu_model_runner.py:4080", "Model loading took 78.1 GiB memory and 740.5 seconds")),
        plain(eng, v08("INFO", "11-02 14:13:20", "v1/core/kv_cache_utils.py:1145", "GPU KV cache size: 1,021,248 tokens, Maximum concurrency for 163,840 tokens per request: 6.23x")),
        plain(eng, v08("INFO", "11-02 14:13:21", "v1/engine/core.py:402", "init engine (profile, create kv cache, warmup model) took 39.90 s")),
        plain(api, v08("INFO", "11-02 14:13:25", "entrypoints/launchers/api_server/entry.py:139", "Starting vLLM server on http://0.0.0.0:8000")),
        access(10),
    ])
    write("0.33/ready", "job.gpu-b200-01.7001.out", out)
    write("0.33/ready", "job.gpu-b200-01.7001.err",
          bars("Loading safetensors checkpoint shards (eager)", 163, 163, 4.5) + UVICORN_START)

    write("0.33/multithread_loading", "job.gpu-b200-01.7002.out", start)
    write("0.33/multithread_loading", "job.gpu-b200-01.7002.err",
          bars("Multi-thread loading shards", 65, 163, 3.0))

    write("0.33/runai_loading", "job.gpu-b200-01.7003.out", start)
    write("0.33/runai_loading", "job.gpu-b200-01.7003.err",
          bars("Loading safetensors using Runai Model Streamer", 40, 163, 2.0))

    # NCCL failure while serving
    write("0.33/nccl_error", "job.gpu-b200-01.7004.out", out + "".join([
        plain(wk, v08("ERROR", "11-02 15:01:00", "v1/executor/multiproc_executor.py:1063", "torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/NCCLUtils.cpp:77, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.28.9")),
        plain(eng, v08("ERROR", "11-02 15:01:00", "v1/engine/core.py:1512", "EngineCore encountered a fatal error.")),
        plain(api, v08("ERROR", "11-02 15:01:01", "v1/engine/async_llm.py:906", "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.")),
    ]))
    write("0.33/nccl_error", "job.gpu-b200-01.7004.err",
          bars("Loading safetensors checkpoint shards (eager)", 163, 163, 4.5) + UVICORN_START)


# ---- a healthy log full of harmless warnings ----------------------------------------------------
def harmless() -> None:
    out = v085_startup() + "".join([
        v08("WARNING", "06-03 21:40:16", "utils.py:2382", "Unable to detect the number of NUMA nodes; error: /sys/devices/system/node not readable. Falling back to 1."),
        v08("WARNING", "06-03 21:40:16", "system_utils.py:255", "Found ulimit of 4096 and failed to automatically increase with error current limit exceeds maximum limit. This can cause fd limit errors like `OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n"),
        v08("WARNING", "06-03 21:40:17", "config.py:3655", "Your GPU may run out of memory with these settings: CUDA out of memory errors are possible if gpu_memory_utilization is close to 1."),
        v08("WARNING", "06-03 21:40:17", "ray_utils.py:190", "error: the Ray dashboard is not reachable; unable to fetch cluster metrics. This does not affect serving."),
        ray(RAY1, "holygpu8a11302:233:233 [0] init.cc:140 NCCL WARN NUMA auto balancing enabled which can lead to variability in the performance! Disable by \"sudo sysctl kernel.numa_balancing=0\"\n"),
        "(raylet) WARNING: 8 PYTHON worker processes have been started on node: 3d2c with address: 10.31.0.11. This could be a result of using a large number of actors.\n",
        "[W603 21:41:00.414267708 utils.cpp:68] Warning: NUMA binding failed; error: EPERM (function init_cpu_memory_env)\n",
        "/opt/venv/lib/python3.12/site-packages/torch/cuda/__init__.py:716: UserWarning: Can't initialize NVML; errors are ignored\n",
        "  warnings.warn(\"Can't initialize NVML\")\n",
        v08("INFO", "06-03 21:45:05", "shm_broadcast.py:466", "No available shared memory broadcast block found in 60 second. This typically happens when some processes are hanging or doing some time-consuming work (e.g. compilation)"),
        ray(RAY0, v08("INFO", "06-03 22:00:02", "gpu_model_runner.py:1347", "Model loading took 40.2291 GiB and 1140.512371 seconds")),
        v08("INFO", "06-03 22:00:40", "kv_cache_utils.py:634", "GPU KV cache size: 1,234,560 tokens"),
        v08("INFO", "06-03 22:00:40", "kv_cache_utils.py:637", "Maximum concurrency for 163,840 tokens per request: 7.54x"),
        v08("INFO", "06-03 22:00:42", "api_server.py:1090", "Starting vLLM API server on http://0.0.0.0:8000"),
        v08("INFO", "06-03 22:01:10", "logger.py:39", "Received request chatcmpl-9a: prompt: 'My server prints OSError: [Errno 98] Address already in use and CUDA out of memory, and EngineCore failed to start. Why?', params: SamplingParams(n=1), prompt_token_ids: None."),
        v08("INFO", "06-03 22:01:11", "logger.py:39", "Received request chatcmpl-9b: prompt: '*** JOB 1 ON x CANCELLED AT 2025-06-03T22:00:00 DUE TO TIME LIMIT *** what does that mean?', params: SamplingParams(n=1)."),
        v08("ERROR", "06-03 22:01:12", "serving_chat.py:200", "Error in preprocessing prompt inputs"),
        v08("ERROR", "06-03 22:01:12", "serving_chat.py:201", "ValueError: This model's maximum context length is 163840 tokens. However, you requested 170000 tokens (6000 in the messages, 164000 in the completion). Please reduce the length of the messages or completion."),
        'INFO:     10.0.0.9:51000 - "POST /v1/chat/completions HTTP/1.1" 400 Bad Request\n',
        'INFO:     10.0.0.9:51002 - "GET /v1/models HTTP/1.1" 401 Unauthorized\n',
        access(25),
        v08("WARNING", "06-03 22:05:00", "protocol.py:58", "The following fields were present in the request but ignored: {'reasoning_content'}; error: unknown field."),
        v08("INFO", "06-03 22:05:10", "loggers.py:111", "Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 80.0 tokens/s, Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.4%, Prefix cache hit rate: 0.0%"),
        access(25),
    ])
    err = (bars("Loading safetensors checkpoint shards", 163, 163, 6.9, prefix=ray(RAY0, ""))
           + "WARNING:  Invalid HTTP request received.\n" + UVICORN_START
           + "/opt/venv/lib/python3.12/site-packages/pydantic/main.py:426: UserWarning: Pydantic serializer warnings: unable to serialize; error: expected `str` but got `int`\n")
    write("harmless/ready", "job.holygpu8a11301.4250.out", out)
    write("harmless/ready", "job.holygpu8a11301.4250.err", err)


# ---- our own script's markers --------------------------------------------------------------------
def script() -> None:
    head = ("[r1console] rendered_by=r1console 0.1.0 profile=h200x8\n"
            "[r1console] head_node=node1\n"
            "Head node: node1\n"
            "[r1console] head_ip=10.231.0.11\n"
            "[r1console] port=8000\n"
            "[r1console] ray_waiting nodes=1/2 gpus=4/8\n")
    write("r1console-script/ray_waiting", "job.node1.31.out", head)
    write("r1console-script/ray_waiting", "job.node1.31.err", "")
    write("r1console-script/ray_timeout", "job.node1.32.out",
          head + "[r1console] ray_waiting nodes=1/2 gpus=4/8\n"
          + "[r1console] FATAL ray_timeout only 1/2 nodes and 4/8 GPUs joined within 600 s\n")
    write("r1console-script/ray_timeout", "job.node1.32.err",
          "[2025-06-03 21:41:00,001 E 233 233] gcs_rpc_client.h:179: Failed to connect to GCS at address 10.231.0.11:6379 within 5 seconds.\n")
    write("r1console-script/loading", "job.node1.33.out",
          head + "[r1console] ray_ready nodes=2 gpus=8\n[r1console] vllm_starting\n"
          + v08("INFO", "06-03 21:40:05", "api_server.py:1043", "vLLM API server version 0.8.5.post1"))
    write("r1console-script/loading", "job.node1.33.err",
          bars("Loading safetensors checkpoint shards", 12, 163, 7.5, prefix=ray(RAY0, "")))


def main() -> None:
    os.umask(0o022)
    v073()
    v085()
    v011()
    v018()
    v033()
    harmless()
    script()


if __name__ == "__main__":
    main()
