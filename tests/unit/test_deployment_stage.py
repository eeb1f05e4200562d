"""`status`'s deployment stage: the one-command log reader (run for real with sh) and the summary keys."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from r1console.core import deployment_stage as ds
from r1console.core.slurm_parse import JobInfo

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
READY_LINE = (b"Starting vLLM server on", b"Application startup complete")
KEYS = {"stage", "shards_loaded", "shards_total", "eta_s", "server_url", "reason", "time_left_s"}


def run_script(paths, head=ds.HEAD_BYTES, tail=ds.TAIL_BYTES) -> bytes:
    argv = ds.read_logs_argv([str(p) for p in paths], head_bytes=head, tail_bytes=tail)
    result = subprocess.run(argv, capture_output=True, timeout=30, check=True)
    return result.stdout


def test_small_files_come_back_whole_and_a_missing_one_is_marked(tmp_path):
    out, err = tmp_path / "job.out", tmp_path / "job.err"
    out.write_bytes(b"line 1\r\nbinary \x00\xff\n" * 3)
    pieces = ds.parse_framed(run_script([out, err]), 2)
    assert pieces[0] == ds.LogPiece(size=out.stat().st_size, head=out.read_bytes())
    assert pieces[1].size == -1 and pieces[1].head == b""


def test_big_files_give_exactly_head_and_tail(tmp_path):
    path = tmp_path / "odd name $(x) 'q'.out"  # data only ever as an argument
    data = bytes(range(256)) * 100
    path.write_bytes(data)
    [piece] = ds.parse_framed(run_script([path], head=1000, tail=300), 1)
    assert piece.size == len(data) and piece.head == data[:1000]
    assert piece.tail_offset == len(data) - 300 and piece.tail == data[-300:]


def test_the_argv_is_a_constant_script_plus_arguments():
    argv = ds.read_logs_argv(["/a b/job.out", "$(reboot)"], head_bytes=5, tail_bytes=6)
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "5", "6", "/a b/job.out", "$(reboot)"]
    assert "reboot" not in argv[2]


@pytest.mark.parametrize("data,message", [
    (b"", "no header"),
    (b"R1C 1 10 10 0 0\nshort", "shrank"),
    (b"R1C 2 1 1 0 0\nx", "bad header"),
    (b"R1C 1 1 -1 0 0\n", "negative"),
    (b"R1C 1 x 1 0 0\nx", "bad header"),
])
def test_bad_frames_are_frame_errors(data, message):
    with pytest.raises(ds.FrameError, match=message):
        ds.parse_framed(data, 1)


def _info(state="RUNNING", used=600, limit=3600, host="node1") -> JobInfo:
    return JobInfo(job_id="7", state=state, time_used=used, time_limit=limit, batch_host=host)


def _pieces(rel: str, until: tuple[bytes, ...] = ()) -> list[tuple[str, ds.LogPiece]]:
    """The job's files; with ``until``, each cut after the line holding it (a log read mid-run)."""
    out = []
    for path in sorted((LOGS / rel).iterdir()):
        data = path.read_bytes()
        for needle in until:
            if needle in data:
                data = data[:data.index(b"\n", data.index(needle)) + 1]
        out.append((path.name, ds.LogPiece(size=len(data), head=data)))
    return out


def test_ready_deployment_has_a_reachable_url_and_time_left():
    state = ds.lifecycle_for(_info(), _pieces("0.32-cpu/own_healthy", READY_LINE))
    s = ds.summarise(_info(), state, head_host="node1", port=8000)
    assert KEYS <= set(s)
    assert (s["stage"], s["reason"], s["time_left_s"]) == ("ready", None, 3000)
    # the URL as vLLM logged it (this server listens on the node's loopback: reached via the forward)
    assert s["server_url"] == "http://127.0.0.1:8031" and s["shards_loaded"] == s["shards_total"]


def test_failed_deployment_while_slurm_says_running_has_a_one_line_reason():
    state = ds.lifecycle_for(_info(), _pieces("0.32-cpu/own_kv_too_small"))
    s = ds.summarise(_info(), state)
    assert s["stage"] == "failed" and s["server_url"] is None
    assert s["reason"].startswith(state.primary_error.kind + ": ") and "\n" not in s["reason"]
    assert ds.stage_text(s) == f"failed: {state.primary_error.kind}"


def test_pending_job_is_queued_and_health_failure_demotes_ready():
    pending = _info(state="PENDING", used=0, host="")
    s = ds.summarise(pending, ds.lifecycle_for(pending, []))
    assert (s["stage"], s["time_left_s"]) == ("queued", None)
    state = ds.lifecycle_for(_info(), _pieces("0.32-cpu/own_healthy", READY_LINE))
    s = ds.summarise(_info(), state, health_ok=False)
    assert s["stage"] == "initialising" and s["server_url"] is None and s["health_ok"] is False


def test_loading_cell_shows_shards_and_eta():
    s = {"stage": "loading", "shards_loaded": 40, "shards_total": 163, "eta_s": 300.0}
    assert ds.stage_text(s) == "loading 40/163 ETA 5m00s"
