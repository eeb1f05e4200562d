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

from r1console.core.logparse.events import *  # noqa: F403 - the public event types
from r1console.core.logparse.events import TEXT_MAX, parse_duration, timestamp_key
from r1console.core.logparse.events import __all__ as _EVENTS
from r1console.core.logparse.matchers import NEEDLES, TABLE, Matcher
from r1console.core.logparse.parser import MAX_SEGMENT, LogParser, parse_bytes

__all__ = [*_EVENTS, "MAX_SEGMENT", "NEEDLES", "TABLE", "LogParser", "Matcher", "TEXT_MAX", "parse_bytes",
           "parse_duration", "timestamp_key"]
