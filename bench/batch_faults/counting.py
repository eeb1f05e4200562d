"""Input files, counting the output and the journal, waiting for progress, and :class:`Row`: a row
function run ``runs`` times, each in a fresh temporary directory, summed into one result dict."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from .procs import BatchProcess


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


def write_openai_input(path: Path, n: int) -> list[str]:
    """OpenAI batch JSONL at temperature 0: the simulated server's answers are then reproducible."""
    ids = [f"r{i:04d}" for i in range(n)]
    path.write_text("".join(json.dumps({"custom_id": i, "method": "POST", "url": "/v1/chat/completions",
                                        "body": {"messages": [{"role": "user", "content": f"Request {i}: why?"}],
                                                 "temperature": 0}}) + "\n" for i in ids), encoding="utf-8")
    return ids


def answers(out: Path) -> dict[str, tuple]:
    res = {}
    for raw in out.read_text(encoding="utf-8").splitlines():
        x = json.loads(raw)
        body = (x.get("response") or {}).get("body") or {}
        choice = (body.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        res[x["custom_id"]] = (msg.get("reasoning"), msg.get("content"), choice.get("finish_reason"))
    return res


def fingerprint(messages: list[dict]) -> str:
    import hashlib

    raw = json.dumps(["/v1/chat/completions", messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]



async def clean_run(inp: Path, out: Path, url: str, concurrency: int, log: Path) -> None:
    """The batch against a server without faults (temperature 0): the answers a faulty run must equal."""
    clean = BatchProcess(["batch", str(inp), "-o", str(out), "--url", url, "--concurrency", str(concurrency),
                          "--max-tokens", "24"], log)
    await clean.start()
    if await clean.wait(120) != 0:
        raise RuntimeError(f"the clean run failed: {clean.text()[-1000:]}")


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
