"""The log parser: every line format of docs/facts.md §2, prefixes, tqdm, chunking, bounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from r1console.core import fatal
from r1console.core import logparse as lp
from r1console.core.logparse import parser as lp_parser

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
FIXTURE_FILES = sorted(p for p in LOGS.rglob("*") if p.is_file() and p.parent != LOGS)


def events(text: str | bytes, stream: str = "s") -> list[lp.Event]:
    data = text.encode() if isinstance(text, str) else text
    return lp.parse_bytes(data, stream)


def only(text: str | bytes, cls: type) -> list:
    return [e for e in events(text) if isinstance(e, cls)]


# ---- shard progress ----------------------------------------------------------------------------
@pytest.mark.parametrize("desc", [
    "Loading safetensors checkpoint shards",
    "Loading pt checkpoint shards",
    "Loading np_cache checkpoint shards",
    "Multi-thread loading pt checkpoint shards",
    "Multi-thread loading shards",
    "Loading safetensors using Runai Model Streamer",
    "Loading safetensors using InstantTensor loader",
    "Loading safetensors checkpoint shards (eager)",
])
def test_every_shard_bar_desc(desc):
    [ev] = only(f"\r{desc}:   1% Completed | 1/163 [00:06<18:37,  6.90s/it]\n", lp.ShardProgress)
    assert (ev.desc, ev.n, ev.total, ev.percent) == (desc, 1, 163, 1)
    assert ev.elapsed_s == 6 and ev.remaining_s == 18 * 60 + 37
    assert ev.rate_per_s == pytest.approx(1 / 6.9)
    assert ev.eager == desc.endswith("(eager)")


def test_bar_variants_rate_and_unknown_remaining():
    [a] = only("Loading safetensors checkpoint shards:   0% Completed | 0/163 [00:00<?, ?it/s]\n", lp.ShardProgress)
    assert a.remaining_s is None and a.rate_per_s is None
    [b] = only("Loading safetensors checkpoint shards: 100% Completed | 4/4 [00:00<00:00, 207.25it/s]\n", lp.ShardProgress)
    assert b.rate_per_s == 207.25 and b.n == b.total == 4
    [c] = only("Loading safetensors checkpoint shards:  53% Completed | 46/86 [1:31:04<1:26:49, 130.23s/it]\n", lp.ShardProgress)
    assert c.elapsed_s == 3600 + 31 * 60 + 4


def test_old_default_tqdm_formats():
    # forks without " Completed |", and tqdm's own bar characters (unicode and ascii)
    lines = ("Loading safetensors checkpoint shards:   0% 0/163 [00:00<?, ?it/s]\n"
             "Loading safetensors checkpoint shards:  50%|█████     | 1/2 [00:01<00:01,  1.00s/it]\n"
             "Loading safetensors checkpoint shards:  50%|####5     | 1/2 [00:01<00:01,  1.00s/it]\n")
    assert [(e.n, e.total) for e in only(lines, lp.ShardProgress)] == [(0, 163), (1, 2), (1, 2)]


def test_several_bars_on_one_physical_line_and_carriage_returns():
    line = ("\rLoading safetensors checkpoint shards:   0% Completed | 0/1 [00:00<?, ?it/s]"
            "Loading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00,  2.0it/s]"
            "\rLoading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00,  2.0it/s]\n")
    evs = only(line, lp.ShardProgress)
    assert [(e.n, e.lineno) for e in evs] == [(0, 1), (1, 1), (1, 1)]
    assert evs[0].offset == 1 and evs[2].offset > evs[1].offset


def test_ray_prefixed_coloured_bar():
    raw = "\x1b[36m(RayWorkerWrapper pid=860)\x1b[0m \rLoading safetensors checkpoint shards:  55% Completed | 90/163 [00:22<00:13,  5.23it/s]\n"
    [ev] = only(raw, lp.ShardProgress)
    assert ev.n == 90
    # copy-pasted logs lose the ESC byte; the bare colour codes are still removed from prefixes
    bare = "[36m(RayWorkerWrapper pid=860)[0m Loading safetensors checkpoint shards:  55% Completed | 90/163 [00:22<00:13,  5.23it/s]\n"
    [ev] = only(bare, lp.ShardProgress)
    assert ev.origin == "RayWorkerWrapper pid=860"


def test_graph_capture_bar_is_an_initialising_milestone():
    evs = only("\rCapturing CUDA graphs (mixed prefill-decode, PIECEWISE):  49%|####9     | 33/67 [00:10<00:11,  3.10it/s]\n", lp.Milestone)
    assert [(e.name, e.detail) for e in evs] == [("graphs", "33/67")]


# ---- prefixes, colours, dedup, headers -----------------------------------------------------------
def test_nested_prefixes_colour_and_ray_dedup():
    raw = ("\x1b[1;36m(EngineCore_DP0 pid=742)\x1b[0;0m (RayWorkerWrapper pid=233, ip=10.20.1.125) "
           "INFO 11-12 11:12:10 [gpu_model_runner.py:2904] Model loading took 7.2637 GiB and 9.390913 seconds"
           " [repeated 11x across cluster] (Ray deduplicates logs by default. Set RAY_DEDUP_LOGS=0 to disable log deduplication.)\n")
    [ev] = only(raw, lp.ModelLoaded)
    assert (ev.gib, ev.seconds, ev.repeat) == (7.2637, 9.390913, 11)
    assert ev.origin == "RayWorkerWrapper pid=233, ip=10.20.1.125"
    assert ev.text.startswith("Model loading took") and "repeated" not in ev.text
    assert ev.ts == lp.timestamp_key(11, 12, 11, 12, 10)


def test_logging_prefix_text_before_the_header_is_tolerated():
    [ev] = only("myjob| INFO 06-03 21:42:15 [api_server.py:1090] Starting vLLM API server on http://0.0.0.0:8000\n", lp.ServerReady)
    assert ev.url == "http://0.0.0.0:8000"


def test_non_utf8_bytes_never_raise():
    raw = b"\xff\xfe(APIServer pid=1) INFO 06-03 21:42:15 [api_server.py:1] vLLM API server version 0.8.5\xc3\n\x80\x81\n"
    [ev] = [e for e in events(raw) if isinstance(e, lp.VllmVersion)]
    assert ev.version == "0.8.5\ufffd" or ev.version.startswith("0.8.5")


# ---- milestones ----------------------------------------------------------------------------------
@pytest.mark.parametrize("line,version", [
    ("INFO 06-03 21:30:01 api_server.py:840] vLLM API server version 0.7.3", "0.7.3"),
    ("INFO 06-03 21:40:05 [api_server.py:1043] vLLM API server version 0.8.5.post1", "0.8.5.post1"),
    ("(APIServer pid=445) INFO 11-12 11:11:32 [api_server.py:1876] vLLM API server version 0.11.1rc2.dev141+g38f225c2a", "0.11.1rc2.dev141+g38f225c2a"),
    ("(APIServer pid=1) INFO 11-02 14:00:01 [entrypoints/common/startup.py:18] vLLM server version 0.33.0, serving model /m", "0.33.0"),
    ("(EngineCore pid=1) INFO 11-28 12:33:52 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: model='x'", "0.32.0"),
    ("INFO 06-03 21:30:09 llm_engine.py:234] Initializing an LLM engine (v0.7.3) with config: model='x'", "0.7.3"),
    ("(APIServer pid=26170) INFO 11-28 12:33:30 [api_utils.py:347]  ▄▄ ▄█ █     █     █ ▀▄▀ █  version 0.32.0", "0.32.0"),
])
def test_version_lines(line, version):
    assert [e.version for e in only(line + "\n", lp.VllmVersion)] == [version]


@pytest.mark.parametrize("line,url,wording", [
    ("INFO 06-03 21:42:15 api_server.py:958] Starting vLLM API server on http://0.0.0.0:8000", "http://0.0.0.0:8000", "api_server"),
    ("INFO 06-03 21:42:15 [api_server.py:1090] Starting vLLM API server on https://0.0.0.0:8443", "https://0.0.0.0:8443", "api_server"),
    ("(APIServer pid=1) INFO 03-04 10:17:35 [api_server.py:2053] Starting vLLM API server 0 on http://0.0.0.0:8000", "http://0.0.0.0:8000", "api_server_n"),
    ("(APIServer pid=1) INFO 11-28 12:35:15 [entry.py:140] Starting vLLM server on http://127.0.0.1:8011", "http://127.0.0.1:8011", "server"),
    ("INFO:     Application startup complete.", None, "uvicorn"),
])
def test_server_ready_wordings(line, url, wording):
    [ev] = only(line + "\n", lp.ServerReady)
    assert (ev.url, ev.wording) == (url, wording)


def test_kv_cache_lines_of_every_generation():
    [a] = only("INFO 06-03 22:00:40 [kv_cache_utils.py:634] GPU KV cache size: 1,234,560 tokens\n", lp.KvCache)
    assert a.tokens == 1234560 and a.max_concurrency is None
    [b] = only("INFO 06-03 22:00:40 [kv_cache_utils.py:637] Maximum concurrency for 163,840 tokens per request: 7.54x\n", lp.KvCache)
    assert (b.tokens_per_request, b.max_concurrency) == (163840, 7.54)
    [c] = only("(EngineCore pid=1) INFO 11-28 12:35:10 [kv_cache_utils.py:2327] CPU KV cache size: 310,688 tokens, Maximum concurrency for 1,024 tokens per request: 303.41x\n", lp.KvCache)
    assert (c.tokens, c.tokens_per_request, c.max_concurrency) == (310688, 1024, 303.41)
    [d] = only("INFO 06-03 21:50:21 executor_base.py:111] # cuda blocks: 2783, # CPU blocks: 1024\n", lp.KvCache)
    assert (d.gpu_blocks, d.cpu_blocks, d.tokens) == (2783, 1024, None)
    [m] = only("INFO 03-04 10:17:00 [gpu_worker.py:298] Available KV cache memory: 28.27 GiB\n", lp.KvCacheMemory)
    assert m.gib == 28.27


def test_model_loading_and_engine_lines():
    text = ("INFO 06-03 21:49:41 model_runner.py:1117] Model loading took 78.3012 GiB and 1160.52 seconds\n"
            "(W pid=1) INFO 03-04 10:16:13 [gpu_model_runner.py:2904] Model loading took 78.1021 GiB memory and 952.301022 seconds\n"
            "INFO 06-03 22:00:01 [loader.py:458] Loading weights took 1139.22 seconds\n"
            "INFO 06-03 21:51:00 model_runner.py:1562] Graph capturing finished in 35 secs, took 2.10 GiB\n"
            "(E pid=1) INFO 11-28 12:35:13 [core.py:402] init engine (profile, create kv cache, warmup model) took 68.40 s\n"
            "(W pid=2) INFO 11-28 12:34:04 [cpu_model_runner.py:68] Starting to load model /tmp/tiny-r1...\n")
    evs = events(text)
    assert [(e.gib, e.seconds) for e in evs if isinstance(e, lp.ModelLoaded)] == [(78.3012, 1160.52), (78.1021, 952.301022)]
    assert [e.seconds for e in evs if isinstance(e, lp.WeightsLoaded)] == [1139.22]
    assert [(e.seconds, e.gib) for e in evs if isinstance(e, lp.GraphsCaptured)] == [(35, 2.10)]
    assert [e.seconds for e in evs if isinstance(e, lp.EngineInitDone)] == [68.40]
    assert [(e.name, e.detail) for e in evs if isinstance(e, lp.Milestone)] == [("load_start", "/tmp/tiny-r1")]


def test_seed_lines_and_our_script_markers():
    text = ("Head node: holygpu8a11301\nHead node IP: 10.31.0.11\nHead port: 17136\n"
            "Starting Ray head on holygpu8a11301\nStarting Ray worker on holygpu8a11302\n"
            "[r1console] rendered_by=r1console 0.1.0 profile=h200x8\n"
            "[r1console] head_node=node1\n[r1console] head_ip=10.0.0.1\n[r1console] port=8000\n"
            "[r1console] ray_waiting nodes=1/2 gpus=4/8\n[r1console] ray_ready nodes=2 gpus=8\n"
            "[r1console] vllm_starting\n[r1console] FATAL ray_timeout only 1/2 nodes after 600 s\n"
            "[r1console] FATAL something_new it broke\n")
    evs = events(text)
    assert [(e.host, e.source) for e in evs if isinstance(e, lp.HeadNode)] == [
        ("holygpu8a11301", "seed"), ("node1", "r1console")]
    markers = {e.name: e for e in evs if isinstance(e, lp.ScriptMarker)}
    assert markers["rendered_by"].get("rendered_by") == "r1console 0.1.0"
    assert markers["rendered_by"].get("profile") == "h200x8"
    assert markers["head_ip"].get("head_ip") == "10.0.0.1" and markers["port"].get("port") == "8000"
    assert markers["seed_head_ip"].get("head_ip") == "10.31.0.11"
    [w] = [e for e in evs if isinstance(e, lp.RayWaiting)]
    assert (w.nodes, w.nodes_total, w.gpus, w.gpus_total) == (1, 2, 4, 8)
    [r] = [e for e in evs if isinstance(e, lp.RayReady)]
    assert (r.nodes, r.gpus) == (2, 8)
    names = [e.name for e in evs if isinstance(e, lp.Milestone)]
    assert names == ["ray_head_start", "ray_worker_start", "vllm_starting"]
    fatals = [e for e in evs if isinstance(e, lp.FatalError)]
    assert [(f.kind, f.detail) for f in fatals] == [("ray_timeout", "only 1/2 nodes after 600 s"),
                                                    ("something_new", "it broke")]
    assert "Ray did not gather" in fatals[0].explanation and fatals[1].explanation == "it broke"


def test_placement_wait_shutdown_and_cancel():
    text = ("INFO 06-03 21:40:45 [ray_utils.py:216] Waiting for creating a placement group of specs for 30 seconds. specs=[{'GPU': 1.0}]. Check `ray status`\n"
            "(EngineCore pid=1) INFO 11-28 12:35:27 [core.py:1454] [shutdown] EngineCore: trigger received signal=SIGTERM\n"
            "(EngineCore pid=1) INFO 11-28 12:35:27 [core.py:1635] [shutdown] EngineCore: start mode=abort timeout=0s\n"
            "INFO:     Shutting down\n"
            "slurmstepd-vm: error: *** JOB 6 ON vm CANCELLED AT 2026-11-28T11:53:17 ***\n"
            "slurmstepd-node3: error: *** STEP 2.2 ON node3 CANCELLED AT 2026-11-28T12:40:33 ***\n")
    evs = events(text)
    assert [e.seconds for e in evs if isinstance(e, lp.RayPlacementWait)] == [30]
    assert [e.reason for e in evs if isinstance(e, lp.Shutdown)] == ["SIGTERM", "uvicorn"]
    [c] = [e for e in evs if isinstance(e, lp.JobCancelled)]
    assert (c.job_id, c.host, c.ts) == ("6", "vm", lp.timestamp_key(11, 28, 11, 53, 17))
    assert not [e for e in evs if isinstance(e, lp.FatalError)]


# ---- fatal signatures ----------------------------------------------------------------------------
FATAL_LINES = [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB.", "cuda_oom"),
    ("RuntimeError: CUDA error: out of memory", "cuda_oom"),
    ("ERROR 06-03 22:00:30 [core.py:396] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.", "kv_cache_no_memory"),
    ("ValueError: The model's max seq len (163840) is larger than the maximum number of tokens that can be stored in KV cache (60000). Try increasing `gpu_memory_utilization`", "max_seq_len_exceeds_kv_cache"),
    ("ValueError: To serve at least one request with the models's max seq len (163840), (10.72 GiB KV cache is needed, which is larger than the available KV cache memory (4.20 GiB).", "max_seq_len_exceeds_kv_cache"),
    ("slurmstepd: error: Detected 1 oom_kill event in StepId=12.batch. Some of the step tasks have been OOM Killed.", "oom_kill"),
    ("slurmstepd: error: Detected 2 oom-kill event(s) in step 12.0 cgroup.", "oom_kill"),
    ("vllm: error: unrecognized arguments: --enable-reasoning", "unrecognized_argument"),
    ("vllm serve: error: argument --max-model-len: invalid int value: 'abc'", "invalid_argument"),
    ("ValueError: max_num_batched_tokens (2048) must be greater than or equal to max_num_seqs (4096).", "invalid_batching_limits"),
    ("OSError: [Errno 98] Address already in use", "address_in_use"),
    ("ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use", "address_in_use"),
    ("OSError: /models/DeepSeek-R1 does not appear to have a file named config.json.", "model_path_invalid"),
    ("ERROR 06-03 22:00:30 [core.py:396] EngineCore failed to start.", "engine_failed"),
    ("RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}", "engine_failed"),
    ("(EngineCore pid=1) ERROR 11-28 12:22:18 [core.py:1512] EngineCore encountered a fatal error.", "engine_failed"),
    ("ERROR 01-01 00:00:00 [core_client.py:1] Engine core proc EngineCore_0 died unexpectedly, shutting down client.", "engine_died"),
    ("ERROR 01-01 00:00:00 [x.py:1] Worker proc VllmWorker-0 died unexpectedly (exit code: None), shutting down executor.", "engine_died"),
    ("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.", "engine_died"),
    ("vllm.engine.async_llm_engine.AsyncEngineDeadError: Background loop has errored already.", "engine_died"),
    ("RuntimeError: CUDA error: an illegal memory access was encountered", "cuda_error"),
    ("Fatal Python error: Segmentation fault", "segfault"),
    ("*** SIGSEGV received at time=1762945937 on cpu 6 ***", "segfault"),
    ("[rank9]:[E603 23:10:00.1 ProcessGroupNCCL.cpp:616] [Rank 9] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600081 milliseconds before timing out.", "nccl_timeout"),
    ("torch.distributed.DistBackendError: NCCL error in: /pytorch/NCCLUtils.cpp:77, unhandled system error, NCCL version 2.21.5", "nccl_error"),
    ("ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task.", "ray_actor_died"),
    ("ray.exceptions.ActorDiedError: The actor died because its node has died.", "ray_actor_died"),
    ("openai_harmony.HarmonyError: error downloading or loading vocab file: failed to download or load vocab file", "harmony_vocab_missing"),
    ("vllm serve: error: the following arguments are required: model_tag", "invalid_command_line"),
    ("api_server.py: error: argument --dtype: invalid choice: 'fp9' (choose from 'auto', 'half')", "invalid_argument"),
    ("ray.exceptions.RayTaskError(ValueError): ray::RayWorkerWrapper.execute_method() (pid=1, ip=10.0.0.2)", "ray_task_error"),
    ("ray.exceptions.RayTaskError(OutOfMemoryError): ray::RayWorkerWrapper.execute_method() (pid=1, ip=10.0.0.2)", "cuda_oom"),
    ("ray.exceptions.RayChannelTimeoutError: System error: Timed out waiting for object available to read.", "ray_channel_timeout"),
    ("ValueError: Cannot provide a placement group of placement_group_specs=[{'GPU': 1.0}] within 1800 seconds. See `ray status`", "ray_placement_timeout"),
    ("(EngineCore pid=26693) ERROR 12-03 13:16:18 [core.py:1510] ValueError: current platform cpu does not support ray.", "ray_unsupported_platform"),
    ("ValueError: The number of required GPUs exceeds the total number of available GPUs in the placement group.", "ray_not_enough_gpus"),
    ("slurmstepd: error: *** JOB 28 ON vm CANCELLED AT 2026-11-28T11:58:20 DUE TO TIME LIMIT ***", "slurm_time_limit"),
    ("slurmstepd: error: *** JOB 28 ON vm CANCELLED AT 2026-11-28T11:58:20 DUE TO PREEMPTION ***", "slurm_preempted"),
    ("slurmstepd: error: *** JOB 28 ON vm CANCELLED AT 2026-11-28T11:58:20 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***", "slurm_node_failure"),
    ("slurmstepd: error: *** JOB 28 ON vm CANCELLED AT 2026-11-28T11:58:20 DUE TO TASK FAILURE ***", "slurm_task_failure"),
    ("slurmstepd: error: *** JOB 28 ON vm CANCELLED AT 2026-11-28T11:58:20 DUE to SIGNAL Killed ***", "slurm_signal"),
]


@pytest.mark.parametrize("line,kind", FATAL_LINES)
def test_fatal_signatures(line, kind):
    evs = [e for e in events(line + "\n") if isinstance(e, lp.FatalError)]
    assert [e.kind for e in evs] == [kind]
    ev = evs[0]
    assert ev.explanation and ev.what_to_try and "\n" not in ev.explanation + ev.what_to_try
    assert "{detail}" not in ev.explanation


def test_every_signature_has_a_test_line():
    tested = {kind for _, kind in FATAL_LINES}
    assert {s.kind for s in fatal.SIGNATURES if s.fatal} <= tested


@pytest.mark.parametrize("line,kind", FATAL_LINES)
def test_fatal_text_in_info_or_warning_lines_is_not_fatal(line, kind):
    for header in ("INFO 06-03 22:01:10 [logger.py:39] Received request x: prompt: '",
                   "WARNING 06-03 22:01:10 [config.py:1] note: ", "INFO:     ",
                   "(APIServer pid=1) WARNING 11-28 12:33:30 [x.py:1] "):
        assert not [e for e in events(header + line + "\n") if isinstance(e, (lp.FatalError, lp.Notice))]


@pytest.mark.parametrize("line", [
    "WARNING 06-03 21:40:16 [utils.py:2382] Unable to detect the number of NUMA nodes; error: not readable.",
    "error: the Ray dashboard is not reachable; unable to fetch cluster metrics",
    "ERROR 06-03 22:01:12 [serving_chat.py:200] Error in preprocessing prompt inputs",
    "ERROR 06-03 22:01:12 [serving_chat.py:201] ValueError: This model's maximum context length is 163840 tokens.",
    "holygpu:233:233 [0] init.cc:140 NCCL WARN NUMA auto balancing enabled",
    "(EngineCore pid=1) INFO 11-28 12:35:06 [shm_broadcast.py:871] No available shared memory broadcast block found in 60 seconds.",
    "Failed to create oneDNN linear, fallback to torch linear. Exception: could not create a primitive",
    "UserWarning: resource_tracker: There appear to be 1 leaked semaphore objects to clean up at shutdown",
    "srun: error: node1: task 0: Terminated",
    'INFO:     127.0.0.1:1 - "POST /v1/chat/completions HTTP/1.1" 500 Internal Server Error',
    '    raise ValueError("No available memory for the cache blocks. "',
])
def test_harmless_lines_are_not_fatal(line):
    assert not [e for e in events(line + "\n") if isinstance(e, lp.FatalError)]


def test_step_exit_is_a_notice_not_fatal():
    [n] = only("srun: error: holygpu8a11302: task 0: Exited with exit code 1\n", lp.Notice)
    assert n.kind == "step_exited" and not only("srun: error: h: task 0: Exited with exit code 1\n", lp.FatalError)


def test_generic_failure_carries_the_first_exception_as_context():
    text = ("(Worker pid=1) ERROR 11-28 12:01:03 [m.py:1] ValueError: Head dimension 48 is not supported by MLA.\n"
            "(EngineCore pid=2) ERROR 11-28 12:01:03 [core.py:1] RuntimeError: Worker failed with error 'Head dimension 48'\n"
            "(APIServer pid=3) ERROR 11-28 12:01:03 [a.py:1] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.\n")
    [ev] = only(text, lp.FatalError)
    assert ev.kind == "engine_died" and ev.context == "ValueError: Head dimension 48 is not supported by MLA."
    # a root-cause signature carries no context
    [oom] = only("ValueError: x\ntorch.OutOfMemoryError: CUDA out of memory.\n", lp.FatalError)
    assert oom.context is None


# ---- chunking, bounds, offsets -------------------------------------------------------------------
def test_partial_line_at_a_read_boundary_waits_for_its_end():
    p = lp.LogParser("s")
    line = b"INFO 06-03 21:42:15 [api_server.py:1090] Starting vLLM API server on http://0.0.0.0:8000\n"
    assert p.feed(line[:50]) == []
    [ev] = p.feed(line[50:])
    assert isinstance(ev, lp.ServerReady) and ev.lineno == 1 and ev.offset == 0


def test_unterminated_last_line_needs_flush():
    p = lp.LogParser("s")
    assert p.feed(b"x\nvllm: error: unrecognized arguments: --foo") == []
    [ev] = p.flush()
    assert ev.kind == "unrecognized_argument" and ev.lineno == 2 and ev.offset == 2


def test_line_numbers_and_offsets_survive_skipped_lines():
    boring = 'INFO:     10.0.0.1:4000 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
    text = boring * 5 + "INFO:     Application startup complete.\n" + boring * 3 + "OSError: [Errno 98] Address already in use\n"
    evs = events(text)
    assert [(type(e).__name__, e.lineno, e.offset) for e in evs] == [
        ("ServerReady", 6, 5 * len(boring)),
        ("FatalError", 10, 5 * len(boring) + len("INFO:     Application startup complete.\n") + 3 * len(boring))]


def test_a_stream_without_newlines_keeps_memory_bounded():
    p = lp.LogParser("s", max_segment=4096)
    for _ in range(2000):
        p.feed(b"x" * 1000)
    assert len(p._buf) <= 4096
    # and the capped line still yields what its first bytes say
    p2 = lp.LogParser("s", max_segment=4096)
    p2.feed(b"OSError: [Errno 98] Address already in use " + b"y" * 100_000)
    [ev] = p2.feed(b"\n")
    assert ev.kind == "address_in_use"


def test_carriage_return_only_stream_is_parsed_as_it_arrives():
    p = lp.LogParser("s", max_segment=2048)
    out = []
    for n in range(1, 300):
        out += p.feed(f"\rLoading safetensors checkpoint shards: {n * 100 // 300:3d}% Completed | {n}/300 [00:{n % 60:02d}<00:10,  1.00s/it]".encode())
    assert [e.n for e in out] == list(range(1, 299))  # the last one waits for its terminator
    assert len(p._buf) <= 2048


def test_skip_to_resynchronises_at_the_next_line():
    p = lp.LogParser("s")
    p.feed(b"Head node: a\n")
    p.skip_to(1000)
    evs = p.feed(b"ial line, no event\nOSError: [Errno 98] Address already in use\n")
    [ev] = evs
    assert ev.lineno is None and ev.offset == 1000 + len(b"ial line, no event\n")
    p.skip_to(5000, at_line_start=True)
    [ev] = p.feed(b"OSError: [Errno 98] Address already in use\n")
    assert ev.offset == 5000


# ---- the fast paths never change the result ------------------------------------------------------
def _slow_events(data: bytes, stream: str, monkeypatch) -> list[lp.Event]:
    with monkeypatch.context() as m:
        m.setattr(lp_parser, "_TRIGGER_B", re.compile(b""))
        m.setattr(lp_parser, "_BORING_RE", re.compile(rb"(?!)"))
        m.setattr(lp_parser, "_CANDIDATE_START", re.compile(rb"\n"))
        return lp.parse_bytes(data, stream)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(LOGS)))
def test_prefilters_drop_nothing_on_fixtures(path, monkeypatch):
    data = path.read_bytes()
    assert lp.parse_bytes(data, "f") == _slow_events(data, "f", monkeypatch)


def test_every_needle_is_reachable():
    """Each fatal signature's needles are in the trigger regex (else the signature never fires)."""
    for sig in fatal.SIGNATURES:
        for needle in sig.needles:
            assert needle in lp.NEEDLES and lp_parser._TRIGGER_B.search(needle.encode()), (sig.kind, needle)


def test_every_matcher_needle_is_in_the_trigger():
    """The table is the only list of needles: every matcher's literals reach the parser."""
    for matcher in lp.TABLE:
        for needle in matcher.needles:
            assert lp_parser._TRIGGER_B.search(needle.encode()), needle
