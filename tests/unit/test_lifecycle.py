"""The stage machine: SLURM state + log events + /health + test completion -> stage."""

from __future__ import annotations

import pytest

from r1console.core import logparse as lp
from r1console.core.lifecycle import JobLifecycle, Stage, format_duration


def feed(lc: JobLifecycle, text: str, stream: str = "job.out", now: float | None = None) -> None:
    lc.on_events(lp.parse_bytes(text.encode(), stream), now)


def bar(n: int, total: int = 163, elapsed: int | None = None) -> str:
    elapsed = n * 7 if elapsed is None else elapsed
    m, s = divmod(elapsed, 60)
    return f"\rLoading safetensors checkpoint shards: {100 * n // total:3d}% Completed | {n}/{total} [{m:02d}:{s:02d}<10:00,  7.00s/it]\n"


READY = "INFO 06-03 22:00:42 [api_server.py:1090] Starting vLLM API server on http://0.0.0.0:8000\n"


def test_queued_then_starting_from_slurm_states():
    lc = JobLifecycle(live=True)
    assert lc.snapshot().stage is Stage.QUEUED
    lc.on_slurm_state("PENDING", "Resources")
    st = lc.snapshot()
    assert st.stage is Stage.QUEUED and st.detail == "pending (Resources)"
    lc.on_slurm_state("R")
    assert lc.snapshot().stage is Stage.STARTING
    assert lc.snapshot().slurm_state == "RUNNING"


def test_an_existing_log_means_the_job_started():
    lc = JobLifecycle()
    lc.on_log_seen()
    assert lc.snapshot().stage is Stage.STARTING


def test_positive_milestones_in_order():
    lc = JobLifecycle()
    feed(lc, "[r1console] ray_waiting nodes=1/4 gpus=4/16\n")
    st = lc.snapshot()
    assert (st.stage, st.detail) == (Stage.STARTING, "waiting for Ray: 1/4 nodes, 4/16 GPUs")
    feed(lc, "[r1console] ray_ready nodes=4 gpus=16\n")
    assert "Ray ready" in lc.snapshot().detail
    feed(lc, bar(0) + bar(10), stream="job.err")
    st = lc.snapshot()
    assert st.stage is Stage.LOADING and (st.shards_loaded, st.shards_total) == (10, 163)
    assert st.detail.startswith("10/163 shards, ETA ")
    feed(lc, bar(163), stream="job.err")
    assert lc.snapshot().stage is Stage.INITIALISING
    feed(lc, "INFO 06-03 22:00:40 [kv_cache_utils.py:634] GPU KV cache size: 1,234,560 tokens\n")
    st = lc.snapshot()
    assert st.stage is Stage.INITIALISING and st.kv_cache_tokens == 1234560 and "1,234,560" in st.detail
    feed(lc, READY)
    st = lc.snapshot()
    assert st.stage is Stage.READY and st.server_url == "http://0.0.0.0:8000" and st.eta_s is None


def test_milestones_never_go_backwards():
    lc = JobLifecycle()
    feed(lc, "INFO 06-03 22:00:40 [kv_cache_utils.py:634] GPU KV cache size: 100 tokens\n")
    feed(lc, "[r1console] ray_waiting nodes=1/4\n")
    assert lc.snapshot().stage is Stage.INITIALISING


def test_eta_from_the_recent_shard_rate():
    lc = JobLifecycle(eta_window=4)
    # slow at first (20 s/shard), then 5 s/shard: the ETA follows the recent rate
    t = 0
    for n in range(0, 11):
        t += 20 if n <= 5 else 5
        feed(lc, bar(n, elapsed=t), stream="err")
    st = lc.snapshot()
    assert st.shard_rate == pytest.approx(1 / 5)
    assert st.eta_s == pytest.approx((163 - 10) * 5)


def test_live_eta_counts_down_between_updates():
    lc = JobLifecycle(live=True, eta_window=4)
    for n in range(0, 5):
        lc.on_events(lp.parse_bytes(bar(n, elapsed=n * 10).encode(), "err"), now=1000.0 + n * 10)
    at_update = lc.snapshot(now=1040.0).eta_s
    assert at_update == pytest.approx(159 * 10)
    assert lc.snapshot(now=1070.0).eta_s == pytest.approx(159 * 10 - 30)


def test_a_lagging_copy_of_the_bar_from_another_rank_is_ignored():
    lc = JobLifecycle()
    feed(lc, bar(0) + bar(5) + bar(6) + bar(3) + bar(7), stream="err")
    assert lc.snapshot().shards_loaded == 7


def test_a_second_bar_after_a_complete_one_restarts_progress():
    lc = JobLifecycle()
    feed(lc, bar(4, total=4) + bar(0, total=163) + bar(2, total=163), stream="err")
    st = lc.snapshot()
    assert (st.shards_loaded, st.shards_total, st.stage) == (2, 163, Stage.LOADING)


def test_live_ready_needs_health_and_a_test_completion():
    lc = JobLifecycle(live=True)
    lc.on_slurm_state("RUNNING")
    feed(lc, READY)
    st = lc.snapshot()
    assert st.stage is Stage.INITIALISING and "waiting for /health" in st.detail
    lc.on_health(True)
    st = lc.snapshot()
    assert st.stage is Stage.INITIALISING and "test completion" in st.detail
    lc.on_probe(False)
    assert "failed" in lc.snapshot().detail
    lc.on_probe(True)
    assert lc.snapshot().stage is Stage.READY
    # /health fails later: not ready any more, and ready needs a new completion afterwards
    lc.on_health(False)
    st = lc.snapshot()
    assert st.stage is Stage.INITIALISING and st.detail == "was ready; /health is failing now"
    lc.on_health(True)
    assert lc.snapshot().stage is Stage.INITIALISING
    lc.on_probe(True)
    assert lc.snapshot().stage is Stage.READY


def test_live_health_and_probe_are_enough_without_the_log_line():
    lc = JobLifecycle(live=True)
    lc.on_slurm_state("RUNNING")
    lc.on_health(True)
    lc.on_probe(True)
    assert lc.snapshot().stage is Stage.READY


def test_offline_ready_means_the_ready_line():
    lc = JobLifecycle(live=False)
    feed(lc, "INFO:     Application startup complete.\n", stream="err")
    assert lc.snapshot().stage is Stage.READY


def test_failed_only_on_a_known_signature():
    lc = JobLifecycle()
    feed(lc, READY + "ERROR 06-03 22:01:12 [serving_chat.py:200] Error in preprocessing prompt inputs\n"
             "WARNING 06-03 22:01:12 [x.py:1] error: unable to do something\n")
    assert lc.snapshot().stage is Stage.READY
    feed(lc, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n", stream="err")
    st = lc.snapshot()
    assert st.stage is Stage.FAILED and st.primary_error.kind == "cuda_oom"
    assert st.detail.startswith("cuda_oom: ")


def test_root_causes_are_listed_first_and_counted():
    lc = JobLifecycle()
    feed(lc, "ERROR 06-03 22:00:30 [core.py:396] EngineCore failed to start.\n"
             "ERROR 06-03 22:00:30 [core.py:396] ValueError: No available memory for the cache blocks.\n"
             "ERROR 06-03 22:00:30 [core.py:396] ValueError: No available memory for the cache blocks.\n")
    st = lc.snapshot()
    assert [(e.kind, e.count) for e in st.errors] == [("kv_cache_no_memory", 2), ("engine_failed", 1)]
    assert st.errors[0].lineno == 2 and st.errors[0].stream == "job.out"


def test_slurm_end_states():
    lc = JobLifecycle(live=True)
    feed(lc, READY)
    lc.on_slurm_state("TIMEOUT")
    st = lc.snapshot()
    assert st.stage is Stage.FAILED and st.primary_error.kind == "slurm_time_limit"
    lc = JobLifecycle(live=True)
    lc.on_slurm_state("CANCELLED by 1000")
    assert lc.snapshot().stage is Stage.CANCELLED
    lc = JobLifecycle(live=True)
    feed(lc, READY)
    lc.on_slurm_state("COMPLETED")
    assert lc.snapshot().stage is Stage.ENDED
    # FAILED with a recognised error in the log: the log's error, no generic one added
    lc = JobLifecycle(live=True)
    feed(lc, "OSError: [Errno 98] Address already in use\n")
    lc.on_slurm_state("F")
    assert [e.kind for e in lc.snapshot().errors] == ["address_in_use"]
    lc = JobLifecycle(live=True)
    lc.on_slurm_state("FAILED", "NonZeroExitCode")
    assert [e.kind for e in lc.snapshot().errors] == ["slurm_failed"]


def test_teardown_errors_after_sigterm_are_not_failures():
    lc = JobLifecycle()
    feed(lc, READY
         + "(EngineCore pid=1) INFO 11-28 12:35:27 [core.py:1454] [shutdown] EngineCore: trigger received signal=SIGTERM\n"
         + "(APIServer pid=2) ERROR 11-28 12:35:27 [async_llm.py:906] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.\n")
    st = lc.snapshot()
    assert st.stage is Stage.ENDED and not st.errors and [e.kind for e in st.suppressed] == ["engine_died"]


def test_a_crash_followed_by_a_shutdown_is_still_failed():
    lc = JobLifecycle()
    feed(lc, READY
         + "(APIServer pid=2) ERROR 11-28 12:35:20 [async_llm.py:906] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.\n"
         + "(EngineCore pid=1) INFO 11-28 12:35:27 [core.py:1454] [shutdown] EngineCore: trigger received signal=SIGTERM\n")
    assert lc.snapshot().stage is Stage.FAILED


def test_scancel_in_err_suppresses_later_errors_in_out_by_timestamp():
    lc = JobLifecycle()
    # .out is read first (offline), the cancel line is in .err: the timestamps decide
    feed(lc, READY + "ERROR 06-04 09:00:03 [async_llm.py:399] vllm.v1.engine.exceptions.EngineDeadError: x\n", "job.out")
    assert lc.snapshot().stage is Stage.FAILED
    feed(lc, "slurmstepd: error: *** JOB 7 ON h CANCELLED AT 2025-06-04T09:00:02 ***\n", "job.err")
    st = lc.snapshot()
    assert st.stage is Stage.CANCELLED and not st.errors


def test_errors_before_the_cancel_time_still_count():
    lc = JobLifecycle()
    feed(lc, "ERROR 06-04 08:00:00 [async_llm.py:399] vllm.v1.engine.exceptions.EngineDeadError: x\n", "job.out")
    feed(lc, "slurmstepd: error: *** JOB 7 ON h CANCELLED AT 2025-06-04T09:00:02 ***\n", "job.err")
    assert lc.snapshot().stage is Stage.FAILED


def test_root_causes_are_never_suppressed():
    lc = JobLifecycle()
    feed(lc, "(EngineCore pid=1) INFO 11-28 12:35:27 [core.py:1454] [shutdown] EngineCore: trigger received signal=SIGTERM\n"
             "torch.OutOfMemoryError: CUDA out of memory.\n")
    assert lc.snapshot().stage is Stage.FAILED


def test_time_limit_is_failed_and_its_teardown_is_suppressed():
    lc = JobLifecycle()
    feed(lc, READY + "ERROR 06-06 21:40:01 [core.py:400] ray.exceptions.RayActorError: The actor died unexpectedly\n", "o")
    feed(lc, "slurmstepd: error: *** JOB 4 ON h CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n", "e")
    st = lc.snapshot()
    assert [e.kind for e in st.errors] == ["slurm_time_limit"] and [e.kind for e in st.suppressed] == ["ray_actor_died"]


def test_v0_kv_tokens_from_blocks_and_concurrency():
    lc = JobLifecycle()
    feed(lc, "INFO 06-03 21:50:21 executor_base.py:111] # cuda blocks: 2783, # CPU blocks: 1024\n"
             "INFO 06-03 21:50:21 executor_base.py:116] Maximum concurrency for 163840 tokens per request: 1.09x\n")
    st = lc.snapshot()
    assert st.kv_cache_tokens == 2783 * 64 and st.max_concurrency == 1.09


def test_head_node_and_reachable_url():
    lc = JobLifecycle()
    feed(lc, "Head node: holygpu8a11301\n" + READY)
    st = lc.snapshot()
    assert st.head_node == "holygpu8a11301"
    assert st.reachable_url == "http://holygpu8a11301:8000"
    # our marker wins over the seed's echo
    feed(lc, "[r1console] head_node=node7\n[r1console] port=8001\n"
             "[r1console] rendered_by=r1console 0.1.0 profile=h200x8\n")
    st = lc.snapshot()
    assert (st.head_node, st.port, st.profile, st.rendered_by) == ("node7", 8001, "h200x8", "r1console 0.1.0")


def test_script_fatal_fails_the_job():
    lc = JobLifecycle()
    feed(lc, "[r1console] ray_waiting nodes=1/2\n[r1console] FATAL ray_timeout only 1/2 nodes\n")
    st = lc.snapshot()
    assert st.stage is Stage.FAILED and st.primary_error.kind == "ray_timeout"


def test_to_dict_is_json_ready():
    import json

    lc = JobLifecycle()
    feed(lc, READY + "OSError: [Errno 98] Address already in use\n")
    d = lc.snapshot().to_dict()
    json.dumps(d)
    assert d["stage"] == "failed" and d["errors"][0]["kind"] == "address_in_use"


def test_format_duration():
    assert [format_duration(x) for x in (None, 5, 65, 3725)] == ["?", "5s", "1m05s", "1h02m"]


# ---- what the real logs taught (../shared/real-world; tests/unit/test_real_world_logs.py) ----------

PLACEMENT = ("INFO 05-26 18:54:03 [ray_utils.py:233] Waiting for creating a placement group of specs for "
             "{s} seconds. specs=[{{'GPU': 1.0}}]\n")


def test_a_placement_wait_that_never_resolves_before_a_stop_is_failed():
    lc = JobLifecycle()
    feed(lc, PLACEMENT.format(s=10) + PLACEMENT.format(s=150))
    assert lc.snapshot().stage is Stage.STARTING  # still waiting: not failed yet
    feed(lc, "*** SIGTERM received at time=1748300290 on cpu 8 ***\n")
    st = lc.snapshot()
    assert st.stage is Stage.FAILED and st.errors[0].kind == "ray_placement_timeout"
    assert "150 seconds" in st.errors[0].line


def test_a_placement_wait_followed_by_loading_is_not_a_failure():
    lc = JobLifecycle()
    feed(lc, PLACEMENT.format(s=10) + bar(1, 4) + bar(4, 4) + READY)
    lc.on_slurm_state("COMPLETED")
    assert lc.snapshot().stage is Stage.ENDED


def test_an_error_the_job_went_past_is_a_notice_not_a_failure():
    lc = JobLifecycle()
    feed(lc, "(APIServer pid=1) ERROR 03-09 18:43:53 [repo_utils.py:47] Error retrieving safetensors: Repo id must "
             "be in the form 'repo_name' or 'namespace/repo_name': '/data/m'. Use `repo_type`, retrying 1 of 2\n"
         + bar(1, 4) + bar(4, 4))
    st = lc.snapshot()
    assert st.stage is Stage.INITIALISING and st.errors == () and [n.kind for n in st.notices] == ["model_path_invalid"]


def test_an_error_followed_by_another_failure_stays_failed():
    lc = JobLifecycle()
    feed(lc, "ERROR 06-03 22:00:30 [core.py:1] torch.OutOfMemoryError: CUDA out of memory.\n" + bar(2, 4)
         + "ERROR 06-03 22:00:31 [core.py:1] EngineCore failed to start.\n")
    assert [e.kind for e in lc.snapshot().errors] == ["cuda_oom", "engine_failed"]


def test_a_draft_models_bar_after_the_main_one_keeps_the_main_count():
    lc = JobLifecycle()
    feed(lc, bar(19, 19) + "INFO 08-03 21:48:18 [gpu_model_runner.py:5233] Loading drafter model...\n"
         + bar(0, 1) + bar(1, 1))
    st = lc.snapshot()
    assert (st.shards_loaded, st.shards_total, st.stage) == (19, 19, Stage.INITIALISING)


def test_a_python_traceback_ending_the_api_server_is_failed_with_its_exception():
    lc = JobLifecycle()
    feed(lc, bar(4, 4) + "(APIServer pid=21) Traceback (most recent call last):\n"
             '(APIServer pid=21)   File "x.py", line 1, in <module>\n'
             "(APIServer pid=21) some.module.WeirdError: the vocab is gone\n")
    st = lc.snapshot()
    assert st.stage is Stage.FAILED and st.errors[0].kind == "uncaught_exception"
    assert "WeirdError" in st.errors[0].explanation and "the vocab is gone" in st.errors[0].explanation


def test_ray_task_error_reports_the_wrapped_exceptions_own_line():
    lc = JobLifecycle()
    feed(lc, "ERROR 06-03 22:00:30 [worker.py:1] ray.exceptions.RayTaskError(OutOfMemoryError): ray::W.execute()\n"
             "ERROR 06-03 22:00:30 [worker.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n")
    err = lc.snapshot().errors[0]
    assert err.kind == "cuda_oom" and err.line.startswith("torch.OutOfMemoryError") and err.count == 2
