"""Journal: fsync'd appends, torn tail after a crash, resume, dedup; atomic output in input order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from r1console.core.batch_input import BatchItem, parse_batch_input
from r1console.core.batch_journal import (
    Journal,
    RequestRecord,
    atomic_write_text,
    default_output_format,
    journal_path_for,
    openai_output_lines,
    read_journal,
    seed_output,
    write_output,
)
from r1console.core.errors import R1Error

ITEMS = parse_batch_input(json.dumps({
    "system_prompt": "s",
    "user_prompts": [{"question_tag": f"q{i}", "content": f"question {i}"} for i in range(1, 6)],
})).items


def rec(item: BatchItem, ok: bool = True, **kw) -> RequestRecord:
    base = dict(id=item.id, index=item.index, ok=ok, request_hash=item.request_hash(),
                reasoning=f"thinking about {item.id}" if ok else None,
                content=f"\n\nanswer {item.id}" if ok else None,
                finish_reason="stop" if ok else None,
                usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12} if ok else None,
                error=None if ok else {"message": "the server failed (500)", "status": 500, "type": None},
                model="tiny-r1", finished_at=1700000000.5)
    base.update(kw)
    return RequestRecord(**base)


def test_journal_path_is_beside_the_output(tmp_path):
    assert journal_path_for(tmp_path / "out.json") == tmp_path / "out.json.journal.jsonl"


def test_append_is_on_disk_immediately_and_reads_back(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False, header={"input": "in.json"}) as j:
        j.append(rec(ITEMS[0]))
        # Another reader sees the record before the journal is closed (it was written + fsync'd).
        again = read_journal(path)
        assert [r.id for r in again.records] == ["q1"]
        assert again.header["input"] == "in.json" and again.header["journal"] == "r1console-batch"
    back = read_journal(path).records[0]
    assert back == rec(ITEMS[0], record_id=back.record_id)
    assert back.output_tokens == 7


def test_existing_journal_without_resume_is_refused_and_untouched(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False) as j:
        j.append(rec(ITEMS[0]))
    before = path.read_bytes()
    with pytest.raises(R1Error, match="already holds 1 finished requests") as info:
        Journal.open(path, resume=False)
    assert "--resume" in str(info.value)
    assert path.read_bytes() == before


def test_a_second_writer_is_locked_out(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False):
        with pytest.raises(R1Error, match="another r1console batch"):
            Journal.open(path, resume=True)


def test_torn_last_line_is_ignored_then_cut_before_appending(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False) as j:
        j.append(rec(ITEMS[0]))
        j.append(rec(ITEMS[1]))
    full = path.read_bytes()
    line = json.dumps(rec(ITEMS[2]).to_json()).encode()
    path.write_bytes(full + line[: len(line) // 2])        # the crash tore q3's record
    contents = read_journal(path)
    assert contents.torn_tail and [r.id for r in contents.records] == ["q1", "q2"]
    with Journal.open(path, resume=True) as j:
        assert j.contents.done_ids(ITEMS) == {"q1", "q2"}
        j.append(rec(ITEMS[2]))
    contents = read_journal(path)
    assert not contents.torn_tail
    assert [r.id for r in contents.records] == ["q1", "q2", "q3"]
    assert path.read_bytes().startswith(full) and path.read_bytes().endswith(b"\n")


def test_complete_last_record_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False) as j:
        j.append(rec(ITEMS[0]))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with Journal.open(path, resume=True) as j:
        j.append(rec(ITEMS[1]))
    assert [r.id for r in read_journal(path).records] == ["q1", "q2"]


def test_a_damaged_middle_line_is_named(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False) as j:
        j.append(rec(ITEMS[0]))
        j.append(rec(ITEMS[1]))
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'{"id": "q1", "ok": tru'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(R1Error, match=r"j.jsonl:2: damaged journal line"):
        read_journal(path)


def test_crash_mid_run_in_a_killed_process_loses_only_the_unwritten(tmp_path):
    """A separate process appends and is SIGKILLed; everything it appended is there."""
    path = tmp_path / "j.jsonl"
    code = f"""
import os, signal, sys
sys.path.insert(0, {os.getcwd()!r})
from r1console.core.batch_journal import Journal, RequestRecord
j = Journal.open({str(path)!r}, resume=False)
for i in range(50):
    j.append(RequestRecord(id=f"r{{i}}", index=i, ok=True))
os.write(j._fd, b'{{"id": "r50", "ok": tr')  # a torn write, then death
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    contents = read_journal(path)
    assert [r.id for r in contents.records] == [f"r{i}" for i in range(50)]
    assert contents.torn_tail


def test_dedup_ok_beats_failed_and_changed_prompts_are_redone(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal.open(path, resume=False) as j:
        j.append(rec(ITEMS[0], ok=False))           # failed first …
        j.append(rec(ITEMS[0]))                     # … then answered on resume
        j.append(rec(ITEMS[1]))
        j.append(rec(ITEMS[1], content="late duplicate"))  # never chosen over the first ok
        j.append(rec(ITEMS[2], ok=False))
        j.append(rec(ITEMS[3], request_hash="old-prompt"))  # prompt edited since
    contents = read_journal(path)
    finals = contents.finals(ITEMS)
    assert finals["q1"].ok and finals["q2"].content == "\n\nanswer q2"
    assert not finals["q3"].ok
    assert "q4" not in finals and "q5" not in finals
    assert contents.done_ids(ITEMS) == {"q1", "q2"}


def test_seed_output_in_input_order_with_seed_error_convention(tmp_path):
    records = {i.id: rec(i) for i in reversed(ITEMS)}   # completion order differs
    records["q3"] = rec(ITEMS[2], ok=False)
    out = seed_output(ITEMS, records)
    assert [o["question_tag"] for o in out] == ["q1", "q2", "q3", "q4", "q5"]
    assert out[0]["response"] == {"reasoning": "thinking about q1", "final": "\n\nanswer q1"}
    assert out[2]["response"] == {"reasoning": "[ERROR]", "final": "[ERROR] the server failed (500)"}
    path = tmp_path / "output_responses.json"
    write_output(path, "seed", ITEMS, records)
    assert json.loads(path.read_text()) == out


def test_openai_output_lines_are_vllm_run_batch_shaped(tmp_path):
    records = {i.id: rec(i, response_id=f"chatcmpl-{i.id}") for i in ITEMS}
    records["q2"] = rec(ITEMS[1], ok=False)
    lines = openai_output_lines(ITEMS, records)
    ok = lines[0]
    assert ok["custom_id"] == "q1" and ok["error"] is None
    assert ok["response"]["status_code"] == 200 and ok["response"]["request_id"] == "chatcmpl-q1"
    body = ok["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == "tiny-r1"
    msg = body["choices"][0]["message"]
    assert msg["content"] == "\n\nanswer q1" and msg["reasoning"] == "thinking about q1"
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["completion_tokens"] == 7
    bad = lines[1]
    assert bad["error"] == {"message": "the server failed (500)", "type": None, "code": 500}
    assert bad["response"]["status_code"] == 500 and bad["response"]["body"] is None
    path = tmp_path / "out.jsonl"
    write_output(path, "openai", ITEMS, records)
    assert [json.loads(x) for x in path.read_text().splitlines()] == lines


def test_output_refuses_missing_results_and_unknown_format(tmp_path):
    records = {i.id: rec(i) for i in ITEMS[:3]}
    with pytest.raises(R1Error, match="2 requests have no result yet"):
        write_output(tmp_path / "o.json", "seed", ITEMS, records)
    with pytest.raises(R1Error, match="unknown output format"):
        write_output(tmp_path / "o.json", "csv", ITEMS[:3], records)
    assert not (tmp_path / "o.json").exists()


def test_atomic_write_keeps_the_old_file_on_failure_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "o.json"
    atomic_write_text(path, "old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(R1Error, match="No space left"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"


def test_default_output_format():
    assert default_output_format("seed", "x.jsonl") == "seed"
    assert default_output_format("openai", "x.json") == "openai"
    assert default_output_format("simple", "x.jsonl") == "openai"
    assert default_output_format("simple", "x.json") == "seed"
