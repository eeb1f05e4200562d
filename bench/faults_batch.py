"""Fault rows for `r1console batch` (issue 14 item 8; the audit's plan rows 7, 8, 9 and "server
dies mid-batch"), against the simulated vLLM server (`r1console sim-server`, its own process).

    python3 bench/faults_batch.py [--runs N] [--only WORD]

Each row is an object with ``name``, ``area = "batch"`` and ``async run(runs) -> dict`` (keys
fault, runs, lost, duplicated, recovery_s, passed, detail); ``bench/faults.py`` imports every
``bench/faults_*.py`` and prints one table. Everything is real processes and real HTTP on
127.0.0.1: the sim server is SIGKILLed and restarted on the same port, the batch client is
SIGKILLed and resumed, results are counted from the output file the client wrote.

Rows
* **storm** — 1,000 requests; the server answers 10 % with 500, resets 5 % mid-stream, stalls 2 %
  (longer than the client's ``--timeout``), is SIGKILLed and restarted 3 times; the batch process
  is SIGKILLed once and ``--resume``d. Pass: exactly 1,000 results in the output, each id once,
  all answered, no id with two ok records in the journal, and the answers (temperature 0) equal
  those of a clean run against a server without faults. recovery_s: the longest time from a
  restart (server listening again, or the resumed client process started) to the next new result.
* **c256** — concurrency 256, every stream held 2-8 s by the server (a stall after the first
  token, uniform spread), 768 requests. Pass: 0 retries and 0 failures (no pool timeout, no other error), and
  ≥ 250 requests in flight: at the server (sampled ``/_sim/state`` ``in_flight`` while requests
  were still unsent: mean and peak) and at the client (the engine's time-integral while work
  was waiting).
* **client-kills** — the client SIGKILLed at 10 random moments and resumed each time (temperature
  0, so answers are reproducible). Pass: the output equals a clean run's, every id once, at most
  ``concurrency`` extra sends per kill, and no request sent again after it was recorded (the
  server's own request log against the journal's times).
* **disk-full** — the kernel refuses the journal's writes part-way through the run
  (``RLIMIT_FSIZE`` on the client: a short write, then EFBIG — the code path of ENOSPC on a full
  disk, without needing a tiny filesystem). Pass: exit 1 with "cannot write the journal" and
  the resume command, no traceback, the journal parses with no torn line; the printed command,
  run without the limit, completes with every id once.
* **server-dies** — the server dies for good mid-batch; the client gives up (``--give-up-after
  2``) and prints its resume command; the server comes back; that exact command completes.
  Pass: every id once in the output, none lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

REPO = Path(__file__).resolve().parents[1]


# -- processes -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("VLLM_API_KEY", None)
    return env


async def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A minimal GET on 127.0.0.1 (no client library: this measures the client, not with it)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class SimProcess:
    """`r1console sim-server` in its own process on a fixed port: SIGKILL and restart on demand."""

    def __init__(self, port: int, args: list[str], log: Path, *, seed: int | None = None) -> None:
        self.port = port
        self.args = args
        self.log = log
        self.seed = seed            # None: another seed per start (other fault choices)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.ready_at: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        fh = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "r1console", "sim-server", "--port", str(self.port), "--quiet",
            "--seed", str(self.starts if self.seed is None else self.seed), *self.args, cwd=REPO, env=_env(), stdout=fh, stderr=fh,
            stdin=asyncio.subprocess.DEVNULL)
        fh.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (await http_get(self.port, "/health"))[0] == 200:
                    break
            except (OSError, asyncio.TimeoutError, IndexError, ValueError):
                pass
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sim-server did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        self.ready_at.append(time.monotonic())

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def state(self) -> dict[str, Any]:
        status, body = await http_get(self.port, "/_sim/state")
        return json.loads(body) if status == 200 else {}


class BatchProcess:
    """`r1console batch` in its own process."""

    def __init__(self, argv: list[str], log: Path, *, max_file_bytes: int | None = None) -> None:
        self.argv = argv
        self.log = log
        self.max_file_bytes = max_file_bytes   # RLIMIT_FSIZE: writes past it fail (EFBIG)
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    def _limits(self) -> None:
        import resource

        assert self.max_file_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    async def start(self) -> None:
        fh = self.log.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "r1console", *self.argv, cwd=REPO, env=_env(), stdout=fh, stderr=fh,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=self._limits if self.max_file_bytes else None)
        fh.close()
        self.started_at = time.monotonic()

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"batch did not finish within {timeout:g} s: {self.text()[-2000:]}") from None

    async def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# -- counting ------------------------------------------------------------------------------------------

def write_input(path: Path, n: int) -> list[str]:
    ids = [f"r{i:04d}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Request {i}: explain why the sky is blue."}) + "\n"
                            for i in ids), encoding="utf-8")
    return ids


def journal_ok(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"ok":true')
    except FileNotFoundError:
        return 0


def count_output(out: Path, ids: list[str], journal: Path) -> dict[str, Any]:
    """Lost / duplicated / failed, counted from the output file (and the journal's ok records)."""
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()] if out.exists() else []
    got = [x["custom_id"] for x in lines]
    counts: dict[str, int] = {}
    for i in got:
        counts[i] = counts.get(i, 0) + 1
    ok_ids: dict[str, int] = {}
    if journal.exists():
        for raw in journal.read_text(encoding="utf-8").splitlines()[1:]:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if rec.get("ok"):
                ok_ids[rec["id"]] = ok_ids.get(rec["id"], 0) + 1
    failed = sum(1 for x in lines if x.get("error") is not None)
    return {
        "results": len(lines),
        "lost": sum(1 for i in ids if i not in counts),
        "duplicated": sum(c - 1 for c in counts.values() if c > 1)
                      + sum(c - 1 for c in ok_ids.values() if c > 1),
        "failed": failed,
        "in_order": got == ids,
    }


async def until(pred: Callable[[], bool], what: str, batch: BatchProcess | None = None,
                timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if batch is not None and batch.proc is not None and batch.proc.returncode is not None:
            raise RuntimeError(f"batch exited ({batch.proc.returncode}) before {what}: {batch.text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def next_result_after(journal: Path, since_ok: int, t0: float, batch: BatchProcess,
                            timeout: float = 60.0) -> float:
    await until(lambda: journal_ok(journal) > since_ok, "a new result", batch, timeout)
    return time.monotonic() - t0


# -- the rows ------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    func: Callable[[int, Path], Awaitable[dict[str, Any]]]
    area: str = "batch"
    cheap: bool = True          # also runs as a test (tests/integration/test_batch_faults.py)

    async def run(self, runs: int = 1) -> dict[str, Any]:
        import tempfile

        lost = dup = 0
        recovery = 0.0
        passed = True
        details = []
        for k in range(runs):
            with tempfile.TemporaryDirectory(prefix="r1c-faults-") as tmp:
                try:
                    res = await self.func(k, Path(tmp))
                except Exception as err:  # noqa: BLE001 — a crashed row is a failed row, with why
                    res = {"lost": None, "duplicated": None, "recovery_s": None, "passed": False,
                           "detail": f"error: {err}"[:400]}
            lost += res["lost"] or 0
            dup += res["duplicated"] or 0
            recovery = max(recovery, res["recovery_s"] or 0.0)
            passed = passed and bool(res["passed"])
            details.append(res["detail"])
        return {"fault": self.name, "runs": runs, "lost": lost, "duplicated": dup,
                "recovery_s": round(recovery, 2), "passed": passed, "detail": " | ".join(details)}


STORM_FAULTS = ["--status-5xx-rate", "0.10",
                "--drop-after-tokens", "3", "--drop-rate", f"{0.05 / 0.90:.4f}",
                "--stall-s", "6", "--stall-after-tokens", "2", "--stall-rate", f"{0.02 / (0.90 * (1 - 0.05 / 0.90)):.4f}"]


async def storm(k: int, tmp: Path, n: int = 1000) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_openai_input(inp, n)            # temperature 0: answers comparable with a clean run
    clean_out = tmp / "clean.jsonl"
    clean_sim = SimProcess(free_port(), ["--max-num-seqs", "256", "--time-scale", "0"], tmp / "clean-sim.log",
                           seed=k)
    await clean_sim.start()
    try:
        clean = BatchProcess(["batch", str(inp), "-o", str(clean_out), "--url", clean_sim.url, "--concurrency",
                              "64", "--max-tokens", "24"], tmp / "clean.log")
        await clean.start()
        if await clean.wait(120) != 0:
            raise RuntimeError(f"the clean run failed: {clean.text()[-1000:]}")
    finally:
        await clean_sim.kill()
    sim = SimProcess(free_port(), ["--max-num-seqs", "256", "--time-scale", "0.05", *STORM_FAULTS],
                     tmp / "sim.log", seed=k)
    argv = ["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "64", "--max-tokens", "24",
            "--timeout", "1.5", "--max-attempts", "10", "--give-up-after", "60"]
    recoveries: list[float] = []
    faults = {"status_5xx": 0, "dropped": 0, "stalled": 0}

    async def kill_server_and_restart(batch: BatchProcess) -> None:
        st = await sim.state()
        for key in faults:
            faults[key] += st.get("faults_injected", {}).get(key, 0)
        await sim.kill()
        await asyncio.sleep(0.3)
        before = journal_ok(journal)
        await sim.start()
        recoveries.append(await next_result_after(journal, before, sim.ready_at[-1], batch))

    await sim.start()
    try:
        b1 = BatchProcess(argv, tmp / "batch1.log")
        await b1.start()
        await until(lambda: journal_ok(journal) >= n * 0.15, "15 % done", b1)
        await kill_server_and_restart(b1)
        await until(lambda: journal_ok(journal) >= n * 0.35, "35 % done", b1)
        await kill_server_and_restart(b1)
        await until(lambda: journal_ok(journal) >= n * 0.50, "50 % done", b1)
        await b1.sigkill()                                   # the client crashes
        b2 = BatchProcess(argv + ["--resume"], tmp / "batch2.log")
        before = journal_ok(journal)
        await b2.start()
        recoveries.append(await next_result_after(journal, before, b2.started_at, b2))
        await until(lambda: journal_ok(journal) >= n * 0.75, "75 % done", b2)
        await kill_server_and_restart(b2)
        rc = await b2.wait(300)
        st = await sim.state()
        for key in faults:
            faults[key] += st.get("faults_injected", {}).get(key, 0)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    same = out.exists() and _answers(out) == _answers(clean_out)
    passed = (rc == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0
              and c["failed"] == 0 and c["in_order"] and sim.starts == 4 and same)
    detail = (f"{c['results']} results ({c['failed']} failed), answers {'==' if same else '!='} a clean "
              f"run's, rc {rc}; injected {faults['status_5xx']} 5xx, "
              f"{faults['dropped']} resets, {faults['stalled']} stalls; {sim.starts - 1} server kills, "
              f"1 client SIGKILL + resume")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": max(recoveries),
            "passed": passed, "detail": detail}


async def c256(k: int, tmp: Path, n: int = 768, concurrency: int = 256) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "1024", "--time-scale", "0", "--stall-s", "2",
                                   "--stall-spread-s", "6", "--stall-after-tokens", "1"], tmp / "sim.log")
    await sim.start()
    samples: list[tuple[int, int]] = []      # (in_flight, requests_seen) at the server
    try:
        batch = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency",
                              str(concurrency), "--max-tokens", "8", "--json"], tmp / "batch.log")
        await batch.start()
        while batch.proc is not None and batch.proc.returncode is None:
            try:
                st = await sim.state()
                samples.append((st["in_flight"], st["requests_seen"]))
            except (OSError, asyncio.TimeoutError, KeyError, ValueError):
                pass
            await asyncio.sleep(0.05)
        rc = await batch.wait(120)
    finally:
        await sim.kill()
    text = batch.text()
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1]) if "{" in text else {}
    c = count_output(out, ids, journal)
    # "While work was waiting": the server had not yet seen every request; from the first full sample.
    backlog = [f for f, seen in samples if seen < n]
    first_full = next((i for i, f in enumerate(backlog) if f >= concurrency * 0.9), len(backlog))
    backlog = backlog[first_full:]
    server_mean = sum(backlog) / len(backlog) if backlog else 0.0
    server_peak = max((f for f, _ in samples), default=0)
    occ = summary.get("occupancy_backlogged") or 0.0
    client_mean = occ * concurrency
    retries = summary.get("requests", {}).get("retries")
    pool_timeouts = len(re.findall(r"PoolTimeout|pool timeout|waiting for a connection", text))
    passed = (rc == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["failed"] == 0
              and retries == 0 and pool_timeouts == 0 and server_peak >= 250 and server_mean >= 250
              and client_mean >= 250)
    detail = (f"c={concurrency}, {n} requests held 2-8 s: {pool_timeouts} pool timeouts, {retries} retries, "
              f"{c['failed']} failed; in flight at the server mean {server_mean:.1f} / peak {server_peak} "
              f"({len(backlog)} samples while work waited), at the client {client_mean:.1f} "
              f"(occupancy {occ:.3f})")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": None, "passed": passed,
            "detail": detail}


async def server_dies(k: int, tmp: Path, n: int = 300) -> dict[str, Any]:
    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.05"], tmp / "sim.log")
    await sim.start()
    try:
        b1 = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "32",
                           "--max-tokens", "24", "--give-up-after", "2"], tmp / "batch1.log")
        await b1.start()
        await until(lambda: journal_ok(journal) >= n * 0.4, "40 % done", b1)
        await sim.kill()                                     # and it stays dead
        rc1 = await b1.wait(60)
        text = b1.text()
        m = re.search(r"resume with: (.+)", text)
        if rc1 != 1 or m is None or out.exists():
            return {"lost": None, "duplicated": None, "recovery_s": None, "passed": False,
                    "detail": f"the first run did not stop resumably (rc {rc1}): {text[-300:]}"}
        resume = shlex.split(m.group(1))
        assert resume[0] == "r1console" and "--resume" in resume
        done_before = journal_ok(journal)
        await sim.start()
        b2 = BatchProcess(resume[1:], tmp / "batch2.log")
        await b2.start()
        recovery = await next_result_after(journal, done_before, sim.ready_at[-1], b2)
        rc2 = await b2.wait(120)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    passed = rc2 == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["in_order"]
    detail = (f"{done_before}/{n} done when the server died; the client stopped (rc {rc1}) and printed its "
              f"resume command; after the restart that command finished (rc {rc2}) with {c['results']} results")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": recovery, "passed": passed,
            "detail": detail}


def write_openai_input(path: Path, n: int) -> list[str]:
    """OpenAI batch JSONL at temperature 0: the simulated server's answers are then reproducible."""
    ids = [f"r{i:04d}" for i in range(n)]
    path.write_text("".join(json.dumps({"custom_id": i, "method": "POST", "url": "/v1/chat/completions",
                                        "body": {"messages": [{"role": "user", "content": f"Request {i}: why?"}],
                                                 "temperature": 0}}) + "\n" for i in ids), encoding="utf-8")
    return ids


def _answers(out: Path) -> dict[str, tuple]:
    res = {}
    for raw in out.read_text(encoding="utf-8").splitlines():
        x = json.loads(raw)
        body = (x.get("response") or {}).get("body") or {}
        choice = (body.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        res[x["custom_id"]] = (msg.get("reasoning"), msg.get("content"), choice.get("finish_reason"))
    return res


def _fingerprint(messages: list[dict]) -> str:
    import hashlib

    raw = json.dumps(["/v1/chat/completions", messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


async def client_kills(k: int, tmp: Path, n: int = 400, kills: int = 10, concurrency: int = 16) -> dict[str, Any]:
    """The batch client SIGKILLed at ``kills`` random moments (mid-stream, mid-journal-write, at
    start-up) and resumed each time. Pass: the output equals a clean run's (temperature 0), every
    id once; at most ``concurrency`` extra sends per kill; no recorded request sent again."""
    import random

    rng = random.Random(f"kills|{k}")
    inp = tmp / "in.jsonl"
    ids = write_openai_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.02"], tmp / "sim.log")
    await sim.start()
    try:
        clean_out = tmp / "clean.jsonl"
        clean = BatchProcess(["batch", str(inp), "-o", str(clean_out), "--url", sim.url, "--concurrency",
                              str(concurrency), "--max-tokens", "24"], tmp / "clean.log")
        await clean.start()
        if await clean.wait(120) != 0:
            raise RuntimeError(f"the clean run failed: {clean.text()[-1000:]}")
        st0 = await sim.state()
        out = tmp / "out.jsonl"
        journal = tmp / "out.jsonl.journal.jsonl"
        argv = ["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", str(concurrency),
                "--max-tokens", "24"]
        recoveries = []
        for kill in range(kills):
            b = BatchProcess(argv + (["--resume"] if kill else []), tmp / f"run{kill}.log")
            before = journal_ok(journal)
            await b.start()
            if kill and rng.random() < 0.8:   # mostly once results flow; sometimes during start-up
                recoveries.append(await next_result_after(journal, before, b.started_at, b))
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            if b.proc is not None and b.proc.returncode is None:
                await b.sigkill()
        final = BatchProcess(argv + ["--resume"], tmp / "final.log")
        await final.start()
        rc = await final.wait(120)
        st1 = await sim.state()
        status, body = await http_get(sim.port, "/_sim/requests")
        server_records = json.loads(body)["requests"] if status == 200 else []
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    same = _answers(out) == _answers(clean_out) if out.exists() else False
    sends = st1["requests_seen"] - st0["requests_seen"]
    extra = sends - n
    from r1console.core.batch_journal import read_journal

    recorded_at = {r.id: r.finished_at for r in read_journal(journal).records if r.ok}
    fp = {i: _fingerprint([{"role": "user", "content": f"Request {i}: why?"}]) for i in ids}
    by_fp = {v: i for i, v in fp.items()}
    t_chaos = min((r["wall_time"] for r in server_records[-sends:]), default=0) if sends > 0 else 0
    late = [r for r in server_records[-sends:] if r.get("fingerprint") in by_fp
            and r["wall_time"] > (recorded_at.get(by_fp[r["fingerprint"]]) or float("inf"))
            and r["wall_time"] >= t_chaos]
    passed = (rc == 0 and same and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0
              and extra <= kills * concurrency and not late)
    detail = (f"{kills} SIGKILLs + resumes, c={concurrency}: output {'==' if same else '!='} clean run, "
              f"{c['results']} results; {extra} extra sends ({extra / kills:.1f} per kill, bound {concurrency}); "
              f"{len(late)} recorded requests sent again")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": max(recoveries, default=None),
            "passed": passed, "detail": detail}


async def disk_full(k: int, tmp: Path, n: int = 400) -> dict[str, Any]:
    """The kernel refuses the journal's writes part-way (RLIMIT_FSIZE: a short write, then EFBIG,
    the same path as ENOSPC on a full disk): a clear error with the resume command, a journal
    that still parses (the half record cut off), and after "freeing space" that command loses 0."""
    from r1console.core.batch_journal import read_journal

    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    journal = tmp / "out.jsonl.journal.jsonl"
    ids = write_input(inp, n)
    sim = SimProcess(free_port(), ["--max-num-seqs", "64", "--time-scale", "0.02"], tmp / "sim.log")
    await sim.start()
    try:
        b1 = BatchProcess(["batch", str(inp), "-o", str(out), "--url", sim.url, "--concurrency", "32",
                           "--max-tokens", "24"], tmp / "batch1.log", max_file_bytes=48 * 1024)
        await b1.start()
        rc1 = await b1.wait(120)
        text = b1.text()
        kept = read_journal(journal)                 # raises if a damaged line was left behind
        m = re.search(r"resume with: (.+)", text)
        clear = ("cannot write the journal" in text and "Traceback" not in text and m is not None
                 and not kept.torn_tail and 0 < len(kept.records) < n and not out.exists())
        if rc1 != 1 or not clear:
            return {"lost": None, "duplicated": None, "recovery_s": None, "passed": False,
                    "detail": f"first run rc {rc1}, {len(kept.records)} records: {text[-400:]}"}
        resume = shlex.split(m.group(1))
        b2 = BatchProcess(resume[1:], tmp / "batch2.log")       # space freed: no limit
        await b2.start()
        recovery = await next_result_after(journal, len(kept.records), b2.started_at, b2)
        rc2 = await b2.wait(120)
    finally:
        await sim.kill()
    c = count_output(out, ids, journal)
    passed = rc2 == 0 and c["results"] == n and c["lost"] == 0 and c["duplicated"] == 0 and c["in_order"]
    err_line = next((x for x in text.splitlines() if "cannot write the journal" in x), "")
    detail = (f"{len(kept.records)}/{n} recorded before the journal write failed (rc {rc1}: "
              f"{err_line.strip()[:90]}); journal parses, no torn line; the printed resume command "
              f"finished (rc {rc2}) with {c['results']} results")
    return {"lost": c["lost"], "duplicated": c["duplicated"], "recovery_s": recovery, "passed": passed,
            "detail": detail}


ROWS = [
    Row("1,000-request batch: 10% 5xx, 5% resets, 2% stalls, 3 server kills, client SIGKILL + --resume",
        storm),
    Row("batch at concurrency 256 (streams held 2-8 s): pool timeouts, requests in flight", c256),
    Row("server dies mid-batch for good: client stops, printed resume command completes", server_dies),
    Row("batch client SIGKILLed at 10 random points, resumed each time: output == clean run",
        client_kills, cheap=False),   # ~45 s: bench only
    Row("journal write refused part-way (file size limit, as a full disk): clear error, resume loses 0",
        disk_full),
]


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'fault':100s} {'runs':>4s} {'lost':>5s} {'dup':>5s} {'recovery s':>10s}  result")
    for r in results:
        rec = "-" if not r["recovery_s"] else f"{r['recovery_s']:.2f}"
        print(f"{r['fault'][:100]:100s} {r['runs']:4d} {str(r['lost']):>5s} {str(r['duplicated']):>5s} "
              f"{rec:>10s}  {'PASS' if r['passed'] else 'FAIL'}")
        print(f"    {r['detail']}")


async def _main(runs: int, only: str | None) -> int:
    results = []
    for row in ROWS:
        if only and only.lower() not in row.name.lower():
            continue
        t0 = time.monotonic()
        res = await row.run(runs)
        print(f"[{time.monotonic() - t0:.1f} s] {row.name}: {'PASS' if res['passed'] else 'FAIL'}",
              file=sys.stderr, flush=True)
        results.append(res)
    print_table(results)
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="batch fault rows against the sim server")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", help="run only the rows whose name contains this")
    a = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(asyncio.run(_main(a.runs, a.only)))
