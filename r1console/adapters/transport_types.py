"""The values and errors every :class:`~r1console.adapters.transport.Transport` hands out.

The errors (unreachable, lost, a refused channel, a timeout), the login prompts, the ``SESSION_PID``
argv placeholder, a command's :class:`RunResult`, the counters, a :class:`PortForward`, and the
reconnect-with-backoff loop the SSH transport and the file follower share after a drop. The
interface itself is ``transport.Transport``; following a file is ``file_follow``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from r1console.core.errors import EXIT_CLUSTER, R1Error, RemoteError

if TYPE_CHECKING:
    from r1console.adapters.transport import Transport

DEFAULT_TIMEOUT = 30.0
FOLLOW_CHUNK = 64 * 1024


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


__all__ = ["DEFAULT_TIMEOUT", "FOLLOW_CHUNK", "SESSION_PID", "ArgvItem", "ChannelRefused", "PortForward", "Prompt",
           "PromptCallback", "RunResult", "TransportError", "TransportLost", "TransportStats", "TransportTimeout",
           "display_argv", "timeout_hint"]
