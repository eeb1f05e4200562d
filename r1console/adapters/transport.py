"""The one small async interface every way of reaching a cluster implements.

A :class:`Transport` runs an argv (with a timeout) and returns stdout/stderr/exit code; reads and
writes small files; streams the output of a long-running command; follows a file from a byte
offset (:class:`FileFollower`, reconnecting after a drop and resuming at the exact byte); and
opens a local port-forward to ``host:port`` as seen from the cluster.

Implementations: ``ssh_transport.SSHTransport`` (asyncssh, one multiplexed connection per cluster)
and ``local_transport.LocalTransport`` (asyncio subprocesses on the login node itself).
``connect.open_transport(cluster_spec, prompt)`` picks one. The values and errors a transport hands
out live in ``transport_types``, the file follower in ``file_follow``; every name is importable from here.

Remote commands are always argv lists. A transport that needs a shell quotes every element with
``shlex.quote``; the only unquoted text it ever adds is its own constant (``SESSION_PID``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence

from r1console.adapters.file_follow import FOLLOW_SLEEP_S, FileFollower, FollowReset
from r1console.adapters.transport_types import (
    DEFAULT_TIMEOUT,
    FOLLOW_CHUNK,
    SESSION_PID,
    ArgvItem,
    ChannelRefused,
    PortForward,
    Prompt,
    PromptCallback,
    RunResult,
    TransportError,
    TransportLost,
    TransportStats,
    TransportTimeout,
    display_argv,
    timeout_hint,
)
from r1console.core.errors import R1Error, RemoteError


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


__all__ = ["DEFAULT_TIMEOUT", "FOLLOW_CHUNK", "FOLLOW_SLEEP_S", "SESSION_PID", "ArgvItem", "ChannelRefused",
           "FileFollower", "FollowReset", "PortForward", "Prompt", "PromptCallback", "RunResult", "Transport",
           "TransportError", "TransportLost", "TransportStats", "TransportTimeout", "display_argv", "timeout_hint"]
