"""`r1console log-status FILE [FILE …]`: a job's stage from its log files alone (offline).

Give it every log file of one job (``job.<host>.<id>.out`` and ``.err``). It prints the stage,
shards loaded/total, ETA, server URL, vLLM version, KV cache tokens and the fatal errors it
recognises, each with an explanation and what to try.

Large files are not read whole (a server that ran for days writes gigabytes of access lines):
each file is read from the start until the server-ready line (at most ``--head-bytes``), then
only its last ``--tail-bytes``. What this can miss: an error in the skipped middle whose
consequences are not in the tail (the tail still shows the engine dying, a time limit, a
cancel). ``--full`` reads everything. The skipped amount is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from r1console.commands._common import add_json_flag, print_json
from r1console.core import logparse as lp
from r1console.core.errors import EXIT_DEPLOYMENT_FAILED, EXIT_OK, R1Error
from r1console.core.lifecycle import JobLifecycle, LifecycleState, Stage, format_duration

HEAD_BYTES = 16 * 1024 * 1024
TAIL_BYTES = 1024 * 1024
BLOCK = 256 * 1024
HEAD_BLOCK = 64 * 1024


@dataclass
class FileScan:
    path: str
    size: int
    bytes_read: int = 0
    skipped_bytes: int = 0
    head_read: int = 0  # bytes read from the start before skipping (all of them if no skip)
    events: int = 0


def _open(path: str):
    if os.path.isdir(path):
        raise R1Error(f"{path}: is a directory, not a log file",
                      hint="pass the job's .out and .err files, e.g. job.node1.1234.*")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise R1Error(f"{path}: log file not found") from None
    except PermissionError:
        raise R1Error(f"{path}: cannot read (permission denied)") from None
    except OSError as err:
        raise R1Error(f"{path}: cannot read ({err.strerror or err})") from None


def scan_file(path: str, lifecycle: JobLifecycle, *, full: bool = False, head_bytes: int = HEAD_BYTES,
              tail_bytes: int = TAIL_BYTES, block: int = BLOCK, stream: str | None = None) -> FileScan:
    """Feed one log file through a LogParser into ``lifecycle``: the head until the server-ready
    line (at most ``head_bytes``), then the last ``tail_bytes``; all of it with ``full``."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        scan = FileScan(path=path, size=size)
        parser = lp.LogParser(stream or path)
        lifecycle.on_log_seen()

        def feed(events: list[lp.Event]) -> bool:
            scan.events += len(events)
            ready = False
            for ev in events:
                lifecycle.on_event(ev)
                if isinstance(ev, lp.ServerReady):
                    ready = True
            return ready

        whole = full or size <= head_bytes + tail_bytes
        limit = size if whole else head_bytes
        pos = 0
        step = block if whole else HEAD_BLOCK  # small steps: stop soon after the ready line
        while pos < limit:
            data = f.read(min(step, limit - pos))
            if not data:
                break
            pos += len(data)
            if feed(parser.feed(data)) and not whole:
                break
        tail_start = max(pos, size - tail_bytes)
        if tail_start > pos:
            f.seek(tail_start - 1)
            at_line_start = f.read(1) == b"\n"
            parser.skip_to(tail_start, at_line_start=at_line_start)
            scan.skipped_bytes = tail_start - pos
            scan.head_read = pos
            pos = tail_start
        while True:
            data = f.read(block)
            if not data:
                break
            pos += len(data)
            feed(parser.feed(data))
        feed(parser.flush())
        scan.bytes_read = pos - scan.skipped_bytes
        if not scan.skipped_bytes:
            scan.head_read = pos
        return scan


def log_status(paths: list[str], *, full: bool = False, head_bytes: int = HEAD_BYTES,
               tail_bytes: int = TAIL_BYTES) -> tuple[LifecycleState, list[FileScan]]:
    """Stage of one job from its log files (offline: ready = the server-ready line was seen)."""
    for path in paths:  # fail on a bad path before reading anything
        if not os.path.exists(path):
            raise R1Error(f"{path}: log file not found")
    lifecycle = JobLifecycle(live=False)
    scans = [scan_file(p, lifecycle, full=full, head_bytes=head_bytes, tail_bytes=tail_bytes)
             for p in paths]
    return lifecycle.snapshot(), scans


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _clip(text: str, width: int = 240) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def render_text(state: LifecycleState, scans: list[FileScan]) -> str:
    lines = []
    stage = state.stage.value + (f" - {state.detail}" if state.detail else "")
    lines.append(f"stage         {stage}")
    if state.shards_total:
        loading = state.stage.value == "loading"
        rate = f" ({state.shard_rate * 60:.1f} shards/min)" if state.shard_rate and loading else ""
        lines.append(f"shards        {state.shards_loaded}/{state.shards_total}{rate}")
    else:
        lines.append("shards        -")
    lines.append(f"ETA           {format_duration(state.eta_s) if state.eta_s is not None else '-'}")
    url = state.server_url or "-"
    if state.reachable_url and state.reachable_url != state.server_url:
        url += f"  (from outside: {state.reachable_url})"
    lines.append(f"server URL    {url}")
    lines.append(f"vLLM version  {state.vllm_version or '-'}")
    if state.kv_cache_tokens:
        kv = f"{state.kv_cache_tokens:,} tokens"
        if state.max_concurrency:
            kv += f" (max concurrency {state.max_concurrency:g}x)"
        lines.append(f"KV cache      {kv}")
    else:
        lines.append("KV cache      -")
    if state.model_load_gib is not None:
        lines.append(f"weights       {state.model_load_gib:g} GiB per GPU, loaded in "
                     f"{format_duration(state.model_load_s)}")
    if state.head_node:
        lines.append(f"head node     {state.head_node}")
    if state.errors:
        lines.append(f"errors        {len(state.errors)}")
        for e in state.errors:
            where = f"{e.stream}:{e.lineno}" if e.lineno else (e.stream or "")
            if e.lineno is None and e.offset is not None and e.stream != "slurm":
                where += f" (byte {e.offset})"
            count = f" (x{e.count})" if e.count > 1 else ""
            lines.append(f"  {e.kind} at {where}{count}")
            lines.append(f"    line:    {_clip(e.line)}")
            if e.context:
                lines.append(f"    context: {_clip(e.context)}")
            lines.append(f"    why:     {e.explanation}")
            lines.append(f"    try:     {e.what_to_try}")
    else:
        lines.append("errors        none")
    for n in state.notices:
        where = f"{n.stream}:{n.lineno}" if n.lineno else n.stream
        lines.append(f"notice        {n.kind} at {where}: {n.explanation}")
    if state.suppressed:
        kinds = ", ".join(sorted({e.kind for e in state.suppressed}))
        lines.append(f"note          ignored after the deliberate shutdown: {kinds}")
    for s in scans:
        if s.skipped_bytes:
            lines.append(f"note          {s.path}: read the first {_size(s.head_read)} and the last "
                         f"{_size(s.bytes_read - s.head_read)}, skipped {_size(s.skipped_bytes)} in "
                         "between (errors only there are not shown; --full reads everything)")
    return "\n".join(lines) + "\n"


def to_json(state: LifecycleState, scans: list[FileScan]) -> dict:
    d = state.to_dict()
    out = {
        "stage": d["stage"],
        "shards_loaded": d["shards_loaded"],
        "shards_total": d["shards_total"],
        "eta_s": None if d["eta_s"] is None else round(d["eta_s"], 1),
        "server_url": d["server_url"],
        "vllm_version": d["vllm_version"],
        "kv_cache_tokens": d["kv_cache_tokens"],
        "errors": d["errors"],
    }
    for key, value in d.items():
        if key not in out:
            out[key] = value
    out["files"] = [{"path": s.path, "size": s.size, "bytes_read": s.bytes_read,
                     "skipped_bytes": s.skipped_bytes} for s in scans]
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "log-status", help="a job's stage, progress and errors from its log files (offline)",
        description="Read a job's log files (give both job.<host>.<id>.out and .err) and print "
        "its stage, shards loaded, ETA, server URL, vLLM version, KV cache tokens and the fatal "
        "errors it recognises, with what to try. Offline, 'ready' means the server-ready line was "
        "seen (the live console also checks /health and a test completion). Big files are read "
        "from the start until the server is ready, then only their end; --full reads all of it.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files of one job (.out and .err)")
    add_json_flag(p)
    p.add_argument("--full", action="store_true", help="read every byte, however big the files")
    p.add_argument("--head-bytes", type=int, default=HEAD_BYTES, metavar="N",
                   help=f"read at most N bytes from the start of a big file (default {HEAD_BYTES})")
    p.add_argument("--tail-bytes", type=int, default=TAIL_BYTES, metavar="N",
                   help=f"then read its last N bytes (default {TAIL_BYTES})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.head_bytes < 0 or args.tail_bytes < 0:
        raise R1Error("--head-bytes and --tail-bytes must be >= 0")
    state, scans = log_status(args.files, full=args.full, head_bytes=args.head_bytes,
                              tail_bytes=args.tail_bytes)
    if args.json:
        print_json(to_json(state, scans))
    else:
        sys.stdout.write(render_text(state, scans))
    return EXIT_DEPLOYMENT_FAILED if state.stage is Stage.FAILED else EXIT_OK
