"""`log-status` on the 8 real vLLM logs in ../shared/real-world/ (not written by us; provenance in
its SOURCES.md). The files are read where they are, never copied into the repository.

Each test states what a careful operator reads in that log, and why: the stage at its end, the
main model's shards, the KV cache tokens, the vLLM version and the failure (kind + proving line).
"""

from __future__ import annotations

import json

from _real_world import needs_real_world, real_file

from r1console.cli import main
from r1console.core.errors import EXIT_DEPLOYMENT_FAILED

pytestmark = needs_real_world


def status(capsys, name: str) -> dict:
    path = real_file(name)
    code = main(["log-status", str(path), "--json"])
    got = json.loads(capsys.readouterr().out)
    # the exit code tells a script what the stage says: 3 for a failed deployment, else 0
    assert code == (EXIT_DEPLOYMENT_FAILED if got["stage"] == "failed" else 0)
    return got


def summary(got: dict) -> tuple:
    return (got["stage"], got["shards_loaded"], got["shards_total"], got["vllm_version"], got["kv_cache_tokens"])


def kinds(got: dict, key: str = "errors") -> list[str]:
    return [e["kind"] for e in got[key]]


def test_r07_ray_placement_group_never_granted_then_sigterm_is_failed(capsys):
    # V0 + Ray, TP4: vLLM waits 10/30/70/150 s for a placement group of 4 GPUs that Ray never
    # provides ("required GPUs exceeds the total number of available GPUs"), then SIGTERM, Ray
    # stack dumps and a KeyboardInterrupt. Nothing was loaded: the GPUs were never granted, so
    # the job failed (not "starting", not a clean "ended"); the proving line is the last wait.
    got = status(capsys, "r07-v0.8.5-v0-ray-placement-group-sigterm.log")
    assert summary(got) == ("failed", None, None, "0.8.5.post1", None)
    assert kinds(got) == ["ray_placement_timeout"]
    err = got["errors"][0]
    assert "placement group of specs for 150 seconds" in err["line"] and err["lineno"] == 18
    assert "tensor-parallel-size" in err["what_to_try"]


def test_r08_v1_distill_ready_and_serving(capsys):
    # V1, 4 shards, "Starting vLLM API server on http://0.0.0.0:8000", then requests: ready.
    got = status(capsys, "r08-v0.8.5-v1-deepseek-r1-distill-ready.log")
    assert summary(got) == ("ready", 4, 4, "0.8.5.post1", 32832)
    assert got["server_url"] == "http://0.0.0.0:8000" and kinds(got) == []


def test_r09_tp4_ready_then_clean_shutdown_is_ended(capsys):
    # TP4 multiproc (VllmWorker rank 0-3, ANSI, tqdm \r): 8/8 shards, ready, then a deliberate
    # shutdown (uvicorn "Shutting down"): ended, no failure.
    got = status(capsys, "r09-v0.9.2-tp4-ready-then-shutdown.log")
    assert summary(got) == ("ended", 8, 8, "0.9.2", 279408)
    assert kinds(got) == []


def test_r10_crlf_ansi_apiserver_harmony_error_is_failed(capsys):
    # CRLF + ANSI container log: the engine initialises (15/15 shards, 2,269,888 KV tokens, graphs
    # captured), then the APIServer dies with an unhandled openai_harmony.HarmonyError (the
    # tiktoken vocab file could not be read): the server never comes up, so failed. The two early
    # "ERROR ... Error retrieving safetensors" lines are harmless (loading went on).
    got = status(capsys, "r10-v0.15.1-crlf-ansi-harmony-error.log")
    assert summary(got) == ("failed", 15, 15, "0.15.1", 2269888)
    assert kinds(got) == ["harmony_vocab_missing"]
    err = got["errors"][0]
    assert err["line"].startswith("openai_harmony.HarmonyError: invalid tiktoken vocab file")
    assert "TIKTOKEN_ENCODINGS_BASE" in err["what_to_try"]
    assert got["server_url"] is None


def test_r11_early_model_path_error_recovered_then_loaded_is_initialising(capsys):
    # TP8 FP8, 125 shards: two early "ERROR ... Error retrieving safetensors: Repo id must be in
    # the form ..." lines (vLLM retries and falls back to the local path), then all 125 shards
    # load and "Model loading took 15.57 GiB"; the log ends there. An error the job went past
    # is not a failure: initialising, with the error kept as a notice.
    got = status(capsys, "r11-v0.16.0-tp8-fp8-loaded-initialising.log")
    assert summary(got) == ("initialising", 125, 125, "0.16.0", None)
    assert kinds(got) == [] and kinds(got, "notices") == ["model_path_invalid"]


def test_r12_774_warnings_quoting_compiler_errors_then_ready(capsys):
    # 774 WARNING lines quote nvcc "error:" output (FlashInfer's all-reduce JIT failed, harmless);
    # 11/11 shards; ready on 127.0.0.1:8000.
    got = status(capsys, "r12-v0.19.0-tp4-flashinfer-ninja-warnings-ready.log")
    assert summary(got) == ("ready", 11, 11, "0.19.0", 853776)
    assert got["server_url"] == "http://127.0.0.1:8000" and kinds(got) == []


def test_r13_kv_cache_too_small_main_model_bar_not_the_drafters(capsys):
    # Main model 19/19 shards, then "Loading drafter model..." and the drafter's own 1/1 bar; then
    # the V1 wording "To serve at least one request with the model's max seq len (262144) ..."
    # and "EngineCore failed to start": failed, root cause the KV cache, engine_failed after it.
    # The shards shown are the main model's 19/19, not the drafter's 1/1.
    got = status(capsys, "r13-v0.25.1-v1-kv-cache-too-small.log")
    assert summary(got) == ("failed", 19, 19, "0.25.1", None)
    assert kinds(got) == ["max_seq_len_exceeds_kv_cache", "engine_failed"]
    assert "262144" in got["errors"][0]["line"] and "--max-model-len" in got["errors"][0]["what_to_try"]


def test_r14_enginedead_after_sigterm_is_teardown_not_failure(capsys):
    # 49/49 shards (plus a drafter's 1/1), serving, then "[shutdown] ... signal=SIGTERM" and an
    # EngineDeadError traceback printed by the teardown: ended, the EngineDeadError suppressed.
    got = status(capsys, "r14-v0.25.1-sigterm-shutdown-enginedead.log")
    assert summary(got) == ("ended", 49, 49, "0.25.1", 94135)
    assert kinds(got) == [] and kinds(got, "suppressed") == ["engine_died"]
