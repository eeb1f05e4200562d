"""Bind the batch engine to a vLLM server and the journal: the one ``run a batch file`` routine.

``r1console batch`` and the TUI's batch screen both call :func:`run_batch`; ``r1console sweep``
and the benchmark use :func:`make_sender` with their own engines::

    outcome = await run_batch(plan, base_url, api_key, on_engine=attach_progress)

* every request is a streamed chat completion (``VllmClient.chat_stream``) so TTFT, the first
  answer token, inter-token gaps and E2E are measured per request; each token-carrying chunk
  is reported to the engine (live tok/s, "server is up");
* the journal (``OUTPUT.journal.jsonl``) receives each finished request before the engine
  counts it; with ``resume`` the requests already answered are skipped;
* when every request has a record, OUTPUT is written atomically in the chosen format; a run
  that stopped early (Ctrl-C, server gone) leaves OUTPUT alone and says how to resume;
* ``GET /health`` is the engine's probe while the server is down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from r1console.adapters.vllm_client import VllmClient
from r1console.core.batch_engine import BatchEngine, BatchProgress, EngineState, RetryPolicy, Send, SendContext
from r1console.core.batch_input import BatchInput, BatchItem
from r1console.core.batch_journal import (
    Journal,
    check_settings,
    journal_path_for,
    read_journal,
    write_output,
)
from r1console.core.errors import R1Error
from r1console.core.streaming import ChatResult

DEFAULT_STREAM_TIMEOUT = 600.0


def make_sender(client: VllmClient, *, model: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> Send:
    """A ``send(item, ctx)`` for :class:`BatchEngine` that streams one chat completion.

    ``model``: the model name to send (None: the server's own, from /v1/models) — a batch file's
    ``body.model`` is not used, since a deployment serves one model under its own name.
    ``overrides`` (e.g. ``max_tokens``) win over each item's own parameters.
    """
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}

    async def send(item: BatchItem, ctx: SendContext) -> ChatResult:
        params = {**dict(item.params), **extra}
        first = True
        async with client.chat_stream(list(item.messages), model=model, **params) as stream:
            async for delta in stream:
                if first:
                    ctx.connected()
                    first = False
                if delta.has_token:
                    ctx.chunk(answer=bool(delta.content))
        return stream.result

    return send


@dataclass
class BatchPlan:
    """What to run: the validated input, where results go, and how hard to push."""

    batch: BatchInput
    output: Path
    output_format: str
    concurrency: int
    resume: bool = False
    max_tokens: int | None = None
    model: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT

    @property
    def journal_path(self) -> Path:
        return journal_path_for(self.output)


@dataclass
class BatchOutcome:
    summary: BatchProgress
    journal_path: Path
    output_written: bool
    failed_ids: list[str]

    @property
    def finished(self) -> bool:
        return self.summary.state is EngineState.FINISHED


def run_settings(plan: BatchPlan, model: str | None, model_root: str | None = None) -> dict[str, Any]:
    """What, besides each item's own request, decides its answer: kept in the journal header and
    compared on ``--resume`` (audit M6). ``model_root``: the weights the server loaded
    (``root`` in /v1/models), so another deployment under the same name is noticed too."""
    return {"max_tokens": plan.max_tokens, "model": model, "model_root": model_root}


def _all_answered(journal: Path, items) -> bool:
    try:
        contents = read_journal(journal)
    except Exception:  # noqa: BLE001 — Journal.open reports a bad journal properly
        return False
    return len(contents.done_ids(items)) == len(items)


async def run_batch(plan: BatchPlan, base_url: str, api_key: str | None = None, *,
                    on_engine: Callable[[BatchEngine], None] | None = None,
                    client: VllmClient | None = None) -> BatchOutcome:
    """Run ``plan`` against the server at ``base_url``. ``on_engine(engine)`` is called once the
    engine exists (before any request), to attach progress displays and stop handlers."""
    items = plan.batch.items
    own = client is None
    http = client or VllmClient(base_url, api_key, stream_timeout=plan.stream_timeout)
    try:
        # Which model answers decides whether a --resume may keep the journal's answers, so it is
        # known before the journal is opened (unless every item is answered already).
        model = plan.model
        served = None
        if not (plan.resume and _all_answered(plan.journal_path, items)):
            served = (await http.models() or [None])[0]   # checks URL and key before the first prompt
            if model is None:
                model = await http.model_id()
        settings = run_settings(plan, model, served.root if served is not None else None)
        header = {"input": plan.batch.source, "input_format": plan.batch.format,
                  "output": str(plan.output), "output_format": plan.output_format,
                  "settings": settings}
        with Journal.open(plan.journal_path, resume=plan.resume, header=header) as journal:
            if journal.contents.records:
                unknown = ()
                if served is None:   # every item answered, server not asked: compare what is known
                    unknown = ("model_root",) if plan.model else ("model", "model_root")
                check_settings(plan.journal_path, journal.contents.header.get("settings"), settings,
                               unknown=unknown)
            done = journal.contents.done_ids(items)
            send = make_sender(http, model=model, overrides={"max_tokens": plan.max_tokens})
            engine = BatchEngine(items, send, concurrency=plan.concurrency, record=journal.append_async,
                                 skip_ids=done, policy=plan.policy, probe=http.is_healthy)
            if on_engine is not None:
                on_engine(engine)
            summary = await engine.run()
            finals = journal.contents.finals(items)
    finally:
        if own:
            await asyncio.shield(http.aclose())
    written = False
    if summary.state is EngineState.FINISHED and len(finals) == len(items):
        try:
            write_output(plan.output, plan.output_format, items, finals)
        except R1Error as err:     # e.g. the disk filled up at the very end
            err.hint = err.hint or (f"every result is kept in {plan.journal_path}; fix that, then run the "
                                    "same command with --resume to write the output (nothing is sent again)")
            raise
        written = True
    failed = [i.id for i in items if i.id in finals and not finals[i.id].ok]
    return BatchOutcome(summary=summary, journal_path=plan.journal_path, output_written=written,
                        failed_ids=failed)
