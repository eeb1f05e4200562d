"""The one small async interface every way of reaching a cluster implements.

A :class:`Transport` runs an argv (with a timeout) and returns stdout/stderr/exit code; reads and
writes small files; streams the output of a long-running command; follows a file from a byte
offset (:class:`FileFollower`, reconnecting after a drop and resuming at the exact byte); and
opens a local port-forward to ``host:port`` as seen from the cluster.

Implementations: ``ssh_transport.SSHTransport`` (asyncssh, one multiplexed connection per cluster)
and ``local_transport.LocalTransport`` (asyncio subprocesses on the login node itself).
``connect.open_transport(cluster_spec, prompt)`` picks one.

Remote commands are always argv lists. A transport that needs a shell quotes every element with
``shlex.quote``; the only unquoted text it ever adds is its own constant (``SESSION_PID``).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import re
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from r1console.core.errors import EXIT_CLUSTER, R1Error, RemoteError

DEFAULT_TIMEOUT = 30.0
FOLLOW_CHUNK = 64 * 1024
#: How often a remote ``tail -F`` re-checks the file (polling file systems such as NFS) and whether
#: our session is still alive. inotify-capable file systems deliver appends at once regardless.
FOLLOW_SLEEP_S = 0.5


class TransportError(R1Error):
    """The cluster cannot be reached (connection refused, DNS, authentication, host key).

    ``transient``: worth retrying (network trouble), as opposed to a refused host key or login.
    """

    exit_code = EXIT_CLUSTER

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient


class TransportLost(TransportError):
    """An established connection dropped (killed, network gone, keepalives unanswered)."""


class ChannelRefused(TransportLost):
    """The connection is up but the login node refused a new channel (sshd ``MaxSessions``, a
    process limit on the login node). Retried with backoff like a drop, with its own message."""


class TransportTimeout(RemoteError):
    """A remote command did not finish in time (e.g. slurmctld not answering)."""


@dataclass(frozen=True)
class Prompt:
    """One question of a password / keyboard-interactive (two-factor) login."""

    text: str
    echo: bool = False


#: ``await prompt(title, instructions, [Prompt, ...]) -> [answer, ...]`` or None to give up.
#: The CLI asks on the terminal (``connect.terminal_prompt``); the TUI shows a dialog.
PromptCallback = Callable[[str, str, list[Prompt]], Awaitable[list[str] | None]]


class _SessionPid:
    """argv placeholder: ``--pid=<the process that owns this session>`` for ``tail``.

    A remote ``tail -F`` ends when our SSH session ends (``--pid="$PPID"``: the sshd session
    process); a local one when this Python process ends. So a follow never outlives its reader.
    """

    def __repr__(self) -> str:
        return "SESSION_PID"


SESSION_PID = _SessionPid()
ArgvItem = str | _SessionPid


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    raw_stdout: bytes = b""
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self, what: str | None = None, *, hint: str | None = None) -> "RunResult":
        """Raise RemoteError carrying the command's own stderr when it failed."""
        if self.returncode != 0:
            name = what or " ".join(self.argv[:2])
            raise RemoteError(f"{name} failed (exit {self.returncode})", argv=list(self.argv),
                              stderr=self.stderr or self.stdout, returncode=self.returncode, hint=hint)
        return self


@dataclass
class TransportStats:
    """Counters for tests and the bench: connections made and commands started."""

    connects: int = 0          # completed connections: one TCP connect + one SSH handshake each
    connect_attempts: int = 0
    reconnects: int = 0        # connects after the first
    commands: int = 0          # remote commands started by run()
    streams: int = 0           # long-running commands started by stream() (follows)
    bytes_streamed: int = 0
    command_log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))

    def note_command(self, argv: Sequence[str]) -> None:
        self.commands += 1
        self.command_log.append((time.monotonic(), tuple(argv[:3])))

    def snapshot(self) -> dict:
        return {"connects": self.connects, "connect_attempts": self.connect_attempts,
                "reconnects": self.reconnects, "commands": self.commands, "streams": self.streams,
                "bytes_streamed": self.bytes_streamed}


@dataclass
class PortForward:
    """A local address that reaches ``remote_host:remote_port`` on the cluster side."""

    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    _close: Callable[[], Awaitable[None]] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.local_host}:{self.local_port}"

    async def close(self) -> None:
        if self._close is not None:
            closer, self._close = self._close, None
            await closer()


_SLURM_CLIENTS = frozenset({"sbatch", "squeue", "scontrol", "sacct", "scancel", "srun", "sinfo", "sacctmgr"})


def timeout_hint(argv: Sequence[ArgvItem]) -> str | None:
    """The likely cause when a command times out: SLURM clients hang while slurmctld is down."""
    name = str(argv[0]) if argv else ""
    if name in _SLURM_CLIENTS:
        return "is slurmctld answering? SLURM commands hang while it is down or overloaded"
    return None


def display_argv(argv: Sequence[ArgvItem]) -> str:
    import shlex

    return " ".join("--pid=..." if a is SESSION_PID else shlex.quote(str(a)) for a in argv)


class Transport(abc.ABC):
    """Runs commands on one cluster's login node. Use as ``async with``."""

    label: str = "?"
    is_local: bool = False

    def __init__(self) -> None:
        self.stats = TransportStats()
        self._home: str | None = None
        self._user: str | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection (no-op for local). Raises TransportError with a clear message."""

    async def ensure_connected(self) -> None:
        """Reconnect after a drop (with backoff for SSH); raises TransportError when giving up."""
        await self.connect()

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "Transport":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- commands --------------------------------------------------------------------------
    @abc.abstractmethod
    async def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                  retry_on_drop: bool = True) -> RunResult:
        """Run ``argv``; never raises for a non-zero exit (see RunResult.check).

        Raises TransportTimeout after ``timeout`` seconds (the remote process is killed too), and
        TransportLost when the connection drops (after one reconnect-and-retry if ``retry_on_drop``;
        pass False for commands that must not run twice, such as sbatch).
        """

    @abc.abstractmethod
    def stream(self, argv: Sequence[ArgvItem], *,
               on_stderr: Callable[[bytes], None] | None = None) -> AsyncIterator[bytes]:
        """Start a long-running command and yield its stdout as it arrives (chunks <= 64 KiB).

        Ends when the command exits; raises TransportLost if the connection drops meanwhile.
        Closing the iterator stops the command.
        """

    # ---- files -----------------------------------------------------------------------------
    async def read_file(self, path: str, *, max_bytes: int = 16 * 1024 * 1024,
                        timeout: float = DEFAULT_TIMEOUT) -> bytes:
        result = await self.run(["head", "-c", str(max_bytes), "--", path], timeout=timeout)
        result.check(f"reading {path}")
        return result.raw_stdout

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600,
                         timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write ``data`` atomically (temp file + rename); the file is never readable by others."""
        # the temp file goes away whatever happens (a partial key must not stay behind)
        script = ('umask 077 && tmp="$1.tmp.$$" && trap \'rm -f -- "$tmp"\' EXIT && trap "exit 1" HUP INT TERM && '
                  'cat > "$tmp" && chmod "$2" -- "$tmp" && mv -f -- "$tmp" "$1"')
        result = await self.run(["sh", "-c", script, "sh", path, f"{mode:04o}"], stdin=data, timeout=timeout)
        result.check(f"writing {path}")

    async def mkdir(self, path: str, *, mode: int = 0o700, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Create ``path`` (and parents) with ``mode``; an existing directory is left as it is (never chmod'ed:
        it may be $HOME or a shared lab directory)."""
        script = 'if [ -d "$1" ]; then exit 0; fi; umask 077 && mkdir -p -- "$1" && chmod "$2" -- "$1"'
        result = await self.run(["sh", "-c", script, "sh", path, f"{mode:04o}"], timeout=timeout)
        result.check(f"creating {path}")

    async def identity(self) -> tuple[str, str]:
        """(home directory, user name) on the cluster; asked once per transport."""
        if self._home is None or self._user is None:
            result = await self.run(["sh", "-c", 'printf "%s\\n%s\\n" "$HOME" "$(id -un)"'])
            result.check("asking the cluster for $HOME")
            lines = result.stdout.splitlines()
            if len(lines) < 2 or not lines[0].startswith("/"):
                raise RemoteError(f"{self.label}: could not learn the home directory (got {result.stdout!r})")
            self._home, self._user = lines[0], lines[1]
        return self._home, self._user

    async def home(self) -> str:
        return (await self.identity())[0]

    async def expand_user(self, path: str) -> str:
        """``~`` / ``~/x`` -> absolute, with the cluster's $HOME."""
        if path == "~" or path.startswith("~/"):
            return (await self.home()).rstrip("/") + path[1:]
        if path.startswith("~"):
            raise R1Error(f"{path}: only ~ and ~/... are supported in cluster paths")
        return path

    # ---- follow + forward ------------------------------------------------------------------
    def follow(self, path: str, offset: int = 0, *, max_reconnect_s: float = 120.0,
               on_reset: Callable[["FollowReset"], None] | None = None) -> "FileFollower":
        return FileFollower(self, path, offset, max_reconnect_s=max_reconnect_s, on_reset=on_reset)

    @abc.abstractmethod
    async def forward_local_port(self, host: str, port: int) -> PortForward:
        """A 127.0.0.1 address that reaches ``host:port`` as seen from the login node."""


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
        pending = b""
        header = False
        async with contextlib.aclosing(self.transport.stream(self.argv(mode), on_stderr=self._on_stderr)) as chunks:
            async for data in chunks:
                pending += data
                if not header:
                    nl = pending.find(b"\n")
                    if nl < 0:
                        if len(pending) > 512:
                            raise RemoteError(f"following {self.path}: unexpected answer: {pending[:200]!r}")
                        continue
                    if not pending.startswith(_HEADER):
                        raise RemoteError(f"following {self.path} failed: "
                                          f"{pending[:nl].decode('utf-8', 'replace')[:300]}")
                    self._header(pending[:nl])
                    pending = pending[nl + 1:]
                    header = True
                while pending:
                    k = pending.find(b"tail: ")
                    if k < 0:
                        hold = _held_prefix(pending)
                        out, pending = pending[:len(pending) - hold], pending[len(pending) - hold:]
                        if out:
                            yield self._deliver(out)
                        break
                    nl = pending.find(b"\n", k)
                    if nl < 0 and len(pending) - k < _MESSAGE_MAX:
                        if k:
                            yield self._deliver(pending[:k])
                        pending = pending[k:]
                        break
                    m = self._message.match(pending, k, nl + 1) if nl >= 0 else None
                    if m is None:  # log text that merely contains "tail: "
                        yield self._deliver(pending[:k + 6])
                        pending = pending[k + 6:]
                        continue
                    if k:
                        yield self._deliver(pending[:k])
                    text = m.group(0).decode("utf-8", "replace").strip()
                    self.stderr_tail.append(text)
                    pending = pending[m.end():]
                    rest = m.group("rest")
                    if rest.startswith(b": file truncated"):
                        self._reset("truncated")   # tail goes on at byte 0 of the same file
                    elif b"has been replaced" in rest or b"has appeared" in rest:
                        # a new file: start over to learn its inode; this stream's bytes are dropped
                        if self.offset or self.inode is not None:
                            self._reset("replaced")
                        self.inode = None
                        yield "replaced"
                        return
                    elif b"has become inaccessible" in rest or text.startswith("tail: cannot open"):
                        pass  # tail waits for the file to (re)appear
                    else:
                        yield "tail: " + text  # e.g. a read error: check the file again, same offset
                        return
            if pending and header:
                yield self._deliver(pending)
        if not header:
            detail = "; ".join(self.stderr_tail) or "no message"
            raise RemoteError(f"following {self.path} stopped before it started ({detail})")
        yield "ended"

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


async def _reconnect_with_backoff(transport: Transport, max_wait_s: float) -> None:
    """Retry ``ensure_connected`` with exponential backoff (0.2 s doubling to 5 s) up to ``max_wait_s``."""
    deadline = time.monotonic() + max_wait_s
    delay = 0.2
    while True:
        try:
            await transport.ensure_connected()
            return
        except TransportLost:
            pass
        except TransportError as err:
            if not err.transient:
                raise
        if time.monotonic() + delay > deadline:
            raise TransportLost(f"{transport.label}: connection lost and not back within {max_wait_s:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


__all__ = ["DEFAULT_TIMEOUT", "FileFollower", "FollowReset", "PortForward", "Prompt", "PromptCallback", "RunResult",
           "SESSION_PID", "ChannelRefused", "Transport", "TransportError", "TransportLost", "TransportStats", "TransportTimeout",
           "display_argv"]
