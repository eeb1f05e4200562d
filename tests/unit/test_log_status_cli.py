"""`r1console log-status`: the right stage on every fixture, JSON keys, errors, big files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1console.cli import main
from r1console.commands import log_status
from r1console.core.errors import EXIT_DEPLOYMENT_FAILED

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
EXPECTED = {k: v for k, v in json.loads((LOGS / "EXPECTED.json").read_text()).items() if not k.startswith("_")}
REQUIRED_KEYS = {"stage", "shards_loaded", "shards_total", "eta_s", "server_url", "vllm_version",
                 "kv_cache_tokens", "errors"}


def job_dirs() -> list[str]:
    dirs = {str(p.parent.relative_to(LOGS)) for p in LOGS.rglob("*") if p.is_file() and p.parent != LOGS}
    return sorted(dirs)


def run_json(capsys, *args: str) -> dict:
    rc = main(["log-status", *args, "--json"])
    got = json.loads(capsys.readouterr().out)
    assert rc == (EXIT_DEPLOYMENT_FAILED if got["stage"] == "failed" else 0), (rc, got["stage"])  # scripts branch on it
    return got


def test_every_fixture_directory_has_an_expectation():
    assert job_dirs() == sorted(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_stage_on_every_fixture(rel, capsys):
    want = EXPECTED[rel]
    files = sorted(str(p) for p in (LOGS / rel).iterdir())
    got = run_json(capsys, *files)
    assert REQUIRED_KEYS <= set(got)
    for key, value in want.items():
        if key == "errors":
            assert [e["kind"] for e in got["errors"]] == value
        elif key == "suppressed":
            assert [e["kind"] for e in got["suppressed"]] == value
        elif key == "context":
            assert got["errors"][0]["context"] == value
        elif key == "eta_s":
            assert got["eta_s"] == pytest.approx(value, rel=0.02)
        else:
            assert got[key] == value, key
    for e in got["errors"]:
        assert {"kind", "line", "explanation"} <= set(e) and e["explanation"] and e["line"]


def test_file_order_does_not_matter(capsys):
    files = sorted(str(p) for p in (LOGS / "0.8.5-ray/cancelled").iterdir())
    a = run_json(capsys, *files)
    b = run_json(capsys, *reversed(files))
    assert (a["stage"], a["errors"], a["shards_loaded"]) == (b["stage"], b["errors"], b["shards_loaded"])


def test_text_output(capsys):
    files = sorted(str(p) for p in (LOGS / "0.7.3/loading_oom").iterdir())
    assert main(["log-status", *files]) == EXIT_DEPLOYMENT_FAILED
    out = capsys.readouterr().out
    assert out.startswith("stage         failed - cuda_oom: ")
    assert "shards        57/163" in out and "vLLM version  0.7.3" in out
    assert "cuda_oom at " in out and "why:" in out and "try:" in out
    files = sorted(str(p) for p in (LOGS / "0.8.5-ray/loading").iterdir())
    main(["log-status", *files])
    out = capsys.readouterr().out
    assert "stage         loading - 57/163 shards, ETA 12m" in out
    assert "head node     holygpu8a11301" in out


def test_missing_file_is_a_clear_error(capsys, tmp_path):
    ok = tmp_path / "job.out"
    ok.write_text("Head node: a\n")
    missing = tmp_path / "job.err"
    assert main(["log-status", str(ok), str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"r1console: error: {missing}: log file not found"
    assert main(["log-status", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_empty_log_means_started(capsys, tmp_path):
    (tmp_path / "job.out").write_text("")
    got = run_json(capsys, str(tmp_path / "job.out"))
    assert got["stage"] == "starting" and got["errors"] == []


# ---- big files: head until ready, then the tail ------------------------------------------------
ACCESS = 'INFO:     10.0.0.1:40000 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'


def big_log(path: Path, *, middle: str = "", end: str = "", mb: float = 3.0) -> None:
    head = (LOGS / "0.8.5-ray/ready/job.holygpu8a11301.4241.out").read_text()
    body = ACCESS * int(mb * 1e6 / len(ACCESS) / 2)
    path.write_text(head + body + middle + body + end)


def test_big_file_reads_head_and_tail_only(tmp_path, capsys):
    log = tmp_path / "job.out"
    big_log(log, end="slurmstepd: error: *** JOB 4 ON h CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n")
    got = run_json(capsys, str(log), "--head-bytes", "200000", "--tail-bytes", "100000")
    assert got["stage"] == "failed" and [e["kind"] for e in got["errors"]] == ["slurm_time_limit"]
    assert got["vllm_version"] == "0.8.5.post1" and got["kv_cache_tokens"] == 1234560
    [f] = got["files"]
    assert f["skipped_bytes"] > 2_500_000 and f["bytes_read"] < 400_000
    assert got["errors"][0]["lineno"] is None and got["errors"][0]["offset"] == f["size"] - len(
        "slurmstepd: error: *** JOB 4 ON h CANCELLED AT 2025-06-06T21:40:00 DUE TO TIME LIMIT ***\n")
    full = run_json(capsys, str(log), "--full")
    assert full["stage"] == "failed" and full["files"][0]["skipped_bytes"] == 0
    assert full["errors"][0]["lineno"] is not None


def test_the_trade_off_an_error_only_in_the_skipped_middle(tmp_path, capsys):
    log = tmp_path / "job.out"
    big_log(log, middle="torch.OutOfMemoryError: CUDA out of memory.\n")
    quick = run_json(capsys, str(log), "--head-bytes", "200000", "--tail-bytes", "100000")
    assert quick["stage"] == "ready" and quick["files"][0]["skipped_bytes"] > 0
    assert main(["log-status", str(log), "--head-bytes", "200000", "--tail-bytes", "100000"]) == 0
    assert "--full reads everything" in capsys.readouterr().out
    full = run_json(capsys, str(log), "--full")
    assert full["stage"] == "failed" and full["errors"][0]["kind"] == "cuda_oom"


def test_head_budget_when_the_ready_line_never_comes(tmp_path, capsys):
    log = tmp_path / "job.err"
    bars = "".join(f"\rLoading safetensors checkpoint shards: {n * 100 // 163:3d}% Completed | {n}/163 [00:{n % 60:02d}<10:00,  7.00s/it]\n"
                   for n in range(120))
    log.write_text("x" * 90 + "\n" + ("NCCL INFO spam line\n" * 60_000) + bars)
    got = run_json(capsys, str(log), "--head-bytes", "100000", "--tail-bytes", "50000")
    assert got["stage"] == "loading" and got["shards_loaded"] == 119
    assert got["files"][0]["bytes_read"] <= 100000 + 50000


@pytest.mark.parametrize("boundary", [0, 1, 2])
def test_tail_start_on_or_near_a_line_start(tmp_path, boundary):
    from r1console.core.lifecycle import JobLifecycle

    line = b"OSError: [Errno 98] Address already in use\n"
    filler = b"y" * 99 + b"\n"
    log = tmp_path / "job.out"
    log.write_bytes(filler * 50 + line)
    lc = JobLifecycle()
    scan = log_status.scan_file(str(log), lc, head_bytes=0, tail_bytes=len(line) + boundary)
    st = lc.snapshot()
    assert [e.kind for e in st.errors] == ["address_in_use"]
    assert scan.skipped_bytes == len(filler) * 50 - boundary
