"""Incremental parser: raw bytes of a job's ``.out`` / ``.err`` -> typed events.

Pure: no I/O, no clock. One :class:`LogParser` per stream (file). Feed it bytes as they
arrive, in chunks of any size and split anywhere; :meth:`LogParser.feed` returns the events of
every segment completed by the chunk, :meth:`LogParser.flush` those of a final unterminated
segment. Splitting a stream into chunks differently never changes the events (property-tested
in ``tests/unit/test_logparse_fuzz.py``).

What it copes with (formats: ``docs/facts.md`` §2):

* tqdm: a *segment* ends at ``\\n`` **or** ``\\r``, so every ``\\r`` redraw is its own segment,
  and several bars glued on one segment are each found. ``lineno`` is the physical line
  (``\\n``-counted, 1-based), ``offset`` the byte offset of the segment in the stream.
* ANSI colour codes (vLLM 0.10-0.24 colour their prefixes even into files; Ray colours its own).
* Prefixes ``(APIServer pid=…)``, ``(EngineCore_DP0 pid=…)``, ``(RayWorkerWrapper pid=…, ip=…)``,
  nested, plus ``VLLM_LOGGING_PREFIX`` text: matching searches, it never anchors on a prefix.
* Ray's ``[repeated Nx across cluster]`` suffix (-> ``Event.repeat``).
* Any bytes: undecodable bytes become U+FFFD, never an exception.
* Memory: a segment longer than ``max_segment`` bytes is cut to its first ``max_segment`` bytes
  (the rest is dropped, identically for every chunking), so a stream without newlines cannot
  grow the buffer. The cost per byte is constant.

Speed: most bytes of a long-running server's log are uvicorn access lines, request logs and
periodic stats. Those are recognised at C speed by one regex at line starts and skipped; every
other segment is checked for a literal *needle* of some matcher before anything is decoded.
``bench/bench_logparse.py`` prints the throughput.

Events are frozen dataclasses, all with the :class:`Event` base fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1console.core import fatal as _fatal

MAX_SEGMENT = 64 * 1024
TEXT_MAX = 500  # characters of the cleaned line kept in Event.text


# ================================================================================================
# Events
# ================================================================================================
@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    stream: str = ""  # the LogParser's stream name (e.g. the file name)
    lineno: int | None = None  # physical line, 1-based; None after LogParser.skip_to()
    offset: int = 0  # byte offset of the segment in the stream
    text: str = ""  # the cleaned message (ANSI, prefixes, level header removed), <= TEXT_MAX
    ts: float | None = None  # the line's own timestamp (see timestamp_key), if it has one
    origin: str = ""  # innermost process prefix, e.g. "RayWorkerWrapper pid=233, ip=10.0.0.2"
    repeat: int = 1  # Ray's "[repeated Nx across cluster]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardProgress(Event):
    """One tqdm redraw of the checkpoint-shard bar (any ``desc``)."""

    desc: str
    n: int
    total: int
    percent: int
    elapsed_s: float
    remaining_s: float | None  # tqdm's own estimate; None when it shows "?"
    rate_per_s: float | None  # shards per second from tqdm's rate ("6.90s/it", "2.1it/s")
    eager: bool = False  # 0.33 "(eager)" suffix


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightsLoaded(Event):
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoaded(Event):
    """``Model loading took X GiB [memory] and Y seconds`` (per rank)."""

    gib: float
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KvCacheMemory(Event):
    gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KvCache(Event):
    """KV cache capacity: V1 ``GPU KV cache size: N tokens`` and/or ``Maximum concurrency for M
    tokens per request: X.XXx`` (one line in 0.33, two before), or V0 ``# CUDA blocks: B``."""

    tokens: int | None = None
    max_concurrency: float | None = None
    tokens_per_request: int | None = None
    gpu_blocks: int | None = None
    cpu_blocks: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphsCaptured(Event):
    seconds: float
    gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineInitDone(Event):
    """``init engine (profile, create kv cache, warmup model) took X seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VllmVersion(Event):
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerReady(Event):
    """The API server is about to serve. ``wording``: ``api_server`` (0.7-0.8
    ``Starting vLLM API server on URL``), ``api_server_n`` (0.9-0.17 ``… server 0 on URL``),
    ``server`` (0.18+ ``Starting vLLM server on URL``) or ``uvicorn`` (``Application startup
    complete.``, no URL)."""

    url: str | None
    wording: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadNode(Event):
    host: str
    source: str  # "seed" ("Head node: X") or "r1console" ("[r1console] head_node=X")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptMarker(Event):
    """A ``[r1console] <name> key=value …`` line of our SLURM script (also ``seed_head_ip`` /
    ``seed_head_port`` for the seed's ``Head node IP:`` / ``Head port:`` lines)."""

    name: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.fields:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True, kw_only=True)
class RayWaiting(Event):
    """``[r1console] ray_waiting nodes=x/N gpus=y/M``."""

    nodes: int
    nodes_total: int
    gpus: int | None = None
    gpus_total: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RayReady(Event):
    """``[r1console] ray_ready nodes=N gpus=M``."""

    nodes: int
    gpus: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RayPlacementWait(Event):
    """vLLM: ``Waiting for creating a placement group of specs for N seconds``."""

    seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Milestone(Event):
    """A minor positive step. ``name``: ``engine_init``, ``load_start``, ``graphs``,
    ``ray_head_start``, ``ray_worker_start``, ``ray_connected``, ``vllm_starting``."""

    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Event):
    """A deliberate stop: vLLM's ``[shutdown] … signal=SIGTERM`` or uvicorn's ``Shutting down``."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled(Event):
    """``*** JOB N ON host CANCELLED AT time ***`` without a ``DUE TO`` (i.e. scancel)."""

    job_id: str
    host: str
    when: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FatalError(Event):
    """A known fatal signature (``core/fatal.py``) or ``[r1console] FATAL kind message``."""

    kind: str
    explanation: str
    what_to_try: str
    root_cause: bool = True
    consequence: bool = False
    detail: str | None = None
    context: str | None = None  # for generic kinds: the last exception line before it


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """A notable line that is not fatal (e.g. a job step exited non-zero)."""

    kind: str
    explanation: str
    what_to_try: str
    consequence: bool = False
    detail: str | None = None


# ================================================================================================
# Helpers
# ================================================================================================
def timestamp_key(month: int, day: int, hour: int, minute: int, second: int) -> float:
    """Seconds since an arbitrary start of year; orders vLLM's ``MM-DD HH:MM:SS`` against
    SLURM's ``YYYY-MM-DDTHH:MM:SS`` (both local time; the year is not logged by vLLM)."""
    return float((((month * 31 + day) * 24 + hour) * 60 + minute) * 60 + second)


def parse_duration(text: str) -> float | None:
    """tqdm's ``[H:]MM:SS`` -> seconds; None for ``?``."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)


def _parse_rate(rate: str | None) -> float | None:
    if not rate:
        return None
    rate = rate.strip()
    try:
        if rate.endswith("s/it"):
            value = float(rate[:-4])
            return 1.0 / value if value > 0 else None
        if rate.endswith("it/s"):
            return float(rate[:-4])
    except ValueError:
        return None
    return None


def _int(text: str) -> int:
    return int(text.replace(",", ""))


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

_SHARD = re.compile(
    r"(?P<desc>(?:Multi-thread )?[Ll]oading (?:\w+ )*?(?:checkpoint )?shards(?P<eager> \(eager\))?"
    r"|Loading safetensors using [\w ]+?)"
    r": *(?P<pct>\d{1,3})%[^\r\n\[]{0,80}?(?P<n>\d+)/(?P<total>\d+) "
    r"\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:]+|\?)(?:, *(?P<rate>[^\]]*))?\]")
_GRAPH_BAR = re.compile(
    r"Capturing (?:CUDA graphs?|cudagraphs?)[^:\r\n]{0,80}: *\d{1,3}%[^\r\n\[]{0,80}?"
    r"(?P<n>\d+)/(?P<total>\d+) \[")
_GRAPH_START = re.compile(r"Capturing (?:CUDA graphs?|cudagraphs?)")

_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_SEED_HEAD = re.compile(r"^Head node: (?P<host>\S+)\s*$")
_SEED_HEAD_IP = re.compile(r"^Head node IP: (?P<ip>\S+)\s*$")
_SEED_HEAD_PORT = re.compile(r"^Head port: (?P<port>\d+)\s*$")
_SEED_RAY = re.compile(r"^Starting Ray (?P<what>head|worker) on (?P<host>\S+)")

_VERSION_API = re.compile(r"vLLM (?:API )?server version (?P<v>\d[\w.+\-]*)")
_VERSION_ENGINE = re.compile(r"Initializing an? (?:V1 )?LLM engine \(v(?P<v>[^)\s]+)\)")
_VERSION_BANNER = re.compile(r"[\u2580\u2584\u2588] +version +(?P<v>\d[\w.+\-]*)")
_LOAD_START = re.compile(r"Starting to load model (?P<model>\S+?)\.{3}")
_WEIGHTS = re.compile(r"Loading weights took (?P<s>[\d.]+) ?s")
_MODEL_LOADED = re.compile(r"Model loading took (?P<gib>[\d.]+) ?GiB(?: memory)? and (?P<s>[\d.]+) ?s")
_KV_MEMORY = re.compile(r"Available KV cache memory: (?P<gib>[\d.]+) ?GiB")
_KV_SIZE = re.compile(r"KV cache size: (?P<tok>[\d,]+) tokens")
_KV_CONC = re.compile(r"Maximum concurrency for (?P<tpr>[\d,]+) tokens per request: (?P<x>[\d.]+)x")
_KV_BLOCKS = re.compile(r"# \w+ blocks: (?P<g>\d+), # CPU blocks: (?P<c>\d+)")
_GRAPHS_DONE = re.compile(r"Graph capturing finished in (?P<s>[\d.]+) secs?, took (?P<gib>-?[\d.]+) GiB")
_INIT_DONE = re.compile(r"init engine \([^)]*\) took (?P<s>[\d.]+) ?s")
_READY = re.compile(r"Starting vLLM (?P<api>API )?server(?: (?P<idx>\d+))? on (?P<url>\S+)")
_PLACEMENT_WAIT = re.compile(r"Waiting for creating a placement group of specs for (?P<s>\d+) seconds")
_SHUTDOWN_SIGNAL = re.compile(r"\[shutdown\].*?signal=(?P<sig>SIG[A-Z]+)")
_CANCEL = re.compile(
    r"\*\*\* (?P<what>JOB|STEP) (?P<id>\S+) ON (?P<host>\S+) CANCELLED AT (?P<when>\S+)"
    r"(?P<due> DUE [Tt][Oo] .*?)? \*\*\*")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): \S")
_CONTEXT_WINDOW = 256 * 1024  # bytes: an exception line this close before a generic failure

# Every literal some matcher needs; a segment containing none of them yields no event.
_NEEDLES: tuple[str, ...] = (
    "shards", "Loading safetensors using", "Capturing CUDA graph", "Capturing cudagraph",
    "[r1console]", "Head node", "Head port:", "Starting Ray ", "Connected to Ray cluster",
    "server version", "LLM engine (v", "version", "Starting to load model", "Loading weights took",
    "Model loading took", "Available KV cache memory", "KV cache size:", "Maximum concurrency for",
    " blocks: ", "Graph capturing finished", "init engine (", "Starting vLLM",
    "Application startup complete", "placement group of specs", "[shutdown]", "Shutting down",
    "CANCELLED AT", "Error: ", "Exception: ",
) + _fatal.ALL_NEEDLES
_TRIGGER_B = re.compile(b"|".join(re.escape(n.encode()) for n in sorted(set(_NEEDLES))))


# ================================================================================================
# Parser
# ================================================================================================
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
            bars = self._bars(text, lineno, offset, origin, repeat)
            if bars:
                out.extend(bars)
                return

        level: str | None = None
        ts: float | None = None
        msg = text
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
            msg = text[m.end():]
        else:
            m = _VLLM_HEADER.search(text, 0, 240)
            if m is not None:
                level = m.group("level")
                ts = timestamp_key(int(m.group("mo")), int(m.group("d")), int(m.group("h")),
                                   int(m.group("mi")), int(m.group("s")))
                msg = text[m.end():]
        msg = msg.strip()
        if not msg:
            return
        if ts is None and "CANCELLED AT" in msg:
            m = _ISO_TS.search(msg)
            if m is not None:
                ts = timestamp_key(*(int(g) for g in m.groups()))

        base = dict(stream=self.stream, lineno=lineno, offset=offset, text=msg[:TEXT_MAX], ts=ts,
                    origin=origin, repeat=repeat)
        self._match(msg, level, base, offset, out)

    def _match(self, msg: str, level: str | None, base: dict, offset: int, out: list[Event]) -> None:
        # ---- progress bars (several may be glued together) --------------------------------------
        if "shards" in msg or "Loading safetensors using" in msg:
            out.extend(self._bars(msg, base["lineno"], offset, base["origin"], base["repeat"], base["ts"]))
        if "Capturing " in msg:
            bars = list(_GRAPH_BAR.finditer(msg))
            for m in bars:
                out.append(Milestone(**base, name="graphs", detail=f"{m.group('n')}/{m.group('total')}"))
            if not bars and _GRAPH_START.search(msg):
                out.append(Milestone(**base, name="graphs"))

        # ---- our script and the seed's echo lines ---------------------------------------------
        if msg.startswith("[r1console]"):
            self._marker(msg, base, out)
            return
        if msg.startswith("Head "):
            m = _SEED_HEAD.match(msg)
            if m:
                out.append(HeadNode(**base, host=m.group("host"), source="seed"))
                return
            m = _SEED_HEAD_IP.match(msg)
            if m:
                out.append(ScriptMarker(**base, name="seed_head_ip", fields=(("head_ip", m.group("ip")),)))
                return
            m = _SEED_HEAD_PORT.match(msg)
            if m:
                out.append(ScriptMarker(**base, name="seed_head_port", fields=(("port", m.group("port")),)))
                return
        if msg.startswith("Starting Ray "):
            m = _SEED_RAY.match(msg)
            if m:
                out.append(Milestone(**base, name=f"ray_{m.group('what')}_start", detail=m.group("host")))
                return

        # ---- vLLM milestones ----------------------------------------------------------------------
        if "version" in msg:
            m = _VERSION_API.search(msg) or _VERSION_BANNER.search(msg)
            if m:
                out.append(VllmVersion(**base, version=m.group("v").rstrip(".")))
        if "LLM engine (v" in msg:
            m = _VERSION_ENGINE.search(msg)
            if m:
                out.append(VllmVersion(**base, version=m.group("v")))
                out.append(Milestone(**base, name="engine_init"))
        if "Connected to Ray cluster" in msg:
            out.append(Milestone(**base, name="ray_connected"))
        if "placement group of specs" in msg:
            m = _PLACEMENT_WAIT.search(msg)
            if m:
                out.append(RayPlacementWait(**base, seconds=int(m.group("s"))))
        if "Starting to load model" in msg:
            m = _LOAD_START.search(msg)
            out.append(Milestone(**base, name="load_start", detail=m.group("model") if m else ""))
        if "Loading weights took" in msg:
            m = _WEIGHTS.search(msg)
            if m:
                out.append(WeightsLoaded(**base, seconds=float(m.group("s"))))
        if "Model loading took" in msg:
            m = _MODEL_LOADED.search(msg)
            if m:
                out.append(ModelLoaded(**base, gib=float(m.group("gib")), seconds=float(m.group("s"))))
        if "Available KV cache memory" in msg:
            m = _KV_MEMORY.search(msg)
            if m:
                out.append(KvCacheMemory(**base, gib=float(m.group("gib"))))
        if "KV cache size:" in msg or "Maximum concurrency for" in msg or " blocks: " in msg:
            kv: dict = {}
            m = _KV_SIZE.search(msg)
            if m:
                kv["tokens"] = _int(m.group("tok"))
            m = _KV_CONC.search(msg)
            if m:
                kv["tokens_per_request"] = _int(m.group("tpr"))
                kv["max_concurrency"] = float(m.group("x"))
            m = _KV_BLOCKS.search(msg)
            if m:
                kv["gpu_blocks"] = int(m.group("g"))
                kv["cpu_blocks"] = int(m.group("c"))
            if kv:
                out.append(KvCache(**base, **kv))
        if "Graph capturing finished" in msg:
            m = _GRAPHS_DONE.search(msg)
            if m:
                out.append(GraphsCaptured(**base, seconds=float(m.group("s")), gib=float(m.group("gib"))))
        if "init engine (" in msg:
            m = _INIT_DONE.search(msg)
            if m:
                out.append(EngineInitDone(**base, seconds=float(m.group("s"))))
        if "Starting vLLM" in msg:
            m = _READY.search(msg)
            if m:
                wording = "server" if not m.group("api") else ("api_server_n" if m.group("idx") else "api_server")
                out.append(ServerReady(**base, url=m.group("url").rstrip(".,;"), wording=wording))
        if "Application startup complete" in msg:
            out.append(ServerReady(**base, url=None, wording="uvicorn"))
        if "[shutdown]" in msg:
            m = _SHUTDOWN_SIGNAL.search(msg)
            if m:
                out.append(Shutdown(**base, reason=m.group("sig")))
        if msg == "Shutting down":
            out.append(Shutdown(**base, reason="uvicorn"))
        if "CANCELLED AT" in msg:
            m = _CANCEL.search(msg)
            if m and not m.group("due") and m.group("what") == "JOB":
                out.append(JobCancelled(**base, job_id=m.group("id"), host=m.group("host"),
                                        when=m.group("when")))

        # ---- fatal signatures (never for INFO/DEBUG/WARNING lines) ----------------------------
        if level in _GATED_LEVELS or msg.startswith("raise "):  # raise: traceback source code
            return
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
        if ("Error: " in msg or "Exception: " in msg) and _EXCEPTION.match(msg):
            # keep the first exception of a burst: later ones usually re-raise it
            if self._last_exc is None or offset - self._last_exc[0] > _CONTEXT_WINDOW:
                self._last_exc = (offset, msg[:TEXT_MAX])

    def _bars(self, text: str, lineno: int | None, offset: int, origin: str, repeat: int,
              ts: float | None = None) -> list[Event]:
        found: list[Event] = []
        for m in _SHARD.finditer(text):
            found.append(ShardProgress(
                stream=self.stream, lineno=lineno, offset=offset, text=text[:TEXT_MAX], ts=ts,
                origin=origin, repeat=repeat, desc=m.group("desc"), n=int(m.group("n")),
                total=int(m.group("total")), percent=int(m.group("pct")),
                elapsed_s=parse_duration(m.group("elapsed")) or 0.0,
                remaining_s=parse_duration(m.group("remaining")),
                rate_per_s=_parse_rate(m.group("rate")), eager=bool(m.group("eager"))))
        return found

    def _marker(self, msg: str, base: dict, out: list[Event]) -> None:
        """``[r1console] <name> key=value …`` or ``[r1console] key=value …`` (name = first key)."""
        rest = msg[len("[r1console]"):].strip()
        first, _, tail = rest.partition(" ")
        if not first:
            return
        if first == "FATAL":
            kind, _, message = tail.strip().partition(" ")
            message = message.strip()
            kind = kind or "script"
            explanation, what = _fatal.script_fatal(kind, message)
            out.append(FatalError(**base, kind=kind, explanation=explanation, what_to_try=what,
                                  detail=message or None))
            return
        if "=" in first:
            name = first.partition("=")[0]
            fields = _marker_fields(rest)
        else:
            name = first
            fields = _marker_fields(tail)
        values = dict(fields)
        if name == "ray_waiting":
            nodes = _FRACTION.match(values.get("nodes", ""))
            gpus = _FRACTION.match(values.get("gpus", ""))
            if nodes:
                out.append(RayWaiting(**base, nodes=int(nodes.group(1)), nodes_total=int(nodes.group(2)),
                                      gpus=int(gpus.group(1)) if gpus else None,
                                      gpus_total=int(gpus.group(2)) if gpus else None))
                return
        elif name == "ray_ready":
            if values.get("nodes", "").isdigit():
                gpus = values.get("gpus", "")
                out.append(RayReady(**base, nodes=int(values["nodes"]),
                                    gpus=int(gpus) if gpus.isdigit() else None))
                return
        elif name == "vllm_starting":
            out.append(Milestone(**base, name="vllm_starting"))
            return
        elif name == "head_node" and values.get("head_node"):
            out.append(HeadNode(**base, host=values["head_node"], source="r1console"))
            return
        out.append(ScriptMarker(**base, name=name, fields=fields))


def _marker_fields(rest: str) -> tuple[tuple[str, str], ...]:
    """``a=1 b=x y c=2`` -> (("a","1"), ("b","x y"), ("c","2")): a word without "=" belongs to
    the value before it (``rendered_by=r1console 0.1.0 profile=h200x8``)."""
    fields: list[list[str]] = []
    for word in rest.split():
        key, eq, value = word.partition("=")
        if eq and key.replace("_", "").replace("-", "").isalnum():
            fields.append([key, value])
        elif fields:
            fields[-1][1] = f"{fields[-1][1]} {word}" if fields[-1][1] else word
    return tuple((k, v) for k, v in fields)


def parse_bytes(data: bytes, stream: str = "", *, max_segment: int = MAX_SEGMENT) -> list[Event]:
    """All events of a complete stream (feed + flush)."""
    parser = LogParser(stream, max_segment=max_segment)
    return parser.feed(data) + parser.flush()
