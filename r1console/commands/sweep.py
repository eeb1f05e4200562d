"""``r1console sweep``: throughput and latency at several concurrency levels, like the seed's table.

    r1console sweep --url http://127.0.0.1:8000 --concurrency 8,32,64,112
    r1console sweep --job 12345 --concurrency 32,64,128 --prompts input_prompts.json --max-tokens 2048

Each level runs the batch engine (sliding window of N streaming requests) over
--requests prompts (default 3 × N, at least 24), cycling through --prompts (any `r1console
batch` input) or a built-in set of short science questions. Per level: output tok/s (tokens /
wall time), steady tok/s (while all N slots were busy — the seed's "tokens/s at max-num-seqs"),
requests/s, TTFT, time to the first answer token, ITL and E2E percentiles, slot occupancy.
The table is printed, plotted in the terminal when plotext is installed
(pip install 'r1console[plot]'), and saved as CSV. Nothing is journalled: a sweep measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from pathlib import Path

from r1console.commands._common import add_target_args
from r1console.commands.batch import (
    _console,
    _install_stop_handlers,
    _remove_stop_handlers,
    open_target,
    positive_int,
    progress_line,
)
from r1console.core.errors import R1Error


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="tok/s and latencies at several concurrency levels (table, plot, CSV)",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(parser)
    parser.add_argument("--concurrency", required=True, metavar="N,N,...",
                        help="levels to run, e.g. 8,32,64,112")
    parser.add_argument("--prompts", metavar="FILE", help="prompts (any batch input format; default: built-in)")
    parser.add_argument("--requests", type=positive_int, metavar="N",
                        help="requests per level (default: 3 x concurrency, at least 24)")
    parser.add_argument("--max-tokens", type=positive_int, default=2048, metavar="N",
                        help="most tokens per reply, reasoning included (default: 2048)")
    parser.add_argument("--csv", metavar="FILE", help="where to save the table (default: sweep-<time>.csv)")
    parser.add_argument("--no-plot", action="store_true", help="table only")
    parser.add_argument("--compare-seed", action="store_true",
                        help="add the seed's measured 16xH100 tok/s at the same concurrency (its README's table)")
    parser.add_argument("--json", action="store_true", help="print the levels as JSON")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from r1console.core.batch_input import load_batch_input
    from r1console.core.batch_journal import atomic_write_text
    from r1console.core.sweep import default_prompt_items, parse_levels, sweep_csv

    levels = parse_levels(args.concurrency)
    prompts = list(load_batch_input(args.prompts).items) if args.prompts else default_prompt_items()
    csv_path = Path(args.csv or time.strftime("sweep-%Y%m%d-%H%M%S.csv")).expanduser()
    if csv_path.is_dir() or not csv_path.parent.is_dir():
        raise R1Error(f"--csv {csv_path}: not a file in an existing directory")
    console = _console()
    interrupted = {"by_user": False}
    rows = await _run_levels(args, levels, prompts, console, interrupted)
    if rows:
        atomic_write_text(csv_path, sweep_csv(rows))
    _report(args, rows, csv_path, console)
    if interrupted["by_user"]:
        return 130
    return 0 if rows and all(r.summary.failed == 0 for r in rows) else 1


async def _run_levels(args: argparse.Namespace, levels: list[int], prompts: list, console, interrupted: dict) -> list:
    """One batch-engine run a level, in order; stops after a level that did not finish (stop, fatal)."""
    from r1console.adapters.batch_runner import make_sender
    from r1console.adapters.vllm_client import VllmClient
    from r1console.core.batch_engine import BatchEngine, EngineState, RetryPolicy
    from r1console.core.sweep import SweepRow, level_items, requests_for_level

    rows: list[SweepRow] = []
    try:
        async with open_target(args) as (url, key):
            async with VllmClient(url, key, stream_timeout=args.timeout) as client:
                model = args.model or await client.model_id()
                send = make_sender(client, model=model, overrides={"max_tokens": args.max_tokens})
                for level in levels:
                    n = requests_for_level(level, args.requests)
                    engine = BatchEngine(level_items(prompts, n), send, concurrency=level,
                                         policy=RetryPolicy(), probe=client.is_healthy)
                    _install_stop_handlers(engine, console, interrupted)
                    if not args.json:
                        console.print(f"concurrency {level}: {n} requests …")
                    ticker = asyncio.ensure_future(_tick(engine, console, args.json))
                    try:
                        summary = await engine.run()
                    finally:
                        ticker.cancel()
                    rows.append(SweepRow(level, summary))
                    if summary.state is not EngineState.FINISHED:
                        break
    finally:
        _remove_stop_handlers()
    return rows


def _report(args: argparse.Namespace, rows: list, csv_path: Path, console) -> None:
    """The levels as JSON, or the table (and plot) on stdout and where the CSV went on stderr."""
    if args.json:
        from r1console.commands._common import print_json

        print_json({"levels": [r.as_dict() for r in rows], "csv": str(csv_path) if rows else None,
                    "max_tokens": args.max_tokens})
        return
    out = _console(stdout=True)
    if not out.is_terminal:
        out.width = max(out.width, 160)
    print_table(rows, out, compare_seed=args.compare_seed)
    if not args.no_plot and len(rows) >= 1:
        plot(rows, out, compare_seed=args.compare_seed)
    if rows:
        console.print(f"r1console: saved {csv_path}")


async def _tick(engine, console, quiet: bool) -> None:
    if quiet or not console.is_terminal:
        return
    from rich.live import Live
    from rich.text import Text

    with Live(Text(""), console=console, refresh_per_second=4, transient=True) as live:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                live.update(Text(progress_line(engine.snapshot())))
                await asyncio.sleep(0.25)


def print_table(rows, console, *, compare_seed: bool = False) -> None:
    from rich.table import Table

    from r1console.core.sweep import TABLE_HEADER, TABLE_NOTE, table_rows

    table = Table(title="sweep: output tokens/s and latency by concurrency", caption=TABLE_NOTE,
                  box=None, pad_edge=False)
    header = list(TABLE_HEADER) + (["seed 16xH100 tok/s"] if compare_seed else [])
    for name in header:
        table.add_column(name, justify="right", no_wrap=True)
    for cells in table_rows(rows, compare_seed=compare_seed):
        table.add_row(*cells)
    console.print(table)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def render_plot(rows, *, width: int = 80, height: int = 20, compare_seed: bool = False,
                color: bool = True) -> str | None:
    """tok/s against concurrency as terminal text (plotext 5.x or 6.x); None without plotext."""
    try:
        import plotext as plt
    except ImportError:
        return None
    from r1console.core.sweep import SEED_H100X16

    xs = [r.concurrency for r in rows]
    series = [("steady tok/s", [r.summary.steady_tok_s or r.summary.output_tok_s or 0.0 for r in rows], None),
              ("batch tok/s", [r.summary.output_tok_s or 0.0 for r in rows], None)]
    if compare_seed:
        seed = [(x, SEED_H100X16[x]) for x in xs if x in SEED_H100X16]
        if seed:
            series.append(("seed 16xH100", [y for _, y in seed], [x for x, _ in seed]))
    title = "output tok/s by concurrency"
    if hasattr(plt, "plot") and hasattr(plt, "build"):          # plotext 5.x
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.title(title)
        plt.xlabel("concurrency")
        if not color:
            plt.theme("clear")
        for label, ys, own_x in series:
            plt.plot(own_x or xs, ys, marker="dot", label=label)
        text = plt.build()
    else:                                                        # plotext 6.x
        fig = plt.figure
        fig.clear()
        fig.plot_size(width, height)
        fig.title(title)
        for label, ys, own_x in series:
            sig = fig.signal(own_x or xs, ys, marker="x" if own_x else None)
            if len(ys) > 1 and not own_x:
                sig.lines()
            sig.label(label)
            fig.draw(sig)
        text = str(fig.build())
    return text if color else _ANSI.sub("", text)


def plot(rows, console, *, compare_seed: bool = False) -> bool:
    """Print the plot; False (and a note) without plotext."""
    text = render_plot(rows, width=min(100, console.width), compare_seed=compare_seed,
                       color=console.is_terminal and not console.no_color)  # rich reads NO_COLOR
    if text is None:
        console.print("(no plot: plotext is not installed — pip install 'r1console[plot]')", style="dim")
        return False
    console.file.write(text.rstrip("\n") + "\n")
    console.file.flush()
    return True
