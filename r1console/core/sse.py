"""Incremental Server-Sent Events parser: bytes in, events out.

vLLM (and every OpenAI-compatible server) streams chat completions as ``text/event-stream``:
``data: {json}\\n\\n`` per chunk, ending with ``data: [DONE]``. Network reads cut that text at
arbitrary places: in the middle of a line, between ``\\r`` and ``\\n``, or inside a multi-byte
UTF-8 character. :class:`SSEParser` buffers whatever is incomplete and returns only whole
events, following the WHATWG "event stream interpretation" rules:

* lines end with CRLF, LF or CR;
* a line starting with ``:`` is a comment (keep-alive pings) and is ignored;
* ``field: value`` — one optional space after the colon is removed; a line without a colon is a
  field with an empty value;
* several ``data`` lines of one event are joined with ``\\n``;
* an empty line dispatches the event; an event with no ``data`` line is not dispatched;
* ``id`` and ``retry`` are remembered; unknown fields are ignored;
* a UTF-8 byte order mark at the very start is dropped;
* at end of stream an event that was never terminated by an empty line is **not** dispatched
  (:attr:`SSEParser.truncated` tells whether such a fragment was left, which is how a cut
  stream shows up).

Bounded (L8): a line longer than ``max_line`` (1 MiB) or an event whose data exceeds
``max_event`` (16 MiB) raises :class:`SSELimitError` (a ProtocolError: the server is broken), and
an unfinished line is scanned only once, however many pieces it arrives in.

Pure: no I/O. Used by the vLLM client and, later, the batch runner.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from r1console.core.api_errors import ProtocolError
from r1console.core.textnum import is_ascii_int

DONE = "[DONE]"
MAX_LINE = 1 << 20
MAX_EVENT = 16 << 20


class SSELimitError(ProtocolError):
    """The event stream broke a size limit: a line or an event too long for any real server."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. ``data`` is the joined ``data:`` lines (no trailing newline)."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def is_done(self) -> bool:
        """The OpenAI end-of-stream sentinel ``data: [DONE]``."""
        return self.data.strip() == DONE


class SSEParser:
    """Feed raw bytes (or text) as they arrive; get back the events completed by them.

    >>> p = SSEParser()
    >>> p.feed(b'data: {"a"')
    []
    >>> p.feed(b': 1}\\n\\ndata: [DONE]\\n\\n')
    [SSEEvent(data='{"a": 1}', event='message', id=None, retry=None), SSEEvent(data='[DONE]', event='message', id=None, retry=None)]
    """

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self.max_line = max_line
        self.max_event = max_event
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""           # text not yet split into complete lines
        self._scanned = 0           # how much of _buffer is known to hold no line ending
        self._data_chars = 0        # size of the data lines of the event being built
        self._started = False       # BOM check done
        self._data: list[str] = []  # data lines of the event being built
        self._event_type = ""
        self._has_fields = False    # any field line seen since the last dispatch
        self.last_event_id: str | None = None
        self.retry: int | None = None
        #: Set by :meth:`close`: the stream ended inside an event (a cut stream).
        self.truncated = False

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        """Add the next piece of the stream; return every event it completes, in order."""
        text = self._decoder.decode(chunk) if isinstance(chunk, (bytes, bytearray)) else chunk
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        self._buffer += text
        if len(self._buffer) - self._scanned <= 0:
            return []
        events = self._drain()
        if len(self._buffer) > self.max_line:
            raise SSELimitError(f"the event stream sent a line longer than {self.max_line} characters "
                                "without a line ending: not a well-formed server")
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: returns the events that the end completes (a final lone CR is a line
        ending) and sets :attr:`truncated` when an unterminated event or line was left over.

        Per the SSE rules such a fragment is discarded, not dispatched: a stream cut in the
        middle of an event must not yield half a JSON document.
        """
        self._buffer += self._decoder.decode(b"", final=True)
        events: list[SSEEvent] = []
        if self._buffer.endswith("\r"):
            self._buffer = self._buffer[:-1] + "\n"
            events = self._drain()
        self.truncated = bool(self._buffer) or self._has_fields
        self._buffer = ""
        self._scanned = 0
        self._reset_event()
        return events

    # -- internals -------------------------------------------------------------------------

    def _drain(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        buf = self._buffer
        start = 0
        n = len(buf)
        # the unfinished line left by the last feed had no line ending: start looking after it
        scan_from = max(0, self._scanned - 1)  # a kept trailing CR is looked at again
        while start < n:
            lf = buf.find("\n", max(start, scan_from))
            cr = buf.find("\r", max(start, scan_from))
            scan_from = 0
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                # A CR: either CRLF or a lone CR. If it is the last character we cannot tell
                # yet, so keep it for the next feed.
                if cr == n - 1:
                    break
                line = buf[start:cr]
                start = cr + 2 if buf[cr + 1] == "\n" else cr + 1
            else:
                line = buf[start:lf]
                start = lf + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buf[start:]
        self._scanned = len(self._buffer)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        self._has_fields = True
        if field == "data":
            self._data_chars += len(value) + 1
            if self._data_chars > self.max_event:
                raise SSELimitError(f"an event of the stream is larger than {self.max_event} characters: "
                                    "not a well-formed server")
            self._data.append(value)
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry":
            if is_ascii_int(value):
                self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._reset_event()
            return None
        event = SSEEvent(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self.last_event_id,
            retry=self.retry,
        )
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._data = []
        self._data_chars = 0
        self._event_type = ""
        self._has_fields = False


def parse_sse(payload: bytes | str) -> list[SSEEvent]:
    """Parse a complete stream at once (tests, captures)."""
    parser = SSEParser()
    return parser.feed(payload) + parser.close()
