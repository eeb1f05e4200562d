"""The incremental byte parser (see the package docstring): segments, cleaning, level gating.

Every segment is cleaned in one place (:meth:`LogParser._segment`): ANSI escapes removed, ``\r``
and ``\n`` both end a segment (tqdm redraws, CRLF files), process prefixes and the level header
stripped. What the cleaned line means comes from ``matchers.TABLE`` and ``core/fatal.py``.
"""

from __future__ import annotations

import re

from r1console.core import fatal as _fatal
from r1console.core.logparse import matchers
from r1console.core.logparse.events import TEXT_MAX, Event, FatalError, Notice, timestamp_key

MAX_SEGMENT = 64 * 1024

# ---- bytes level -------------------------------------------------------------------------------
_ANSI_B = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_A = rb"(?:\x1b\[[\d;]*m)?"
# Lines that never produce an event: uvicorn access lines, vLLM request logs, periodic stats.
# Only a prefix of the line is looked at (<= ~400 bytes), never past its end.
_BORING = (
    rb"INFO: +[\d\[]"
    rb"|" + _A + rb"(?:\([^()\r\n]{1,160}\)" + _A + rb" ){0,3}"
    rb"(?:INFO|DEBUG) \d\d-\d\d [\d:]{8}(?:\.\d+)? \[?[\w./-]{1,80}:\d+\] (?:Engine \d+: )?"
    rb"(?:Avg prompt throughput|Received request|Added request|Finished request|Aborted request)"
)
_BORING_RE = re.compile(_BORING)
_CANDIDATE_START = re.compile(rb"\n(?!" + _BORING + rb")")
_TERM = re.compile(rb"[\r\n]")

# ---- str level ---------------------------------------------------------------------------------
_REPEAT = re.compile(r"\s*\[repeated (\d+)x across cluster\].*$")
_PREFIX = re.compile(
    r"(?:\[[\d;]*m)?\((?=[A-Za-z_]|pid=)(?P<name>[A-Za-z_][\w:.\-]*(?: rank=\d+)?(?:,? ?pid=\d+)?"
    r"(?:, ip=[\w.:\-]+)?|pid=\d+(?:, ip=[\w.:\-]+)?)\)(?:\[[\d;]*m)? ?")
_VLLM_HEADER = re.compile(
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<mo>\d\d)-(?P<d>\d\d) "
    r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:[.,]\d+)? \[?[^\]\s]+:\d+\] ?")
_OTHER_HEADER = re.compile(
    r"(?P<uv>DEBUG|INFO|WARNING|ERROR|CRITICAL): +"  # uvicorn
    r"|(?:\[rank\d+\]:)?\[(?P<glog>[IWEF])\d{4} [\d:.]+ [^\]]*\] ?"  # glog / torch C++
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(?P<ray>DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ -- "
    r"|\[\d{4}-\d\d-\d\d [\d:,]+ (?P<raycc>[IWEF]) \d+ \d+\] ")
_GLOG_LEVEL = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
_GATED_LEVELS = frozenset({"DEBUG", "INFO", "WARNING"})
_ISO_TS = re.compile(r"CANCELLED AT \d{4}-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)")

_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)(?:\([\w.]+\))?: \S")
_EXC_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.)*(?P<name>[A-Za-z_]\w*)")
# Python's own (not logged) traceback ends with the exception that killed the process or thread.
_UNCAUGHT_EXPLANATION = "A vLLM process died of an unhandled {name}: {detail}"
_UNCAUGHT_WHAT = ("Read the traceback above this line in the log (the frames show what was being set "
                  "up); fix that and resubmit.")
_CONTEXT_WINDOW = 256 * 1024  # bytes: an exception line this close before a generic failure

_TRIGGER_B = re.compile(b"|".join(re.escape(n.encode()) for n in matchers.NEEDLES))


class LogParser:
    """Incremental parser for one stream. ``feed(bytes) -> list[Event]``, ``flush()`` at EOF."""

    def __init__(self, stream: str = "", *, max_segment: int = MAX_SEGMENT) -> None:
        self.stream = stream
        self.max_segment = max(1024, int(max_segment))
        self._buf = bytearray()  # current unterminated segment, at most max_segment bytes
        self._seg_start = 0  # stream offset of the current segment
        self._seg_line_start = True  # the current segment starts a physical line
        self._pos = 0  # stream offset of the next byte fed
        self._lineno: int | None = 1  # physical line of the current segment
        self._discard = False  # after skip_to(): drop bytes through the next "\n"
        self._last_exc: tuple[int, str] | None = None  # (offset, line) of the last exception
        self._tb_open: set[str] = set()  # origins inside a raw (not logged) Python traceback
        self.bytes_fed = 0
        self.skipped_bytes = 0

    # ---- public --------------------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Stream offset of the next byte to feed."""
        return self._pos

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        if not data:
            return out
        data = bytes(data)
        self.bytes_fed += len(data)
        base = self._pos  # stream offset of data[0]
        self._pos += len(data)
        n = len(data)
        i = 0
        if self._discard:
            j = data.find(b"\n")
            if j < 0:
                return out
            self._discard = False
            i = j + 1
            self._start_segment(base + i, line_start=True)
        # 1. finish the pending segment, and the rest of its physical line
        if self._buf or not self._seg_line_start or self._seg_start != base + i:
            i = self._segments(data, i, base, out, to_line_start=True)
            if i >= n:
                return out
        # 2. whole physical lines: the fast path
        last_nl = data.rfind(b"\n", i)
        if last_nl >= i:
            self._scan_lines(data, i, last_nl + 1, base, out)
            i = last_nl + 1
            self._start_segment(base + i, line_start=True)
        # 3. the unterminated rest: its "\r" segments now (bounded memory), buffer the last one
        if i < n:
            self._segments(data, i, base, out, to_line_start=False)
        return out

    def flush(self) -> list[Event]:
        """End of stream: the last segment, even without a terminator."""
        out: list[Event] = []
        if self._discard:
            self._discard = False
        elif self._buf or self._seg_start < self._pos:
            self._finish_segment(b"", out)
        self._start_segment(self._pos, line_start=True)
        return out

    def skip_to(self, offset: int, *, at_line_start: bool = False) -> None:
        """The next bytes fed start at stream ``offset`` (a jump ahead, e.g. to a file's tail).

        Pending bytes are dropped. Unless ``at_line_start`` (the byte before ``offset`` is a
        newline), the bytes up to the first newline are dropped too, since they are the end of
        a line whose start was not seen. Line numbers are unknown from here on (None)."""
        if offset > self._pos:
            self.skipped_bytes += offset - self._pos
        self._buf.clear()
        self._pos = offset
        self._lineno = None
        self._discard = not at_line_start
        self._start_segment(offset, line_start=True)

    # ---- internals -----------------------------------------------------------------------------
    def _start_segment(self, offset: int, *, line_start: bool) -> None:
        self._buf.clear()
        self._seg_start = offset
        self._seg_line_start = line_start

    def _append(self, chunk: bytes) -> None:
        room = self.max_segment - len(self._buf)
        if room > 0:
            self._buf += chunk[:room]

    def _finish_segment(self, term: bytes, out: list[Event]) -> None:
        """The buffered segment is complete, terminated by ``term`` (b"" at end of stream).

        Only a segment that starts a physical line and ends it ("\\n" or EOF) may be skipped as
        boring; segments around a "\\r" (tqdm) are always parsed."""
        seg = bytes(self._buf)
        if not (self._seg_line_start and term != b"\r" and _BORING_RE.match(seg)):
            self._segment(seg, self._lineno, self._seg_start, out)
        if term == b"\n" and self._lineno is not None:
            self._lineno += 1

    def _segments(self, data: bytes, i: int, base: int, out: list[Event], *,
                  to_line_start: bool) -> int:
        """Slow path: complete segments one terminator at a time from data[i]. Stops after a
        "\\n" when ``to_line_start``; buffers an unterminated rest. Returns the next index."""
        n = len(data)
        while i < n:
            m = _TERM.search(data, i)
            if m is None:
                self._append(data[i:])
                return n
            j = m.start()
            term = data[j:j + 1]
            self._append(data[i:j])
            self._finish_segment(term, out)
            i = j + 1
            self._start_segment(base + i, line_start=(term == b"\n"))
            if to_line_start and term == b"\n":
                return i
        return i

    def _scan_lines(self, data: bytes, start: int, end: int, base: int, out: list[Event]) -> None:
        """data[start:end] is whole physical lines (ends with "\\n"): skip boring lines fast."""
        cands: list[int] = []
        if not _BORING_RE.match(data, start):
            cands.append(start)
        for m in _CANDIDATE_START.finditer(data, start, end - 1):
            cands.append(m.end())
        # Lines with a "\r" are never skipped (tqdm segments may follow a boring one).
        j = data.find(b"\r", start, end)
        if j >= 0:
            extra = []
            while j >= 0:
                ls = data.rfind(b"\n", start, j) + 1
                extra.append(max(ls, start))
                nl = data.find(b"\n", j, end)
                j = data.find(b"\r", nl + 1, end) if nl >= 0 else -1
            cands = sorted(set(cands).union(extra))
        lineno = self._lineno
        prev = start
        mx = self.max_segment
        for s in cands:
            if s >= end:
                continue
            e = data.find(b"\n", s, end)
            if lineno is not None:
                lineno += data.count(b"\n", prev, s)
            prev = s
            line = data[s:e]
            if b"\r" not in line:
                self._segment(line[:mx], lineno, base + s, out)
                continue
            p = s
            for piece in line.split(b"\r"):
                self._segment(piece[:mx], lineno, base + p, out)
                p += len(piece) + 1
        if lineno is not None:
            lineno += data.count(b"\n", prev, end)
        self._lineno = lineno

    def _segment(self, raw: bytes, lineno: int | None, offset: int, out: list[Event]) -> None:
        """Parse one complete segment (the slow path, only for lines with a needle)."""
        if not raw:
            return
        if b"\x1b" in raw:
            raw = _ANSI_B.sub(b"", raw)
        if _TRIGGER_B.search(raw) is None:
            return
        text = raw.decode("utf-8", "replace")

        repeat = 1
        k = text.find("[repeated ")
        if k >= 0:
            m = _REPEAT.search(text, k)
            if m is not None:
                repeat = int(m.group(1))
                text = text[:m.start()]

        origin = ""
        pos = 0
        while True:
            m = _PREFIX.match(text, pos)
            if m is None:
                break
            origin = m.group("name")
            pos = m.end()
        if pos:
            text = text[pos:]

        if text[:1] in ("L", "M") and ("shards" in text or "Loading safetensors using" in text):
            # fast path for tqdm's shard bar: never has a level header, never a fatal line
            bars = matchers.shard_bars(text, dict(stream=self.stream, lineno=lineno, offset=offset,
                                                  text=text[:TEXT_MAX], ts=None, origin=origin, repeat=repeat))
            if bars:
                out.extend(bars)
                return

        level, ts, msg = _level_header(text)
        indented = msg[:1] in (" ", "\t")
        msg = msg.strip()
        if not msg:
            return
        if ts is None and "CANCELLED AT" in msg:
            m = _ISO_TS.search(msg)
            if m is not None:
                ts = timestamp_key(*(int(g) for g in m.groups()))

        base = dict(stream=self.stream, lineno=lineno, offset=offset, text=msg[:TEXT_MAX], ts=ts,
                    origin=origin, repeat=repeat)
        self._match(msg, level, base, offset, out, indented)

    def _match(self, msg: str, level: str | None, base: dict, offset: int, out: list[Event],
               indented: bool = False) -> None:
        if matchers.match_line(msg, base, out):
            return
        # ---- fatal signatures (never for INFO/DEBUG/WARNING lines) ----------------------------
        if level in _GATED_LEVELS or msg.startswith("raise "):  # raise: traceback source code
            return
        origin = base["origin"]
        uncaught = False
        if level is None and not indented:
            if msg.startswith("Traceback (most recent call last)"):
                self._tb_open.add(origin)
                return
            if origin in self._tb_open and _EXCEPTION.match(msg):
                self._tb_open.discard(origin)
                uncaught = True
        fm = _fatal.match(msg)
        if fm is not None:
            sig = fm.signature
            if not sig.fatal:
                out.append(Notice(**base, kind=sig.kind, explanation=fm.explanation,
                                  what_to_try=sig.what_to_try, consequence=sig.consequence,
                                  detail=fm.detail))
                return
            context = None
            if not sig.root_cause and self._last_exc is not None:
                exc_off, exc_line = self._last_exc
                if offset - exc_off <= _CONTEXT_WINDOW:
                    context = exc_line
            out.append(FatalError(**base, kind=sig.kind, explanation=fm.explanation,
                                  what_to_try=sig.what_to_try, root_cause=sig.root_cause,
                                  consequence=sig.consequence, detail=fm.detail, context=context))
            return
        if uncaught:
            name_m = _EXC_NAME.match(msg)
            name = name_m.group("name") if name_m else "exception"
            detail = msg.partition(": ")[2].strip()[:200]
            out.append(FatalError(**base, kind="uncaught_exception",
                                  explanation=_UNCAUGHT_EXPLANATION.format(name=name, detail=detail),
                                  what_to_try=_UNCAUGHT_WHAT, consequence=True, detail=name))
        if ("Error: " in msg or "Exception: " in msg) and _EXCEPTION.match(msg):
            # keep the first exception of a burst: later ones usually re-raise it
            if self._last_exc is None or offset - self._last_exc[0] > _CONTEXT_WINDOW:
                self._last_exc = (offset, msg[:TEXT_MAX])


def _level_header(text: str) -> tuple[str | None, float | None, str]:
    """(level, the line's own timestamp, the message after the header) of a prefix-free line."""
    m = _OTHER_HEADER.match(text)
    if m is not None:
        if m.group("uv"):
            level = m.group("uv")
        elif m.group("glog"):
            level = _GLOG_LEVEL[m.group("glog")]
        elif m.group("ray"):
            level = m.group("ray")
        else:
            level = _GLOG_LEVEL[m.group("raycc")]
        return level, None, text[m.end():]
    m = _VLLM_HEADER.search(text, 0, 240)
    if m is not None:
        ts = timestamp_key(int(m.group("mo")), int(m.group("d")), int(m.group("h")), int(m.group("mi")),
                           int(m.group("s")))
        return m.group("level"), ts, text[m.end():]
    return None, None, text


def parse_bytes(data: bytes, stream: str = "", *, max_segment: int = MAX_SEGMENT) -> list[Event]:
    """All events of a complete stream (feed + flush)."""
    parser = LogParser(stream, max_segment=max_segment)
    return parser.feed(data) + parser.flush()


__all__ = ["MAX_SEGMENT", "LogParser", "parse_bytes"]
