"""`r1console batch` / `sweep` argument handling that needs no server."""

from __future__ import annotations

import argparse
import json
import socket

from r1console.cli import main
from r1console.commands.batch import FALLBACK_CONCURRENCY, progress_line, resolve_concurrency, resume_command
from r1console.core.batch_engine import BatchProgress, EngineState


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"   # nothing listens there


def test_invalid_input_is_reported_before_connecting(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": ""}\n')
    rc = main(["batch", str(inp), "-o", str(tmp_path / "o.json"), "--url", closed_port_url()])
    err = capsys.readouterr().err
    assert rc == 4  # EXIT_CONFIG: an invalid input file
    assert "in.jsonl:2: id 'a': empty prompt" in err and "nothing was sent" in err
    assert "cannot connect" not in err
    assert not (tmp_path / "o.json.journal.jsonl").exists()


def test_output_path_checks(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "x"}\n')
    assert main(["batch", str(inp), "-o", str(tmp_path), "--url", closed_port_url()]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["batch", str(inp), "-o", str(tmp_path / "no" / "o.json"), "--url", closed_port_url()]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreachable_server_fails_fast_with_nothing_recorded(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "x"}\n')
    rc = main(["batch", str(inp), "-o", str(tmp_path / "o.json"), "--url", closed_port_url(),
               "--concurrency", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot connect" in err


def test_resume_with_everything_done_writes_the_output_without_a_server(tmp_path, capsys):
    from r1console.core.batch_input import load_batch_input
    from r1console.core.batch_journal import Journal, RequestRecord

    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"user_prompts": [{"question_tag": "q1", "content": "x"},
                                                {"question_tag": "q2", "content": "y"}]}))
    items = load_batch_input(inp).items
    out = tmp_path / "o.json"
    with Journal.open(tmp_path / "o.json.journal.jsonl", resume=False) as j:
        for it in reversed(items):
            j.append(RequestRecord(id=it.id, index=it.index, ok=True, request_hash=it.request_hash(),
                                   reasoning="r", content=f"a-{it.id}", finish_reason="stop"))
    rc = main(["batch", str(inp), "-o", str(out), "--url", closed_port_url(), "--resume", "--concurrency", "4"])
    assert rc == 0, capsys.readouterr().err
    assert [r["question_tag"] for r in json.loads(out.read_text())] == ["q1", "q2"]


def test_sweep_rejects_bad_levels(capsys):
    assert main(["sweep", "--url", closed_port_url(), "--concurrency", "8,abc"]) == 2
    assert "'abc' is not a whole number" in capsys.readouterr().err


def test_resume_command_and_concurrency_default():
    assert resume_command(["batch", "in.json", "-o", "out file.json", "--url", "u"]) == \
        "r1console batch in.json -o 'out file.json' --url u --resume"
    assert resume_command(["batch", "x", "--resume"]).count("--resume") == 1
    args = argparse.Namespace(concurrency=None, job=None, cluster=None)
    n, note = resolve_concurrency(args)
    assert n == FALLBACK_CONCURRENCY and "--concurrency" in note
    assert resolve_concurrency(argparse.Namespace(concurrency=7, job=None, cluster=None)) == (7, None)


def test_progress_line():
    snap = BatchProgress(state=EngineState.WAITING_SERVER, total=10, skipped=2, ok=3, failed=1, in_flight=4,
                         queued=0, waiting_retry=0, retries=2, concurrency=4, output_tokens=100, live_tokens=120,
                         elapsed_s=65.0, mean_in_flight=3.5, occupancy=None, occupancy_backlogged=None)
    line = progress_line(snap)
    assert line.startswith("[waiting-server]")
    for part in ("4/8", "(+2 done before)", "ok 3", "failed 1", "in flight 4/4", "retries 2", "1:05", "ETA ~1:05"):
        assert part in line
