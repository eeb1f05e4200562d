"""Batch integrity (issue 14 item 5, audit M3, M4, M6, M9, L3): bad text in the input, an engine
that cannot loop for ever, --resume that never mixes answers of other settings, journal writes off
the event loop, a full disk, and a private journal."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import threading
import time

import pytest

from r1console.adapters.batch_runner import BatchPlan, run_batch
from r1console.cli import main
from r1console.core.api_errors import ServerUnreachable
from r1console.core.batch_engine import FREE_UNREACHABLE, BatchEngine, EngineState, RetryPolicy
from r1console.core.batch_input import BatchItem, load_batch_input, parse_batch_input
from r1console.core.batch_journal import Journal, JournalWriteError, RequestRecord, read_journal
from r1console.core.errors import ConfigError, R1Error
from r1console.demo.sim_engine import LengthModel
from r1console.demo.sim_server import SimServer

SHORT = LengthModel(reasoning_median=8, reasoning_sigma=0.3, reasoning_min=2, reasoning_max=20,
                    answer_median=4, answer_sigma=0.3, answer_min=1, answer_max=10)


def rec(i: int) -> RequestRecord:
    return RequestRecord(id=f"q{i}", index=i, ok=True, content=f"answer {i}")


# -- M3: lone surrogates ---------------------------------------------------------------------------

def test_a_lone_surrogate_is_rejected_with_its_line_in_every_format():
    simple = '{"id": "a", "prompt": "fine \\ud83d\\ude00"}\n{"id": "b", "prompt": "cut \\ud83d"}\n'
    with pytest.raises(ConfigError) as info:
        parse_batch_input(simple, "in.jsonl")
    assert info.value.problems == [
        "in.jsonl:2: prompt holds a lone surrogate \\ud83d (half of a UTF-16 pair, e.g. a cut emoji or a "
        "broken \\u escape): it cannot be sent as UTF-8; complete or remove it"]

    openai = ('{"custom_id": "r1", "body": {"messages": [{"role": "user", "content": "ok"}]}}\n'
              '{"custom_id": "r\\udc00", "body": {"messages": [{"role": "user", "content": "x"}]}}\n'
              '{"custom_id": "r3", "body": {"messages": [{"role": "user", "content": [{"type": "text", '
              '"text": "\\udbff"}]}]}}\n')
    with pytest.raises(ConfigError) as info:
        parse_batch_input(openai, "req.jsonl")
    assert [p.split(" holds")[0] for p in info.value.problems] == [
        "req.jsonl:2: custom_id", "req.jsonl:3: body.messages[0].content[0].text"]

    seed = json.dumps({"system_prompt": "s", "user_prompts": [{"question_tag": "q1", "content": "ok"}]},
                      indent=1)[:-3] + ',\n  {"question_tag": "q2", "content": "bad \\ud83d"}\n ]\n}'
    with pytest.raises(ConfigError) as info:
        parse_batch_input(seed, "input_prompts.json")
    (problem,) = info.value.problems
    line = seed.splitlines().index('  {"question_tag": "q2", "content": "bad \\ud83d"}') + 1
    assert problem.startswith(f"input_prompts.json:{line}: user_prompts[1].content holds a lone surrogate \\ud83d")


def test_a_complete_surrogate_pair_is_an_ordinary_emoji():
    batch = parse_batch_input('{"id": "a", "prompt": "smile \\ud83d\\ude00"}\n', "in.jsonl")
    assert batch.items[0].prompt == "smile \U0001F600"
    assert len(batch.items[0].request_hash()) == 16


def test_the_cli_reports_the_line_and_sends_nothing(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "\\ud83d"}\n')
    rc = main(["batch", str(inp), "-o", str(tmp_path / "o.json"), "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert f"{inp}:2: prompt holds a lone surrogate \\ud83d" in err and "nothing was sent" in err
    assert not (tmp_path / "o.json.journal.jsonl").exists()


# -- M4: no livelock ---------------------------------------------------------------------------------

def _items(n: int) -> list[BatchItem]:
    return [BatchItem(id=f"q{i}", index=i, messages=({"role": "user", "content": f"q {i}"},)) for i in range(n)]


async def test_health_up_but_every_chat_connection_closed_ends_the_run():
    """/health answers, every chat connection is closed unanswered: each item pays attempts after
    FREE_UNREACHABLE free sends and is recorded failed; the run ends (it looped for ever)."""
    sends: dict[str, int] = {}

    async def send(item, ctx):
        sends[item.id] = sends.get(item.id, 0) + 1
        await asyncio.sleep(0)
        raise ServerUnreachable("http://x closed the connection without answering")

    async def probe() -> bool:
        return True

    records: list[RequestRecord] = []
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.004, give_up_after=30)
    engine = BatchEngine(_items(3), send, concurrency=2, record=records.append, policy=policy, probe=probe)
    summary = await asyncio.wait_for(engine.run(), 10)
    assert summary.state is EngineState.FINISHED and summary.failed == 3
    assert sorted(r.id for r in records) == ["q0", "q1", "q2"] and not any(r.ok for r in records)
    assert all(n <= FREE_UNREACHABLE + policy.max_attempts for n in sends.values()), sends
    assert "gave up after 3 attempts" in records[0].error["message"]


async def test_a_healthy_probe_does_not_restart_the_give_up_clock():
    async def send(item, ctx):
        await asyncio.sleep(0)
        raise ServerUnreachable("closed the connection without answering")

    async def probe() -> bool:
        return True

    policy = RetryPolicy(max_attempts=10_000, base_delay=0.02, max_delay=0.02, give_up_after=0.5)
    engine = BatchEngine(_items(2), send, concurrency=2, policy=policy, probe=probe)
    t0 = time.monotonic()
    summary = await asyncio.wait_for(engine.run(), 10)
    assert summary.state is EngineState.STOPPED and "unreachable for" in summary.stop_reason
    assert 0.45 <= time.monotonic() - t0 < 3


# -- H3: no connection-pool cap below the concurrency ------------------------------------------------

async def test_256_streams_at_once_reach_the_server_together():
    from r1console.adapters.vllm_client import VllmClient

    async with SimServer(time_scale=0, lengths=SHORT, max_num_seqs=512) as srv:
        srv.set_faults(stall_s=1.5, stall_after_tokens=1)     # every stream is held 1.5 s
        peak = 0

        async def watch():
            nonlocal peak
            while True:
                peak = max(peak, srv.in_flight)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        try:
            async with VllmClient(srv.url, stream_timeout=30) as client:
                results = await asyncio.wait_for(asyncio.gather(*(
                    client.chat_stream([{"role": "user", "content": f"q{i}"}], max_tokens=4).collect()
                    for i in range(256))), 60)
        finally:
            watcher.cancel()
    assert peak == 256 and all(r.complete for r in results)


# -- M6: --resume with other settings ------------------------------------------------------------------

def _input(tmp_path, n: int):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(n)))
    return load_batch_input(inp)


def _plan(tmp_path, batch, **kw) -> BatchPlan:
    return BatchPlan(batch=batch, output=tmp_path / "out.jsonl", output_format="openai", concurrency=2,
                     policy=RetryPolicy(base_delay=0.01, max_delay=0.02), **kw)


async def _partial_run(tmp_path, batch, url: str, stop_after: int, **kw) -> None:
    """A run that journals exactly ``stop_after`` answers: nothing new is sent once that many are
    started (a record is counted only once its journal write is done, and a server at time_scale 0
    answers faster than that, so stopping on the count alone may let every item through)."""
    def on_engine(engine):
        started = 0

        def ev(event):
            nonlocal started
            if event.kind == "started":
                started += 1
                if started == stop_after:
                    engine.pause()
            if event.kind == "finished" and engine.snapshot().done >= stop_after:
                engine.stop()
        engine.subscribe(ev)

    outcome = await run_batch(_plan(tmp_path, batch, **kw), url, on_engine=on_engine)
    assert not outcome.finished and not outcome.output_written
    assert len(read_journal(tmp_path / "out.jsonl.journal.jsonl").done_ids(batch.items)) == stop_after


async def test_resume_with_other_max_tokens_or_another_model_is_refused(tmp_path):
    batch = _input(tmp_path, 8)
    async with SimServer(time_scale=0, lengths=SHORT, max_num_seqs=4) as srv:
        await _partial_run(tmp_path, batch, srv.url, 3, max_tokens=40)
        journal = tmp_path / "out.jsonl.journal.jsonl"
        before = journal.read_bytes()
        assert read_journal(journal).header["settings"] == {
            "max_tokens": 40, "model": srv.served_model_name, "model_root": srv.config.model}
        with pytest.raises(R1Error, match=r"made with other settings: max_tokens 40 \(now 80\)"):
            await run_batch(_plan(tmp_path, batch, max_tokens=80, resume=True), srv.url)
        assert journal.read_bytes() == before                # refused before anything was sent
        seen = srv.requests_seen
    async with SimServer(time_scale=0, lengths=SHORT, served_model_name="other-model") as other:
        with pytest.raises(R1Error, match="model 'deepseek-ai/DeepSeek-R1' \\(now 'other-model'\\)"):
            await run_batch(_plan(tmp_path, batch, max_tokens=40, resume=True), other.url)
        assert other.requests_seen == 0
    async with SimServer(time_scale=0, lengths=SHORT, model="/other/weights",
                         served_model_name="deepseek-ai/DeepSeek-R1") as same_name:
        with pytest.raises(R1Error, match="model_root 'deepseek-ai/DeepSeek-R1' \\(now '/other/weights'\\)"):
            await run_batch(_plan(tmp_path, batch, max_tokens=40, resume=True), same_name.url)
    async with SimServer(time_scale=0, lengths=SHORT) as srv2:
        outcome = await run_batch(_plan(tmp_path, batch, max_tokens=40, resume=True), srv2.url)
        assert outcome.finished and outcome.output_written
        assert srv2.requests_seen == 8 - outcome.summary.skipped and outcome.summary.skipped >= 3
    assert seen >= 3
    ids = [json.loads(x)["custom_id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert ids == [f"q{i}" for i in range(8)]


def test_resume_of_a_finished_run_with_other_max_tokens_is_refused_without_a_server(tmp_path, capsys):
    batch = _input(tmp_path, 2)
    with Journal.open(tmp_path / "o.json.journal.jsonl", resume=False,
                      header={"settings": {"max_tokens": 10, "model": "m", "model_root": "m"}}) as j:
        for item in batch.items:
            j.append(RequestRecord(id=item.id, index=item.index, ok=True, request_hash=item.request_hash(),
                                   content="x"))
    argv = ["batch", batch.source, "-o", str(tmp_path / "o.json"), "--url", "http://127.0.0.1:9", "--resume"]
    assert main(argv + ["--max-tokens", "20"]) != 0
    assert "max_tokens 10 (now 20)" in capsys.readouterr().err
    assert main(argv + ["--max-tokens", "10"]) == 0
    assert (tmp_path / "o.json").exists()


# -- M9: journal writes off the event loop; disk full ------------------------------------------------------

async def test_journal_writes_do_not_block_the_event_loop_and_share_fsyncs(tmp_path):
    journal = Journal.open(tmp_path / "j.jsonl", resume=False)
    real_write = journal._write

    def slow_write(fd, data):          # a slow NFS home: 150 ms per write
        time.sleep(0.15)
        return real_write(fd, data)

    journal._write = slow_write
    gaps: list[float] = []

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        futures = [journal.append_async(rec(i)) for i in range(20)]
        await asyncio.wait_for(asyncio.gather(*futures), 10)
    finally:
        tick.cancel()
        journal.close()
    assert max(gaps) < 0.1, f"the loop stalled {max(gaps):.3f} s"
    assert [r.id for r in read_journal(tmp_path / "j.jsonl").records] == [f"q{i}" for i in range(20)]
    assert journal.fsyncs < 20                 # queued records were committed together


async def test_disk_full_is_a_journal_write_error_and_the_journal_stays_readable(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, resume=False)
    real_write = journal._write
    calls = {"n": 0}

    def full_disk(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data)
        real_write(fd, data[: len(data) // 2])     # a partial write, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    journal._write = full_disk
    await journal.append_async(rec(0))
    with pytest.raises(JournalWriteError, match="cannot write the journal: the disk is full") as info:
        await journal.append_async(rec(1))
    assert "--resume" in str(info.value)
    with pytest.raises(JournalWriteError):       # and every later write: nothing more is sent
        await journal.append_async(rec(2))
    journal.close()
    contents = read_journal(path)               # the half record was cut off again
    assert [r.id for r in contents.records] == ["q0"] and not contents.torn_tail


def _sim_in_thread(**config):
    """A SimServer on its own loop in a thread, for tests that call the synchronous CLI."""
    ready = threading.Event()
    box: dict = {}

    def run():
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        srv = SimServer(**config)
        loop.run_until_complete(srv.start())
        box["srv"] = srv
        ready.set()
        loop.run_forever()
        loop.run_until_complete(srv.stop())
        loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)

    def stop():
        box["loop"].call_soon_threadsafe(box["loop"].stop)
        t.join(10)

    return box["srv"], stop


def test_batch_on_a_full_disk_says_so_and_prints_the_resume_command(tmp_path, capsys, monkeypatch):
    batch = _input(tmp_path, 30)
    out = tmp_path / "o.jsonl"
    opened = Journal.open.__func__

    def open_full(cls, *a, **kw):
        journal = opened(cls, *a, **kw)
        real, n = journal._write, {"k": 0}

        def write(fd, data):
            n["k"] += 1
            if n["k"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data)

        journal._write = write
        return journal

    monkeypatch.setattr(Journal, "open", classmethod(open_full))
    srv, stop = _sim_in_thread(time_scale=0, lengths=SHORT, max_num_seqs=4)
    try:
        argv = ["batch", batch.source, "-o", str(out), "--url", srv.url, "--concurrency", "4"]
        rc = main(argv)
    finally:
        stop()
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "cannot write the journal: the disk is full" in err
    assert "resume with: r1console" in err and "--resume" in err
    contents = read_journal(tmp_path / "o.jsonl.journal.jsonl")
    assert 1 <= len(contents.records) <= 30 and not contents.torn_tail
    assert len({r.id for r in contents.records}) == len(contents.records)
    assert not out.exists()


# -- L3: a private journal ---------------------------------------------------------------------------------

def test_the_journal_is_0600_even_under_umask_022_and_never_a_symlink(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "j.jsonl"
        Journal.open(path, resume=False).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        older = tmp_path / "older.jsonl"            # written by an older r1console: 0644
        older.write_text('{"journal": "r1console-batch", "version": 1}\n')
        older.chmod(0o644)
        Journal.open(older, resume=True).close()
        assert stat.S_IMODE(older.stat().st_mode) == 0o600
        link = tmp_path / "link.jsonl"
        link.symlink_to(tmp_path / "elsewhere.jsonl")
        with pytest.raises(R1Error, match="symbolic link"):
            Journal.open(link, resume=False)
        assert not (tmp_path / "elsewhere.jsonl").exists()
    finally:
        os.umask(old)


async def test_output_that_cannot_be_written_keeps_every_result_for_resume(tmp_path, monkeypatch):
    import r1console.adapters.batch_runner as runner

    batch = _input(tmp_path, 6)
    real = runner.write_output

    def full(path, *a, **kw):
        raise R1Error(f"{path}: cannot write: No space left on device")

    async with SimServer(time_scale=0, lengths=SHORT) as srv:
        monkeypatch.setattr(runner, "write_output", full)
        with pytest.raises(R1Error, match="No space left") as info:
            await run_batch(_plan(tmp_path, batch), srv.url)
        assert "--resume" in str(info.value) and "journal" in str(info.value)
        monkeypatch.setattr(runner, "write_output", real)
        sent = srv.requests_seen
        outcome = await run_batch(_plan(tmp_path, batch, resume=True), srv.url)
        assert outcome.output_written and srv.requests_seen == sent   # nothing sent again
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 6
