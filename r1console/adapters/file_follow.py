"""Following one file on the cluster from a byte offset: :class:`FileFollower` and :class:`FollowReset`.

One ``sh -c`` script per stream checks the file is still the one we were reading (inode, size, the
bytes before the offset) and runs ``tail -F`` with its messages in band, so a truncation or a
replacement is seen at the exact byte. After a dropped connection the follower reconnects and
resumes at that byte. ``Transport.follow`` builds one over any transport.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shlex
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r1console.adapters.transport_types import (
    SESSION_PID,
    ArgvItem,
    TransportLost,
    _reconnect_with_backoff,
)
from r1console.core.errors import RemoteError

if TYPE_CHECKING:
    from r1console.adapters.transport import Transport

#: How often a remote ``tail -F`` re-checks the file (polling file systems such as NFS) and whether
#: our session is still alive. inotify-capable file systems deliver appends at once regardless.
FOLLOW_SLEEP_S = 0.5

#: The follow script, run under /bin/sh on the cluster. It checks the file before ``tail`` starts:
#: the same inode as before (``$3``, ``-`` = unknown), at least ``$2`` bytes, and the ``$4`` bytes
#: before the offset (hex) unchanged; otherwise it starts at byte 0 (a new generation: requeue
#: truncates the .out, ``mv`` + recreate replaces it). Then one header line
#: ``R1C-FOLLOW <inode> <size> <start>`` and tail's output with its messages IN BAND (2>&1): GNU
#: tail flushes stdout before each message, so "file truncated" / "has been replaced" arrive at
#: exactly the byte where the next generation starts. ``$6`` = ``once``: print to the current end.
_FOLLOW_SCRIPT = r"""p=$1 off=$2 ino=$3 want=$4 pid=$5 mode=$6
LC_ALL=C; export LC_ALL
start=0
if st=$(stat -L -c '%i %s' -- "$p" 2>/dev/null); then
  i=${st% *}; s=${st#* }; start=$off
  if [ "$off" -gt 0 ]; then
    if [ "$ino" != - ] && [ "$i" != "$ino" ]; then start=0
    elif [ "$s" -lt "$off" ]; then start=0
    elif [ -n "$want" ]; then
      n=$((${#want} / 2))
      got=$(tail -c +$((off - n + 1)) -- "$p" | head -c "$n" | od -An -v -tx1 | tr -d ' \n')
      [ "$got" = "$want" ] || start=0
    fi
  fi
else i=- s=-; fi
printf 'R1C-FOLLOW %s %s %s\n' "$i" "$s" "$start"
if [ "$mode" = once ]; then exec tail -c +$((start + 1)) -- "$p" 2>&1; fi
exec tail -c +$((start + 1)) ---disable-inotify --max-unchanged-stats=1 -F -s "$7" "$pid" -- "$p" 2>&1
"""
_HEADER = b"R1C-FOLLOW "
_WINDOW = 32          # bytes before the offset compared on every restart
_MESSAGE_MAX = 4096   # an in-band tail message is one line shorter than this


@dataclass
class _StreamBuffer:
    """What one stream has read and not handed out yet, and whether its header line was read."""

    data: bytes = b""
    header: bool = False


@dataclass(frozen=True)
class FollowReset:
    """The followed file started over: its bytes from ``old_offset`` on are not coming.

    ``reason``: "truncated" (same file, shorter: requeue, ``: > file``), "replaced" (another inode:
    ``mv`` + recreate, log rotation) or "missing" (the file is gone). The follow goes on at byte 0
    of the new file: ``offset`` is 0 again and ``generation`` counts the resets.
    """

    reason: str
    old_offset: int
    generation: int
    path: str

    def describe(self) -> str:
        return f"{self.path} was {self.reason} (after byte {self.old_offset}); following it again from byte 0"


class FileFollower:
    """``tail -F``-like follow of one file from a byte offset, streamed over one channel.

    Iterate it for byte chunks. ``offset`` is always the byte position, in the current file, after
    the last chunk handed out. After a dropped connection the follower reconnects (with backoff)
    and restarts at exactly that byte, after checking the file is still the same one (inode, size
    and the bytes just before the offset); a truncated or replaced file is followed from byte 0
    again and reported once through ``on_reset`` (before its first chunk), never duplicated or
    skipped. Memory is bounded by one chunk: the channel's flow control holds the rest on the
    cluster.
    """

    def __init__(self, transport: Transport, path: str, offset: int = 0, *, max_reconnect_s: float = 120.0,
                 on_reset: Callable[[FollowReset], None] | None = None):
        self.transport = transport
        self.path = path
        self.offset = int(offset)
        self.reconnects = 0
        self.restarts = 0              # streams started (channels opened), the first one included
        self.max_reconnect_s = max_reconnect_s
        self.on_reset = on_reset
        self.resets: list[FollowReset] = []
        self.inode: str | None = None
        self.last_error: str | None = None   # why the last stream ended early (drop, refused channel)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._window = b""             # the last bytes handed out (<= _WINDOW) of this generation
        self._gen: AsyncIterator[bytes] | None = None
        names = {path, shlex.quote(path), "'" + path + "'"}
        alt = b"|".join(re.escape(n.encode("utf-8", "surrogateescape")) for n in sorted(names, key=len, reverse=True))
        self._message = re.compile(rb"tail: (?:.*?)(?:" + alt + rb")(?P<rest>[^\n]*)\n")

    @property
    def truncations(self) -> int:
        return sum(1 for r in self.resets if r.reason == "truncated")

    def argv(self, mode: str = "follow") -> list[ArgvItem]:
        return ["sh", "-c", _FOLLOW_SCRIPT, "sh", self.path, str(self.offset), self.inode or "-",
                self._window.hex(), SESSION_PID, mode, f"{FOLLOW_SLEEP_S:g}"]

    def _on_stderr(self, data: bytes) -> None:  # the script sends everything to stdout; sh itself may not
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.stderr_tail.append(line.strip())

    def _reset(self, reason: str) -> None:
        event = FollowReset(reason, self.offset, len(self.resets) + 1, self.path)
        self.resets.append(event)
        self.offset = 0
        self._window = b""
        if self.on_reset is not None:
            self.on_reset(event)

    def _deliver(self, data: bytes) -> bytes:
        self.offset += len(data)
        self._window = (self._window + data)[-_WINDOW:]
        return data

    def _header(self, line: bytes) -> None:
        parts = line.decode("ascii", "replace").split()
        if len(parts) != 4 or not parts[3].isdigit():
            raise RemoteError(f"following {self.path}: unexpected answer from the cluster: {line[:200]!r}")
        inode, _size, start = parts[1], parts[2], int(parts[3])
        if start != self.offset:
            if inode == "-":
                reason = "missing"
            elif self.inode is not None and inode != self.inode:
                reason = "replaced"
            else:
                reason = "truncated"
            self._reset(reason)
        self.inode = None if inode == "-" else inode

    async def _one_stream(self, mode: str) -> AsyncIterator[bytes | str]:
        """One channel: chunks of the file, or a str telling why this stream must be restarted."""
        self.restarts += 1
        buf = _StreamBuffer()
        async with contextlib.aclosing(self.transport.stream(self.argv(mode), on_stderr=self._on_stderr)) as chunks:
            async for data in chunks:
                buf.data += data
                if not buf.header and not self._take_header(buf):
                    continue
                for item in self._split(buf):
                    yield item
                    if isinstance(item, str):
                        return
            if buf.data and buf.header:
                yield self._deliver(buf.data)
        if not buf.header:
            detail = "; ".join(self.stderr_tail) or "no message"
            raise RemoteError(f"following {self.path} stopped before it started ({detail})")
        yield "ended"

    def _take_header(self, buf: _StreamBuffer) -> bool:
        """Read the script's header line off ``buf`` once it is complete; False while it is not."""
        nl = buf.data.find(b"\n")
        if nl < 0:
            if len(buf.data) > 512:
                raise RemoteError(f"following {self.path}: unexpected answer: {buf.data[:200]!r}")
            return False
        if not buf.data.startswith(_HEADER):
            raise RemoteError(f"following {self.path} failed: "
                              f"{buf.data[:nl].decode('utf-8', 'replace')[:300]}")
        self._header(buf.data[:nl])
        buf.data = buf.data[nl + 1:]
        buf.header = True
        return True

    def _split(self, buf: _StreamBuffer) -> Iterator[bytes | str]:
        """The file's bytes in ``buf`` (delivered as they are yielded), up to what may still be an
        incomplete in-band ``tail:`` message (kept in ``buf``); a str ends this stream (see :meth:`_on_message`)."""
        while buf.data:
            pending = buf.data
            k = pending.find(b"tail: ")
            if k < 0:
                hold = _held_prefix(pending)
                out, buf.data = pending[:len(pending) - hold], pending[len(pending) - hold:]
                if out:
                    yield self._deliver(out)
                return
            nl = pending.find(b"\n", k)
            if nl < 0 and len(pending) - k < _MESSAGE_MAX:
                buf.data = pending[k:]
                if k:
                    yield self._deliver(pending[:k])
                return
            m = self._message.match(pending, k, nl + 1) if nl >= 0 else None
            if m is None:  # log text that merely contains "tail: "
                buf.data = pending[k + 6:]
                yield self._deliver(pending[:k + 6])
                continue
            buf.data = pending[m.end():]
            if k:
                yield self._deliver(pending[:k])
            text = m.group(0).decode("utf-8", "replace").strip()
            self.stderr_tail.append(text)
            restart = self._on_message(m.group("rest"), text)
            if restart is not None:
                yield restart
                return

    def _on_message(self, rest: bytes, text: str) -> str | None:
        """Act on one in-band ``tail:`` message: None to go on reading, else why the stream must restart."""
        if rest.startswith(b": file truncated"):
            self._reset("truncated")   # tail goes on at byte 0 of the same file
            return None
        if b"has been replaced" in rest or b"has appeared" in rest:
            # a new file: start over to learn its inode; this stream's bytes are dropped
            if self.offset or self.inode is not None:
                self._reset("replaced")
            self.inode = None
            return "replaced"
        if b"has become inaccessible" in rest or text.startswith("tail: cannot open"):
            return None  # tail waits for the file to (re)appear
        return "tail: " + text  # e.g. a read error: check the file again, same offset

    async def _chunks(self, mode: str = "follow") -> AsyncIterator[bytes]:
        streak_since: float | None = None   # a run of streams that delivered nothing
        idle_restarts = 0
        delay = 0.2
        while True:
            got_bytes = False
            lost: TransportLost | None = None
            try:
                async for item in self._one_stream(mode):
                    if isinstance(item, bytes):
                        got_bytes = True
                        yield item
                    elif item == "ended":
                        if mode == "once":
                            return
                        detail = "; ".join(self.stderr_tail) or "no message"
                        raise RemoteError(f"following {self.path} stopped: tail exited ({detail})")
                    else:
                        break  # restart in band (a new file, a read error): the next stream checks the file
            except TransportLost as err:
                lost = err
                self.last_error = err.message
                self.reconnects += 1
            now = time.monotonic()
            if got_bytes:
                streak_since, idle_restarts, delay = None, 0, 0.2
            else:
                # nothing came through: never spin (sshd refusing channels: MaxSessions, a pids limit)
                streak_since = streak_since or now
                idle_restarts += 1
                if lost is not None and now - streak_since > self.max_reconnect_s:
                    raise TransportLost(f"following {self.path}: no data for {self.max_reconnect_s:.0f} s; "
                                        f"last error: {lost.message}", hint=lost.hint) from None
                if lost is not None or idle_restarts > 1:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if lost is not None:
                await _reconnect_with_backoff(self.transport, self.max_reconnect_s)

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._gen is None:
            self._gen = self._chunks()
        return self._gen

    async def rest(self) -> AsyncIterator[bytes]:
        """The file from ``offset`` to its current end, with the same checks (then stop)."""
        async with contextlib.aclosing(self._chunks("once")) as chunks:
            async for data in chunks:
                yield data

    async def aclose(self) -> None:
        if self._gen is not None:
            gen, self._gen = self._gen, None
            await gen.aclose()  # type: ignore[attr-defined]


def _held_prefix(data: bytes) -> int:
    """How many trailing bytes could start an in-band ``tail: `` message (held for the next chunk)."""
    marker = b"tail: "
    for n in range(min(len(marker) - 1, len(data)), 0, -1):
        if data.endswith(marker[:n]):
            return n
    return 0


__all__ = ["FOLLOW_SLEEP_S", "FileFollower", "FollowReset"]
