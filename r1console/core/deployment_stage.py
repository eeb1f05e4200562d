"""A deployment's lifecycle stage from SLURM's view of the job plus the head and tail of its logs.

Pure: no I/O, no clock. ``status`` reads both log files of a job with ONE remote command
(:func:`read_logs_argv`: a fixed ``sh`` script, the paths as its arguments), gets back a framed
byte stream (:func:`parse_framed`), and turns it with the job's :class:`JobInfo` into the keys
``stage``, ``shards_loaded``, ``shards_total``, ``eta_s``, ``server_url``, ``reason`` and
``time_left_s`` (:func:`summarise`).

The frame, per file ``i`` (1-based, in argument order)::

    R1C <i> <size> <head_len> <tail_offset> <tail_len>\\n  <head_len bytes> <tail_len bytes>

``size`` -1: the file cannot be read (not created yet). The script computes the size first and
then asks ``head``/``tail`` for exactly that many bytes, so a log growing meanwhile keeps the
frame exact; a file truncated while being read shows as a short frame (:class:`FrameError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from r1console.core import logparse as lp
from r1console.core.lifecycle import JobLifecycle, LifecycleState, Stage, format_duration
from r1console.core.slurm_parse import JobInfo

HEAD_BYTES = 512 * 1024  # per file: vLLM's start-up (version, shards, KV cache, ready line)
TAIL_BYTES = 128 * 1024  # per file: what it does now (progress, the error that stopped it)

# $1 head bytes, $2 tail bytes, then the files. Only POSIX sh + coreutils (wc, head, tail).
_SCRIPT = r"""h=$1; t=$2; shift 2; i=0
for f in "$@"; do
  i=$((i + 1))
  if [ ! -r "$f" ] || [ -d "$f" ]; then printf 'R1C %d -1 0 0 0\n' "$i"; continue; fi
  s=$(wc -c < "$f" | tr -d ' ')
  if [ "$s" -le $((h + t)) ]; then
    printf 'R1C %d %s %s 0 0\n' "$i" "$s" "$s"; head -c "$s" -- "$f"
  else
    o=$((s - t))
    printf 'R1C %d %s %s %s %s\n' "$i" "$s" "$h" "$o" "$t"
    head -c "$h" -- "$f"; tail -c +$((o + 1)) -- "$f" | head -c "$t"
  fi
done
"""


class FrameError(ValueError):
    """The framed output of the read script is not what it should be."""


@dataclass(frozen=True)
class LogPiece:
    size: int  # -1: not readable
    head: bytes = b""
    tail_offset: int = 0
    tail: bytes = b""


def read_logs_argv(paths: Sequence[str], *, head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES) -> list[str]:
    """argv of the one remote command that reads the head and tail of every path (data only as
    arguments: the script text is constant)."""
    return ["sh", "-c", _SCRIPT, "sh", str(int(head_bytes)), str(int(tail_bytes)), *[str(p) for p in paths]]


def parse_framed(data: bytes, count: int) -> list[LogPiece]:
    """The ``count`` pieces of the read script's output (see the module docstring)."""
    pieces: list[LogPiece] = []
    pos = 0
    for index in range(1, count + 1):
        end = data.find(b"\n", pos)
        if end < 0:
            raise FrameError(f"file {index}: no header (output ends at byte {pos})")
        fields = data[pos:end].split(b" ")
        try:
            if len(fields) != 6 or fields[0] != b"R1C" or int(fields[1]) != index:
                raise ValueError
            size, head_len, tail_off, tail_len = (int(f.decode("ascii")) for f in fields[2:])
        except (ValueError, UnicodeDecodeError):
            raise FrameError(f"file {index}: bad header {data[pos:end][:80]!r}") from None
        if min(head_len, tail_off, tail_len) < 0 or size < -1:
            raise FrameError(f"file {index}: negative length in header")
        pos = end + 1
        head, tail = data[pos:pos + head_len], data[pos + head_len:pos + head_len + tail_len]
        if len(head) != head_len or len(tail) != tail_len:
            raise FrameError(f"file {index}: {len(head) + len(tail)} of {head_len + tail_len} bytes "
                             "(the log shrank while it was read)")
        pos += head_len + tail_len
        pieces.append(LogPiece(size=size, head=head, tail_offset=tail_off, tail=tail))
    return pieces


def feed_pieces(lifecycle: JobLifecycle, pieces: Sequence[tuple[str, LogPiece]]) -> None:
    """Feed (stream name, piece) pairs through one LogParser each into ``lifecycle``."""
    for stream, piece in pieces:
        if piece.size < 0:
            continue
        lifecycle.on_log_seen()
        parser = lp.LogParser(stream)
        lifecycle.on_events(parser.feed(piece.head))
        if piece.tail:
            parser.skip_to(piece.tail_offset)
            lifecycle.on_events(parser.feed(piece.tail))
        lifecycle.on_events(parser.flush())


def time_left(info: JobInfo) -> int | None:
    """Seconds before SLURM's time limit (running jobs with a limit), else None."""
    if not info.is_active or info.time_limit is None or info.time_used is None:
        return None
    return max(0, info.time_limit - info.time_used)


def one_line_reason(state: LifecycleState) -> str | None:
    err = state.primary_error
    if err is None:
        return None
    line = " ".join(err.line.split())
    if len(line) > 160:
        line = line[:159] + "…"
    return f"{err.kind}: {err.explanation}" + (f" [{line}]" if line and err.stream != "slurm" else "")


def summarise(info: JobInfo, state: LifecycleState, *, health_ok: bool | None = None,
              head_host: str | None = None, port: int | None = None) -> dict:
    """The JSON keys ``status`` adds for a deployment. ``health_ok`` (``--probe``): /health's
    answer; a server whose log says ready but whose /health fails is still ``initialising``."""
    stage, detail = state.stage, state.detail
    if health_ok is False and stage is Stage.READY:
        stage, detail = Stage.INITIALISING, "the log says ready but /health does not answer"
    url = None
    if stage is Stage.READY:
        url = state.reachable_url or state.server_url  # as logged, a wildcard host made the head node's
        if url and head_host and ("://0.0.0.0:" in url or "://[::]:" in url):
            url = url.replace("://0.0.0.0:", f"://{head_host}:").replace("://[::]:", f"://{head_host}:")
    out = {
        "stage": stage.value,
        "shards_loaded": state.shards_loaded,
        "shards_total": state.shards_total,
        "eta_s": None if state.eta_s is None else round(state.eta_s, 1),
        "server_url": url,
        "reason": one_line_reason(state) if stage is Stage.FAILED else None,
        "time_left_s": time_left(info),
        "stage_detail": detail,
    }
    if health_ok is not None:
        out["health_ok"] = health_ok
    return out


def stage_text(summary: dict) -> str:
    """One short cell for tables: ``loading 40/163 ETA 5m``, ``failed: cuda_oom``, ``ready``."""
    stage = summary["stage"]
    if stage == "loading" and summary.get("shards_total"):
        eta = f" ETA {format_duration(summary['eta_s'])}" if summary.get("eta_s") is not None else ""
        return f"loading {summary['shards_loaded']}/{summary['shards_total']}{eta}"
    if stage == "failed" and summary.get("reason"):
        return "failed: " + summary["reason"].split(":", 1)[0]
    return stage


def lifecycle_for(info: JobInfo, pieces: Sequence[tuple[str, LogPiece]]) -> LifecycleState:
    lifecycle = JobLifecycle(live=False)
    lifecycle.on_slurm_state(info.state, info.reason or None)
    feed_pieces(lifecycle, pieces)
    return lifecycle.snapshot()


__all__ = ["HEAD_BYTES", "TAIL_BYTES", "FrameError", "LogPiece", "feed_pieces", "lifecycle_for", "one_line_reason",
           "parse_framed", "read_logs_argv", "stage_text", "summarise", "time_left"]
