"""The SSH transport: asyncssh, ONE connection per cluster, every command a channel on it.

* Opening the connection (OpenSSH config, host keys ALWAYS verified against known_hosts, password
  and two-factor prompts, ProxyJump hop by hop) is ``ssh_connect.SSHConnector``; port forwards are
  ``ssh_forward``. This module keeps the connection's life and the commands.
* Keepalives (every 15 s; 2 unanswered = dead, so a silent link is noticed within 45 s)
  detect a dead link; after a drop the next command reconnects (callers that
  stream use ``transport_types._reconnect_with_backoff``).
* Remote commands: ``shlex.quote`` of every argv element; SLURM and everything else run under
  ``timeout -k 5 T`` on the cluster so a hung command (slurmctld stopped) dies there too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shlex
import time
from collections.abc import AsyncIterator, Callable, Sequence

import asyncssh

from r1console.adapters import ssh_forward
from r1console.adapters.ssh_connect import SSHConnector
from r1console.adapters.transport import Transport
from r1console.adapters.transport_types import (
    DEFAULT_TIMEOUT,
    FOLLOW_CHUNK,
    SESSION_PID,
    ArgvItem,
    ChannelRefused,
    PortForward,
    PromptCallback,
    RunResult,
    TransportError,
    TransportLost,
    TransportTimeout,
    _reconnect_with_backoff,
    display_argv,
    timeout_hint,
)
from r1console.core.userconfig import ClusterSpec

_KILL_AFTER_S = 5
_DROP_ERRORS = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                BrokenPipeError, ConnectionError, EOFError, OSError)


class SSHTransport(SSHConnector, Transport):
    def __init__(self, spec: ClusterSpec, prompt: PromptCallback | None = None, *,
                 keepalive_interval: float = 15.0, keepalive_count_max: int = 2,
                 connect_timeout: float = 20.0) -> None:
        super().__init__()
        self.spec = spec
        self.label = spec.name or spec.host
        self.prompt = prompt
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.connect_timeout = connect_timeout
        self._conn: asyncssh.SSHClientConnection | None = None
        self._hops: list[asyncssh.SSHClientConnection] = []
        self._lock = asyncio.Lock()
        self._servers: list[asyncio.AbstractServer] = []
        self._closed = False
        self.last_loss: str | None = None

    # ---- the connection: open once, reopen after a drop -----------------------------------
    def _alive(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.is_closed()

    async def connect(self) -> None:
        if self._alive():
            return
        async with self._lock:
            if self._alive():
                return
            if self._closed:
                raise TransportError(f"{self.label}: the transport is closed")
            await self._drop_connection()
            conn = await self._open_chain(self.spec.host, user=self.spec.user, port=self.spec.port,
                                          identity=self.spec.identity_file,
                                          explicit_known_hosts=self.spec.known_hosts)
            self._conn = conn
            if self.stats.connects:
                self.stats.reconnects += 1
            self.stats.connects += 1

    async def ensure_connected(self) -> None:
        await self.connect()

    def _on_connection_lost(self, conn: asyncssh.SSHClientConnection | None, exc: Exception | None) -> None:
        if conn is not None and conn is self._conn:
            self.last_loss = str(exc) if exc else "closed"

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        hops, self._hops = self._hops, []
        for c in [conn, *reversed(hops)]:
            if c is not None:
                c.abort()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.wait_closed(), 2)

    async def close(self) -> None:
        self._closed = True
        for server in self._servers:
            server.close()
        self._servers.clear()
        conn, self._conn = self._conn, None
        hops, self._hops = self._hops, []
        for c in [conn, *reversed(hops)]:
            if c is not None:
                c.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.wait_closed(), 2)

    async def _connection(self) -> asyncssh.SSHClientConnection:
        await self.connect()
        assert self._conn is not None
        return self._conn

    def client_ports(self) -> set[int]:
        """Local TCP ports of the live connection (and its jump hops): to find it from outside."""
        ports = set()
        for conn in [self._conn, *self._hops]:
            if conn is not None and not conn.is_closed():
                sock = conn.get_extra_info("sockname")
                if sock:
                    ports.add(int(sock[1]))
        return ports

    def kill_connection_for_tests(self) -> None:
        """Abort the TCP connection as a network failure would (tests and the bench)."""
        if self._conn is not None:
            self._conn.abort()

    # ---- commands --------------------------------------------------------------------------
    def posix_line(self, argv: Sequence[ArgvItem], timeout: float | None = None) -> str:
        """The command as a POSIX sh line: every element ``shlex.quote``d."""
        prefix: list[str] = []
        if self.spec.env:
            prefix += ["env", *(f"{k}={v}" for k, v in self.spec.env.items())]
        if timeout:
            prefix += ["timeout", "-k", str(_KILL_AFTER_S), f"{timeout:g}"]
        words = [shlex.quote(p) for p in prefix]
        words += ['--pid="$PPID"' if a is SESSION_PID else shlex.quote(str(a)) for a in argv]
        return " ".join(words)

    def command_line(self, argv: Sequence[ArgvItem], timeout: float | None = None) -> str:
        """What sshd hands to the user's LOGIN shell (bash, dash, zsh, tcsh, fish...): always
        ``exec /bin/sh -c '<posix line>'``, so only /bin/sh parses our quoting (M11).

        Single quotes are literal in every one of those shells except for ``\\`` and ``\'``
        (fish), ``!`` (csh history) and a newline (csh); a line with any of them travels as
        base64 (``eval "$(echo … | base64 -d)"``, itself free of them). ``exec`` keeps $PPID the
        sshd session process, which ``SESSION_PID`` relies on.
        """
        line = self.posix_line(argv, timeout)
        if any(c in line for c in "\\!\n\r"):
            code = base64.b64encode(line.encode("utf-8", "surrogateescape")).decode("ascii")
            line = f'eval "$(echo {code} | base64 -d)"'
        return "exec /bin/sh -c " + shlex.quote(line)

    async def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                  retry_on_drop: bool = True) -> RunResult:
        argv = [str(a) for a in argv]
        cmdline = self.command_line(argv, timeout)
        for attempt in (0, 1):
            conn = await self._connection()
            self.stats.note_command(argv)
            started = time.monotonic()
            try:
                feed = {"input": stdin} if stdin is not None else {"stdin": asyncssh.DEVNULL}  # never left open
                result = await asyncio.wait_for(
                    conn.run(cmdline, encoding=None, check=False, **feed), timeout + _KILL_AFTER_S + 5)
            except asyncio.TimeoutError:
                raise TransportTimeout(
                    f"`{display_argv(argv)}` did not finish within {timeout:g} s on {self.label}", argv=argv,
                    hint=timeout_hint(argv)) from None
            except _DROP_ERRORS as err:
                lost = err
            else:
                elapsed = time.monotonic() - started
                if result.exit_status is None and conn.is_closed():
                    lost = ConnectionError(self.last_loss or "connection closed")
                else:
                    rc = result.exit_status if result.exit_status is not None else 255
                    if rc == 124 and elapsed >= timeout * 0.9:
                        raise TransportTimeout(
                            f"`{display_argv(argv)}` did not finish within {timeout:g} s on {self.label}",
                            argv=argv, stderr=_text(result.stderr),
                            hint=timeout_hint(argv))
                    out = result.stdout if isinstance(result.stdout, bytes) else (result.stdout or "").encode()
                    return RunResult(tuple(argv), rc, out.decode("utf-8", "replace"), _text(result.stderr),
                                     out, elapsed)
            # the connection dropped under this command (or sshd refused the channel)
            if isinstance(lost, asyncssh.ChannelOpenError) and not conn.is_closed():
                if attempt == 0 and retry_on_drop:
                    await asyncio.sleep(1.0)
                    continue
                raise ChannelRefused(_refused(self.label, lost) + f" (running `{display_argv(argv)}`)",
                                     hint=_REFUSED_HINT)
            if attempt == 0 and retry_on_drop:
                await _reconnect_with_backoff(self, 30.0)
                continue
            raise TransportLost(f"connection to {self.label} lost while running `{display_argv(argv)}`: {lost}",
                                hint=None if retry_on_drop else "it may or may not have run; check before retrying")
        raise AssertionError("unreachable")

    async def stream(self, argv: Sequence[ArgvItem], *,
                     on_stderr: Callable[[bytes], None] | None = None) -> AsyncIterator[bytes]:
        conn = await self._connection()
        cmdline = self.command_line(argv)
        self.stats.streams += 1
        try:
            proc = await conn.create_process(cmdline, encoding=None, stdin=asyncssh.DEVNULL)
        except asyncssh.ChannelOpenError as err:
            if not conn.is_closed():
                raise ChannelRefused(_refused(self.label, err), hint=_REFUSED_HINT) from None
            raise TransportLost(f"connection to {self.label} lost: {err}") from None
        except _DROP_ERRORS as err:
            raise TransportLost(f"connection to {self.label} lost: {err}") from None

        async def pump_stderr() -> None:
            with contextlib.suppress(*_DROP_ERRORS, asyncio.CancelledError):
                while data := await proc.stderr.read(4096):
                    if on_stderr:
                        on_stderr(data)

        err_task = asyncio.create_task(pump_stderr())
        try:
            while True:
                try:
                    data = await proc.stdout.read(FOLLOW_CHUNK)
                except _DROP_ERRORS as err:
                    raise TransportLost(f"connection to {self.label} lost: {err}") from None
                if not data:
                    break
                self.stats.bytes_streamed += len(data)
                yield data
            if conn.is_closed() or (proc.exit_status is None and proc.exit_signal is None):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait_closed(), 1.0)
                if conn.is_closed() or proc.exit_status is None and proc.exit_signal is None:
                    raise TransportLost(f"connection to {self.label} lost ({self.last_loss or 'closed'})")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(err_task), 1.0)
        finally:
            err_task.cancel()
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    proc.terminate()  # a "signal" channel request; tail also exits with the session
                proc.close()

    # ---- files over the same connection ---------------------------------------------------
    # (Transport.read_file / write_file / mkdir run head / sh / mkdir on this connection.)

    # ---- port forward ----------------------------------------------------------------------
    async def forward_local_port(self, host: str, port: int) -> PortForward:
        """127.0.0.1:<free port> reaching ``host:port`` through direct-tcpip channels on the CURRENT
        connection, so the forward survives a reconnect (``ssh_forward``)."""
        return await ssh_forward.forward_local_port(self._connection, self._servers, host, port)


_REFUSED_HINT = ("too many sessions at once on one connection? sshd's MaxSessions (default 10) "
                 "or a process limit on the login node")


def _refused(label: str, err: Exception) -> str:
    return f"{label}: the login node refused a new SSH channel ({err})"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


__all__ = ["SSHTransport"]
