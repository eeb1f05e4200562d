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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from r1console.core.errors import R1Error, RemoteError

DEFAULT_TIMEOUT = 30.0
FOLLOW_CHUNK = 64 * 1024
#: How often a remote ``tail -F`` re-checks the file (polling file systems such as NFS) and whether
#: our session is still alive. inotify-capable file systems deliver appends at once regardless.
FOLLOW_SLEEP_S = 0.5


class TransportError(R1Error):
    """The cluster cannot be reached (connection refused, DNS, authentication, host key).

    ``transient``: worth retrying (network trouble), as opposed to a refused host key or login.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient


class TransportLost(TransportError):
    """An established connection dropped (killed, network gone, keepalives unanswered)."""


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
    def follow(self, path: str, offset: int = 0, *, max_reconnect_s: float = 120.0) -> "FileFollower":
        return FileFollower(self, path, offset, max_reconnect_s=max_reconnect_s)

    @abc.abstractmethod
    async def forward_local_port(self, host: str, port: int) -> PortForward:
        """A 127.0.0.1 address that reaches ``host:port`` as seen from the login node."""


class FileFollower:
    """``tail -F``-like follow of one file from a byte offset, streamed over one channel.

    Iterate it for byte chunks. ``offset`` is always the byte position after the last chunk
    handed out; after a dropped connection the follower reconnects (with backoff) and restarts
    ``tail -c +OFFSET+1`` at exactly that byte, so no byte is lost or repeated. Memory is bounded
    by one chunk: the channel's flow control holds the rest on the cluster.
    """

    def __init__(self, transport: Transport, path: str, offset: int = 0, *, max_reconnect_s: float = 120.0):
        self.transport = transport
        self.path = path
        self.offset = int(offset)
        self.reconnects = 0
        self.max_reconnect_s = max_reconnect_s
        self.truncations = 0
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._gen: AsyncIterator[bytes] | None = None

    def argv(self) -> list[ArgvItem]:
        return ["tail", "-c", f"+{self.offset + 1}", "-F", "-s", f"{FOLLOW_SLEEP_S:g}", SESSION_PID, "--", self.path]

    def _on_stderr(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.stderr_tail.append(line.strip())
                if "file truncated" in line:
                    self.truncations += 1

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with contextlib.aclosing(self.transport.stream(self.argv(), on_stderr=self._on_stderr)) as chunks:
                    async for data in chunks:
                        self.offset += len(data)
                        yield data
            except TransportLost:
                self.reconnects += 1
                await _reconnect_with_backoff(self.transport, self.max_reconnect_s)
                continue
            detail = "; ".join(self.stderr_tail) or "no message"
            raise RemoteError(f"following {self.path} stopped: tail exited ({detail})")

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._gen is None:
            self._gen = self._chunks()
        return self._gen

    async def aclose(self) -> None:
        if self._gen is not None:
            gen, self._gen = self._gen, None
            await gen.aclose()  # type: ignore[attr-defined]


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


__all__ = ["DEFAULT_TIMEOUT", "FileFollower", "PortForward", "Prompt", "PromptCallback", "RunResult",
           "SESSION_PID", "Transport", "TransportError", "TransportLost", "TransportStats", "TransportTimeout",
           "display_argv"]
