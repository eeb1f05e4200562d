"""The batch screen: a prompt file through the server with the sliding-window engine.

It drives the same ``run_batch`` as ``r1console batch`` (adapters/batch_runner.py): journal,
resume, atomic output. The engine's snapshot is polled twice a second for the live view.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, ProgressBar, Sparkline, Static

from r1console.adapters.batch_runner import BatchPlan, run_batch
from r1console.core.batch_engine import BatchProgress
from r1console.core.batch_input import load_batch_input
from r1console.core.batch_journal import default_output_format
from r1console.core.errors import R1Error
from r1console.tui.messages import BatchEnded, BatchProgressed
from r1console.tui.screens.chat import ServerOpener


def _ms(summary, q: float) -> str:
    try:
        value = summary.p(q)
    except KeyError:
        value = None
    return "-" if value is None else f"{value * 1000:.0f}"


def progress_text(p: BatchProgress) -> str:
    rate = "-" if p.live_tok_s is None else f"{p.live_tok_s:.0f}"
    occupancy = "-" if p.occupancy is None else f"{100 * p.occupancy:.0f}%"
    lines = [
        f"{p.state.value}: {p.done}/{p.total - p.skipped} done ({p.ok} ok, {p.failed} failed"
        + (f", {p.skipped} skipped from an earlier run" if p.skipped else "") + ")",
        f"in flight {p.in_flight}/{p.concurrency} · queued {p.queued} · retrying {p.waiting_retry} · "
        f"retries {p.retries} · slot occupancy {occupancy}",
        f"output {p.output_tokens:,} tokens · live {rate} tok/s · elapsed {p.elapsed_s:.1f}s",
        "",
        "latency (ms)            p50      p90      p99     mean",
    ]
    for label, summary in (("TTFT", p.ttft), ("first answer token", p.ttfot), ("ITL", p.itl), ("E2E", p.e2e)):
        mean = "-" if summary.mean is None else f"{summary.mean * 1000:.0f}"
        lines.append(f"{label:<20}{_ms(summary, 50):>8} {_ms(summary, 90):>8} {_ms(summary, 99):>8} {mean:>8}")
    if p.last_error:
        lines.append(f"last error: {p.last_error}")
    return "\n".join(lines)


class BatchScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="batch-run"),
        Binding("ctrl+t", "pause", "Pause/resume", id="batch-pause"),
        Binding("ctrl+s", "stop", "Stop", id="batch-stop"),
        Binding("escape", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, title: str, opener: ServerOpener, *, deployment=None) -> None:
        super().__init__()
        self.batch_title = title
        self.opener = opener
        self.deployment = deployment
        self.engine = None
        self._tok_s: list[float] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="batch-form"):
            with Horizontal():
                yield Label("prompts ")
                yield Input(placeholder="input_prompts.json / batch.jsonl", id="batch-input")
            with Horizontal():
                yield Label("output  ")
                yield Input(placeholder="output_responses.json", id="batch-output")
            with Horizontal():
                yield Label("concurrency ")
                yield Input("32", id="batch-concurrency", type="integer")
                yield Label(" max tokens ")
                yield Input("4096", id="batch-max-tokens", type="integer")
                yield Checkbox("resume", id="batch-resume")
                yield Button("Run (ctrl+r)", variant="primary", id="batch-run-button")
        yield ProgressBar(total=None, id="batch-progress")
        yield Sparkline([0], id="batch-sparkline")
        yield Static("Pick a prompt file and press ctrl+r.", id="batch-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"batch — {self.batch_title}"

    @on(Button.Pressed, "#batch-run-button")
    def _run_pressed(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        if self.engine is not None:
            self.notify("A batch is already running.")
            return
        source = self.query_one("#batch-input", Input).value.strip()
        output = self.query_one("#batch-output", Input).value.strip()
        if not source or not output:
            self.notify("Give a prompt file and an output file.", severity="error")
            return
        try:
            batch = load_batch_input(Path(source).expanduser())
            concurrency = int(self.query_one("#batch-concurrency", Input).value or "32")
            max_tokens = int(self.query_one("#batch-max-tokens", Input).value or "0") or None
        except (R1Error, ValueError) as err:
            self.query_one("#batch-summary", Static).update(str(err))
            return
        out = Path(output).expanduser()
        plan = BatchPlan(batch=batch, output=out, output_format=default_output_format(batch.format, out),
                         concurrency=max(1, concurrency), resume=self.query_one("#batch-resume", Checkbox).value,
                         max_tokens=max_tokens)
        self.query_one("#batch-progress", ProgressBar).update(total=len(batch.items), progress=0)
        self.run_batch(plan)

    @work(group="batch", exclusive=True, exit_on_error=False, description="Running the batch")
    async def run_batch(self, plan: BatchPlan) -> None:
        ticker = None

        def attach(engine) -> None:
            nonlocal ticker
            self.engine = engine

            async def tick() -> None:
                while True:
                    self.post_message(BatchProgressed(engine.snapshot()))
                    await asyncio.sleep(0.5)

            ticker = asyncio.create_task(tick())

        try:
            async with self.opener() as (url, key):
                outcome = await run_batch(plan, url, key, on_engine=attach)
        except R1Error as err:
            self.post_message(BatchEnded(None, str(err)))
            return
        finally:
            if ticker is not None:
                ticker.cancel()
            self.engine = None
        note = (f"output written to {plan.output}" if outcome.output_written else
                f"stopped: resume later with 'resume' ticked (journal {outcome.journal_path})")
        self.post_message(BatchEnded(outcome.summary, note))

    def on_batch_progressed(self, message: BatchProgressed) -> None:
        p: BatchProgress = message.progress
        self.query_one("#batch-progress", ProgressBar).update(total=p.total, progress=p.done + p.skipped)
        if p.live_tok_s is not None:
            self._tok_s.append(p.live_tok_s)
            self.query_one("#batch-sparkline", Sparkline).data = self._tok_s[-120:]
        self.query_one("#batch-summary", Static).update(progress_text(p))

    def on_batch_ended(self, message: BatchEnded) -> None:
        text = progress_text(message.summary) + "\n\n" if message.summary is not None else ""
        self.query_one("#batch-summary", Static).update(text + (message.error or ""))
        if message.summary is not None:
            self.query_one("#batch-progress", ProgressBar).update(
                total=message.summary.total, progress=message.summary.done + message.summary.skipped)

    def action_pause(self) -> None:
        if self.engine is None:
            return
        if self.engine.snapshot().state.value == "paused":
            self.engine.resume()
            self.notify("Resumed.")
        else:
            self.engine.pause()
            self.notify("Paused: requests in flight finish, no new ones start.")

    def action_stop(self) -> None:
        if self.engine is not None:
            self.engine.stop(reason="stopped from the console")
            self.notify("Stopping: finished requests are in the journal; tick 'resume' to continue later.")
