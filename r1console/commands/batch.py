"""``r1console batch INPUT -o OUTPUT``: send a file of prompts, keep the server full, lose nothing.

    r1console batch input_prompts.json -o output_responses.json --url http://127.0.0.1:8000
    r1console batch requests.jsonl -o results.jsonl --job 12345 --concurrency 64
    r1console batch input_prompts.json -o output_responses.json --url ... --resume

INPUT is the seed's input_prompts.json, OpenAI batch JSONL (as `vllm run-batch` takes it) or
JSONL of {"id", "prompt"}; the whole file is checked before anything is sent.

Requests stream through a sliding window: N are in flight at all times (default: the
deployment's max_num_seqs), so TTFT, the first answer token after the reasoning, inter-token
gaps and end-to-end latency are measured per request. Connection errors, timeouts, 429 and 5xx
are retried with exponential backoff and jitter; while the server is down nothing is sent and
no attempt is spent. Each finished request is appended to OUTPUT.journal.jsonl and flushed to
disk at once: Ctrl-C (or a crash) loses only the requests in flight, and --resume skips what
is done. When every request has a result, OUTPUT is written atomically, in input order: the
seed's output_responses.json shape or OpenAI batch output JSONL.

Exit status: 0 all answered; 1 some requests failed (they are in OUTPUT as errors; --resume
retries them) or the server stayed unreachable; 130 stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from r1console.commands._common import add_target_args, open_job_server, positive_float, positive_int, read_api_key_file
from r1console.core.errors import R1Error
from r1console.core.fmt import clock_duration

FALLBACK_CONCURRENCY = 256   # vLLM's max_num_seqs default below 70 GiB of GPU memory (1024 above)


# -- arguments shared with `r1console sweep` --------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="send a file of prompts through a sliding window; crash-safe, resumable",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="input_prompts.json, OpenAI batch .jsonl, or {id, prompt} .jsonl")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="where the results go")
    add_target_args(parser, deployment=True)
    parser.add_argument("--concurrency", type=positive_int, metavar="N",
                        help="requests in flight (default: the deployment's max_num_seqs; "
                             "with --deployment: per replica)")
    parser.add_argument("--max-tokens", type=positive_int, metavar="N",
                        help="most tokens per reply, reasoning included (default: the file's, else the server's)")
    parser.add_argument("--output-format", choices=("seed", "openai"),
                        help="seed: output_responses.json; openai: batch output JSONL "
                             "(default: like the input; {id, prompt} input by OUTPUT's extension)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run recorded in OUTPUT.journal.jsonl: skip what is done")
    parser.add_argument("--max-attempts", type=positive_int, default=8, metavar="N",
                        help="sends per request for timeouts/429/5xx/cut streams (default: 8)")
    parser.add_argument("--give-up-after", type=positive_float, default=900.0, metavar="S",
                        help="stop (resumably) when the server is unreachable this long (default: 900)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    parser.set_defaults(func=run)


# -- target resolution (also used by sweep) ------------------------------------------------------------

def read_key(path: str | None) -> str | None:
    if not path:
        return None
    return read_api_key_file(path)


@contextlib.asynccontextmanager
async def open_target(args: argparse.Namespace):
    """Yield ``(base_url, api_key)`` for ``--url`` or ``--job``."""
    key = read_key(getattr(args, "api_key_file", None))
    if getattr(args, "deployment", None):
        from r1console.commands._deployment import open_deployment

        async with open_deployment(args.deployment) as (url, local_key, _proxy):
            yield url, local_key
        return
    if args.url:
        yield args.url, key
        return
    async with open_job_server(args.job, args.cluster) as (url, job_key):
        yield url, key or job_key


def deployment_max_num_seqs(job_id: str | None, cluster: str | None) -> int | None:
    """``vllm.max_num_seqs`` of the profile a job was submitted with, if it sets one."""
    if not job_id:
        return None
    try:
        from r1console.adapters import deployments
        from r1console.core.profiles import load_profile
        from r1console.core.userconfig import load_user_config

        dep = deployments.find(str(job_id), cluster)
        if dep is None:
            return None
        ref = dep.profile_source or dep.profile
        loaded = load_profile(ref, dirs=load_user_config().profile_search_dirs())
        return loaded.profile.vllm.max_num_seqs
    except Exception:  # noqa: BLE001 — only a default; the note below says what was used
        return None


def resolve_concurrency(args: argparse.Namespace) -> tuple[int, str | None]:
    """``(N, note)``: --concurrency, else the job profile's max_num_seqs, else a fallback."""
    if getattr(args, "deployment", None):
        from r1console.commands._deployment import deployment_window

        return deployment_window(args.deployment, args.concurrency)
    if args.concurrency:
        return args.concurrency, None
    n = deployment_max_num_seqs(getattr(args, "job", None), getattr(args, "cluster", None))
    if n:
        return n, f"concurrency {n} = the deployment's max_num_seqs"
    return FALLBACK_CONCURRENCY, (
        f"concurrency {FALLBACK_CONCURRENCY}: the server's max_num_seqs is unknown here "
        "(vLLM's default is 256, or 1024 on GPUs with >= 70 GiB); pass --concurrency to match it")


def check_output_path(path: str) -> Path:
    out = Path(path).expanduser()
    if out.is_dir():
        raise R1Error(f"-o {path} is a directory; give a file name such as output_responses.json")
    if not out.parent.is_dir():
        raise R1Error(f"-o {path}: the directory {out.parent} does not exist")
    return out


# -- run ---------------------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> int:
    from r1console.adapters.batch_runner import BatchPlan, run_batch
    from r1console.core.batch_engine import RetryPolicy
    from r1console.core.batch_input import load_batch_input
    from r1console.core.batch_journal import JournalWriteError, default_output_format

    batch = load_batch_input(args.input)          # validate everything before connecting
    output = check_output_path(args.output)
    fmt = args.output_format or default_output_format(batch.format, output)
    concurrency, note = resolve_concurrency(args)
    console = _console()
    if note and not args.json:
        console.print(f"[dim]r1console: {note}[/]")
    plan = BatchPlan(batch=batch, output=output, output_format=fmt, concurrency=concurrency,
                     resume=args.resume, max_tokens=args.max_tokens, model=args.model,
                     policy=RetryPolicy(max_attempts=args.max_attempts, give_up_after=args.give_up_after),
                     stream_timeout=args.timeout)
    display = ProgressDisplay(console, quiet=args.json)
    interrupted = {"by_user": False}

    def attach(engine) -> None:
        display.attach(engine)
        _install_stop_handlers(engine, console, interrupted)

    try:
        async with open_target(args) as (url, key):
            with display:
                outcome = await run_batch(plan, url, key, on_engine=attach)
    except JournalWriteError as err:
        # Disk full, quota, I/O error: what is on disk is intact; say how to go on.
        err.hint = f"free some space (or raise the limit), then resume with: {resume_command()}"
        raise
    finally:
        _remove_stop_handlers()
    summary = outcome.summary
    if args.json:
        from r1console.commands._common import print_json

        doc = summary.to_json()
        doc.update({"input": str(args.input), "input_format": batch.format,
                    "output": str(output) if outcome.output_written else None,
                    "output_format": fmt, "journal": str(outcome.journal_path),
                    "failed_ids": outcome.failed_ids})
        print_json(doc)
    else:
        print_summary(summary, console=_console(stdout=True), title="batch")
        _print_outcome(outcome, output, fmt, console)
    if not outcome.finished:
        return 130 if interrupted["by_user"] else 1
    return 1 if outcome.failed_ids else 0


def _print_outcome(outcome, output: Path, fmt: str, console) -> None:
    summary = outcome.summary
    if outcome.output_written:
        console.print(f"r1console: wrote {output} ({fmt} format, {summary.total} results in input order); "
                      f"per-request timings in {outcome.journal_path}")
        if outcome.failed_ids:
            shown = ", ".join(outcome.failed_ids[:5]) + (" …" if len(outcome.failed_ids) > 5 else "")
            console.print(f"r1console: {len(outcome.failed_ids)} requests failed ({shown}); they are in the "
                          "output as errors. Run again with --resume to retry only those.")
        return
    done = summary.skipped + summary.done
    console.print(f"r1console: stopped ({summary.stop_reason or 'stopped'}): {done} of {summary.total} "
                  f"requests are done and kept in {outcome.journal_path}")
    console.print(f"  resume with: {resume_command()}")


def resume_command(argv: list[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["r1console", *args])


_HANDLED = (signal.SIGINT, signal.SIGTERM)


def _install_stop_handlers(engine, console, interrupted: dict) -> None:
    loop = asyncio.get_running_loop()

    def stop(signame: str) -> None:
        if interrupted["by_user"]:
            return
        interrupted["by_user"] = True
        console.print(f"\nr1console: {signame}: stopping — requests in flight are cancelled and will be "
                      "sent again on --resume; finished ones are safe in the journal")
        engine.stop(reason=f"{signame}")
        for sig in _HANDLED:          # a second Ctrl-C interrupts at once
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    for sig, name in ((signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated")):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop, name)


def _remove_stop_handlers() -> None:
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        for sig in _HANDLED:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


# -- display -----------------------------------------------------------------------------------------

def _console(stdout: bool = False):
    from rich.console import Console

    return Console(stderr=not stdout, highlight=False, soft_wrap=True)


class ProgressDisplay:
    """A live progress line on a terminal (rich), plain lines every 10 % otherwise; retries
    and server down/up are logged above it."""

    def __init__(self, console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.engine = None
        self._live = None
        self._next_pct = 10
        self._task: asyncio.Task | None = None

    def attach(self, engine) -> None:
        self.engine = engine
        snap = engine.snapshot()
        self._todo = snap.total - snap.skipped
        self._finished = 0
        engine.subscribe(self._on_event)
        if self.quiet:
            return
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
            self._task = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if self._live is not None:
                self._live.update(self._render())

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self):
        from rich.text import Text

        return Text(progress_line(self.engine.snapshot()) if self.engine else "starting …")

    def _on_event(self, event) -> None:
        if self.quiet:
            return
        if event.kind == "retry":
            self.console.print(f"[yellow]retry[/] {event.item_id} (attempt {event.attempt + 1}) in "
                               f"{event.delay_s:.1f} s: {event.error}")
        elif event.kind == "server-down":
            self.console.print(f"[red]server unreachable[/]: {event.error} — waiting for it "
                               "(nothing is sent meanwhile)")
        elif event.kind == "server-up":
            self.console.print("[green]server is back[/]: refilling the window")
        elif event.kind == "finished" and self._live is None and self.engine is not None:
            # Cheap per event; the (sorting) snapshot only every 10 %.
            self._finished += 1
            todo = max(1, self._todo)
            pct = 100 * self._finished / todo
            if pct >= self._next_pct:
                self.console.print(progress_line(self.engine.snapshot()))
                while self._next_pct <= pct:
                    self._next_pct += 10


def progress_line(snap) -> str:
    """One line: bar, counts, window, tok/s, latencies, elapsed/ETA."""
    from r1console.core.stats import format_seconds

    todo = max(1, snap.total - snap.skipped)
    frac = snap.done / todo
    width = 20
    bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
    parts = [f"{bar} {snap.done}/{todo}"]
    if snap.skipped:
        parts.append(f"(+{snap.skipped} done before)")
    parts.append(f"ok {snap.ok}")
    if snap.failed:
        parts.append(f"failed {snap.failed}")
    parts.append(f"in flight {snap.in_flight}/{snap.concurrency}")
    if snap.retries:
        parts.append(f"retries {snap.retries}")
    rate = snap.live_tok_s
    parts.append(f"{rate:,.0f} tok/s" if rate else "- tok/s")
    if snap.ttft.count:
        parts.append(f"TTFT p50 {format_seconds(snap.ttft.p50)} ms")
    if snap.e2e.count:
        parts.append(f"E2E p50 {format_seconds(snap.e2e.p50, 's')} s")
    parts.append(clock_duration(snap.elapsed_s))
    if snap.done and frac < 1:
        eta = snap.elapsed_s / snap.done * (todo - snap.done)
        parts.append(f"ETA ~{clock_duration(eta)}")
    state = snap.state.value
    if state not in ("running", "finished"):
        parts.insert(0, f"[{state}]")
    return "  ".join(parts)


def summary_rows(summary) -> list[tuple[str, Any]]:
    return [("TTFT", summary.ttft), ("first answer token", summary.ttfot),
            ("ITL", summary.itl), ("E2E", summary.e2e)]


def print_summary(summary, *, console, title: str = "batch") -> None:
    """The human summary: counts, tokens, wall time, tok/s, and a latency table in ms."""
    from rich.table import Table

    from r1console.core.stats import format_seconds

    head = (f"{title} {summary.state.value}: {summary.done} requests this run "
            f"({summary.ok} ok, {summary.failed} failed")
    if summary.skipped:
        head += f", {summary.skipped} done before"
    if summary.remaining:
        head += f", {summary.remaining} not done"
    head += ")"
    console.print(head)
    tok_s = summary.output_tok_s
    occ = summary.occupancy_backlogged
    rate = f" = {tok_s:,.1f} output tok/s" if tok_s else ""
    console.print(f"output tokens {summary.output_tokens:,} in {summary.elapsed_s:,.1f} s{rate}")
    line = f"concurrency {summary.concurrency}, mean in flight {summary.mean_in_flight:.1f}"
    if occ is not None:
        line += f" ({occ * 100:.1f} % of the window while work was waiting)"
    if summary.retries:
        line += f", {summary.retries} retries"
    if summary.waiting_server_s >= 0.05:
        line += f", {summary.waiting_server_s:,.1f} s waiting for an unreachable server"
    console.print(line)
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("latency (ms)")
    for col in ("mean", "p50", "p90", "p99", "n"):
        table.add_column(col, justify="right")
    for name, s in summary_rows(summary):
        table.add_row(name, format_seconds(s.mean), format_seconds(s.p50), format_seconds(s.p90),
                      format_seconds(s.p99), str(s.count))
    console.print(table)
