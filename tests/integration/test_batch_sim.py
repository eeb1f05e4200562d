"""`r1console batch` against the simulated vLLM server (in-process, real HTTP on 127.0.0.1).

The reliability test: hundreds of prompts; the server is killed and restarted several times
during the run; the client is interrupted with Ctrl-C, resumed, SIGKILLed, resumed again. The
final output must hold every prompt exactly once, and no request that was already recorded may
ever reach a server again (checked with the servers' own request records).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from r1console.adapters.batch_runner import BatchPlan, run_batch
from r1console.core.batch_engine import EngineState, RetryPolicy
from r1console.core.batch_input import load_batch_input
from r1console.core.batch_journal import read_journal
from r1console.demo.sim_engine import LengthModel
from r1console.demo.sim_server import SimServer

REPO = Path(__file__).resolve().parents[2]
SHORT = LengthModel(reasoning_median=60, reasoning_sigma=0.9, reasoning_min=4, reasoning_max=2000,
                    answer_median=20, answer_sigma=0.6, answer_min=2, answer_max=200)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_seed_input(path: Path, n: int) -> list[str]:
    tags = [f"q{i}" for i in range(1, n + 1)]
    doc = {"system_prompt": "You are a careful physicist.",
           "user_prompts": [{"question_tag": t, "content": f"Question {t}: why does the sky look blue "
                                                             f"at noon number {t}?"} for t in tags]}
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return tags


def sim_fingerprint(messages) -> str:
    """The simulated server's request fingerprint (sha256 of [path, messages])."""
    raw = json.dumps(["/v1/chat/completions", list(messages)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def ok_records(journal: Path) -> int:
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return 0
    return data.count(b'"ok":true')


class Sims:
    """The simulated server on one fixed port, killed and restarted on demand."""

    def __init__(self, **config) -> None:
        self.port = free_port()
        self.config = config
        self.instances: list[SimServer] = []
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> SimServer:
        srv = SimServer(port=self.port, seed=len(self.instances), **self.config)
        await srv.start()
        self.instances.append(srv)
        return srv

    async def kill_and_restart(self, down_s: float) -> None:
        await self.instances[-1].stop()   # aborts every connection, like a dying server
        await asyncio.sleep(down_s)
        await self.start()
        self.restarts += 1

    async def stop(self) -> None:
        await self.instances[-1].stop()

    def records(self) -> list[dict]:
        return [r for srv in self.instances for r in srv.records()]


async def wait_for(predicate, what: str, proc=None, timeout: float = 90.0, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.returncode is not None:
            detail = logs.read_text() if logs and logs.exists() else ""
            pytest.fail(f"client exited ({proc.returncode}) before {what}\n{detail[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_server_kills_and_client_interrupts_lose_nothing_and_duplicate_nothing(tmp_path):
    n = 300
    inp = tmp_path / "input_prompts.json"
    out = tmp_path / "output_responses.json"
    journal = tmp_path / "output_responses.json.journal.jsonl"
    tags = write_seed_input(inp, n)
    sims = Sims(max_num_seqs=32, time_scale=0.01, lengths=SHORT, vllm_version="0.8.5.post1")
    await sims.start()
    argv = [sys.executable, "-m", "r1console", "batch", str(inp), "-o", str(out), "--url", sims.url,
            "--concurrency", "32", "--max-tokens", "400", "--give-up-after", "60"]
    logs: list[Path] = []

    async def client(extra: list[str]):
        log = tmp_path / f"client{len(logs)}.log"
        logs.append(log)
        fh = log.open("wb")
        proc = await asyncio.create_subprocess_exec(*argv, *extra, cwd=REPO, stdout=fh, stderr=fh,
                                                    stdin=asyncio.subprocess.DEVNULL)
        fh.close()
        return proc, log

    try:
        # Run 1: two server deaths, then Ctrl-C.
        proc, log = await client([])
        await wait_for(lambda: ok_records(journal) >= 40, "40 results", proc, logs=log)
        await sims.kill_and_restart(0.5)
        await wait_for(lambda: ok_records(journal) >= 80, "80 results", proc, logs=log)
        await sims.kill_and_restart(0.2)
        await wait_for(lambda: ok_records(journal) >= 110, "110 results", proc, logs=log)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 130, log.read_text()[-2000:]
        text = log.read_text()
        assert "resume with: r1console batch" in text and "--resume" in text
        assert not out.exists()          # output only when complete

        # Run 2 (--resume): a server death, then the client is SIGKILLed (a crash).
        proc, log = await client(["--resume"])
        await wait_for(lambda: ok_records(journal) >= 160, "160 results", proc, logs=log)
        await sims.kill_and_restart(1.0)
        await wait_for(lambda: ok_records(journal) >= 200, "200 results", proc, logs=log)
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL

        # Run 3 (--resume): one more server death, then to the end.
        proc, log = await client(["--resume"])
        await wait_for(lambda: ok_records(journal) >= 240, "240 results", proc, logs=log)
        await sims.kill_and_restart(0.3)
        rc = await asyncio.wait_for(proc.wait(), 120)
        assert rc == 0, log.read_text()[-3000:]
    finally:
        await sims.stop()

    assert sims.restarts == 4
    # The output: every prompt exactly once, in input order, all answered.
    result = json.loads(out.read_text())
    assert [r["question_tag"] for r in result] == tags
    assert all(not r["response"]["final"] or not r["response"]["final"].startswith("[ERROR]") for r in result)
    assert all(r["response"]["reasoning"] for r in result)
    assert sum(1 for r in result if r["response"]["final"]) > n * 0.8   # most finished their answer

    # The journal: one ok record per prompt, no failures, no duplicates.
    contents = read_journal(journal)
    ok = [r for r in contents.records if r.ok]
    assert sorted(r.id for r in ok) == sorted(tags)
    assert not [r for r in contents.records if not r.ok]

    # The servers: every prompt reached one; a recorded prompt never reached a server again.
    batch = load_batch_input(inp)
    fp_of = {item.id: sim_fingerprint(item.messages) for item in batch.items}
    records = sims.records()
    seen_fps = {r["fingerprint"] for r in records if r["fingerprint"]}
    assert set(fp_of.values()) <= seen_fps            # (also proves the fingerprint formula)
    # Completed, or its whole reply went out before a kill cut the tail (usage, [DONE]): the
    # client has the complete answer then (finish_reason) and rightly records it.
    completed = {r["fingerprint"] for r in records if r["status"] == "completed" or r["finish_reason"]}
    assert set(fp_of.values()) <= completed
    finished_at = {r.id: r.finished_at for r in ok}
    late = [(tag, r["wall_time"] - finished_at[tag]) for tag in tags for r in records
            if r["fingerprint"] == fp_of[tag] and r["wall_time"] > finished_at[tag]]
    assert late == [], f"recorded prompts were sent again: {late[:5]}"
    resent = sum(srv.state()["duplicates"] for srv in sims.instances)
    print(f"\n{n} prompts, {sims.restarts} server restarts, 2 client interruptions; "
          f"{len(records)} requests reached the servers ({resent} re-sends of cut or cancelled requests); "
          f"journal {len(contents.records)} records")


async def test_in_process_run_with_faults_retries_and_records_once(tmp_path):
    """The engine as the TUI drives it (run_batch in-process): 5xx answers, dropped streams and
    stalls are retried; each prompt is recorded once and the OpenAI output is complete."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                       "body": {"model": "whatever", "messages": [
                                           {"role": "user", "content": f"prompt {i}"}]}}) + "\n"
                           for i in range(60)))
    out = tmp_path / "out.jsonl"
    async with SimServer(max_num_seqs=8, time_scale=0.005, lengths=SHORT, vllm_version="0.32.0",
                         api_key="sekret", seed=11) as srv:
        srv.set_faults(status_5xx_rate=0.15, status_5xx_code=503, limit=12)
        plan = BatchPlan(batch=load_batch_input(inp), output=out, output_format="openai", concurrency=8,
                         max_tokens=300, policy=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05))
        engines = []

        def on_engine(engine):
            engines.append(engine)

            def flip(event):   # after 20 results, switch to dropping streams mid-way
                if event.kind == "finished" and engine.snapshot().done == 20:
                    srv.set_faults(status_5xx_rate=0.0, drop_after_tokens=5, drop_rate=0.2, limit=8)

            engine.subscribe(flip)

        outcome = await run_batch(plan, srv.url, "sekret", on_engine=on_engine)
        state = srv.state()
    assert outcome.finished and outcome.output_written and outcome.failed_ids == []
    summary = outcome.summary
    assert summary.ok == 60 and summary.retries >= 10
    assert state["faults_injected"]["status_5xx"] >= 1 and state["faults_injected"]["dropped"] >= 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == [f"r{i}" for i in range(60)]
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in lines)
    body = lines[0]["response"]["body"]
    assert body["model"] == srv.served_model_name          # the served model, not the file's
    assert body["choices"][0]["message"]["reasoning"]
    ids = [r.id for r in read_journal(tmp_path / "out.jsonl.journal.jsonl").records]
    assert sorted(ids) == sorted(f"r{i}" for i in range(60))   # once each, retries included
    assert engines[0].state is EngineState.FINISHED
