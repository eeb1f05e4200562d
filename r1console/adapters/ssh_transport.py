"""The SSH transport: asyncssh, ONE connection per cluster, every command a channel on it.

* OpenSSH client config is honoured (``~/.ssh/config`` or the cluster's ``ssh_config``): Host alias,
  HostName, User, Port, IdentityFile, HostKeyAlias, ProxyJump (each hop opened here, so each hop's
  host key is verified the same way).
* Host keys are ALWAYS verified against known_hosts (the cluster's ``known_hosts``, else the
  config's UserKnownHostsFile, else ``~/.ssh/known_hosts``). An unknown or changed key is a
  refusal with a clear message; ``UserKnownHostsFile none`` is refused rather than obeyed.
* Password and keyboard-interactive (two-factor) prompts go to a ``PromptCallback``.
* Keepalives (every 15 s; 2 unanswered = dead, so a silent link is noticed within 45 s)
  detect a dead link; after a drop the next command reconnects (callers that
  stream use ``transport._reconnect_with_backoff``).
* Remote commands: ``shlex.quote`` of every argv element; SLURM and everything else run under
  ``timeout -k 5 T`` on the cluster so a hung command (slurmctld stopped) dies there too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import os
import shlex
import time
from collections.abc import AsyncIterator, Callable, Sequence

import asyncssh
from asyncssh.config import SSHClientConfig

from r1console.adapters.transport import (
    DEFAULT_TIMEOUT,
    FOLLOW_CHUNK,
    SESSION_PID,
    ArgvItem,
    ChannelRefused,
    PortForward,
    Prompt,
    PromptCallback,
    RunResult,
    Transport,
    TransportError,
    TransportLost,
    TransportTimeout,
    _reconnect_with_backoff,
    display_argv,
    timeout_hint,
)
from r1console.core.textnum import is_ascii_int
from r1console.core.userconfig import ClusterSpec

_KILL_AFTER_S = 5
_DROP_ERRORS = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                BrokenPipeError, ConnectionError, EOFError, OSError)
_MAX_PASSWORD_TRIES = 3


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


class _Client(asyncssh.SSHClient):
    """Callbacks of one SSH connection: prompts and loss notification."""

    def __init__(self, owner: "SSHTransport", label: str, prompt: PromptCallback | None) -> None:
        self._owner = owner
        self._label = label
        self._prompt = prompt
        self._password_tries = 0
        self._kbdint_tries = 0
        self.conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_connection_lost(self.conn, exc)

    async def password_auth_requested(self) -> str | None:
        if self._prompt is None or self._password_tries >= _MAX_PASSWORD_TRIES:
            return None
        self._password_tries += 1
        answers = await self._prompt(f"SSH login to {self._label}", "",
                                     [Prompt(f"Password for {self._label}: ", echo=False)])
        return answers[0] if answers else None

    def kbdint_auth_requested(self) -> str | None:
        return "" if self._prompt is not None else None

    async def kbdint_challenge_received(self, name: str, instructions: str, lang: str,
                                        prompts: Sequence[tuple[str, bool]]) -> list[str] | None:
        if not prompts:
            return []
        if self._prompt is None or self._kbdint_tries >= _MAX_PASSWORD_TRIES:
            return None
        self._kbdint_tries += 1
        answers = await self._prompt(name or f"SSH login to {self._label}", instructions,
                                     [Prompt(text, echo) for text, echo in prompts])
        return list(answers) if answers is not None else None


class SSHTransport(Transport):
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

    # ---- config ----------------------------------------------------------------------------
    def config_paths(self) -> list[str]:
        if self.spec.ssh_config:
            path = _expand(self.spec.ssh_config)
            if not os.path.isfile(path):
                raise TransportError(f"cluster {self.label}: ssh_config {self.spec.ssh_config} does not exist")
            return [path]
        default = _expand("~/.ssh/config")
        return [default] if os.path.isfile(default) else []

    def host_config(self, host: str, *, user: str | None = None, port: int | None = None) -> SSHClientConfig:
        try:
            return SSHClientConfig.load(None, self.config_paths(), False, False, False, getpass.getuser(),
                                        user if user else (), host, port if port else ())
        except (OSError, ValueError, asyncssh.Error) as err:
            raise TransportError(f"cannot read the SSH config for {host}: {err}") from None

    def known_hosts_for(self, cfg: SSHClientConfig, host: str, *, explicit: str | None) -> list[str]:
        if explicit:
            path = _expand(explicit)
            if not os.path.isfile(path):
                raise TransportError(f"known_hosts file {explicit} (cluster {self.label}) does not exist",
                                     hint=f"run `ssh {host}` once to verify and record its host key")
            return [path]
        user_files = cfg.get("UserKnownHostsFile")
        if user_files == [] or (isinstance(user_files, list) and any(f.lower() == "none" for f in user_files)):
            raise TransportError(
                f"the SSH config sets `UserKnownHostsFile none` for {host}: r1console always verifies host keys",
                hint="remove that line, or set known_hosts: for this cluster in the r1console config")
        candidates = list(user_files or ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"])
        candidates += list(cfg.get("GlobalKnownHostsFile") or ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"])
        existing = [p for p in (_expand(c) for c in candidates) if os.path.isfile(p)]
        if not existing:
            raise TransportError(
                f"the host key of {host} cannot be verified: no known_hosts file exists "
                f"({', '.join(candidates)})",
                hint=f"run `ssh {host}` once to verify the key and record it, then try again")
        return existing

    # ---- connecting ------------------------------------------------------------------------
    def _describe(self, cfg: SSHClientConfig, alias: str, user: str | None, port: int | None) -> tuple[str, int, str]:
        hostname = str(cfg.get("Hostname", alias))
        real_port = int(port or cfg.get("Port", 22) or 22)
        login = user or cfg.get("User") or getpass.getuser()
        return hostname, real_port, str(login)

    def _key_problem(self, known: list[str], cfg: SSHClientConfig, alias: str, hostname: str, port: int) -> str:
        lookup = str(cfg.get("HostKeyAlias") or hostname)
        try:
            keys = asyncssh.match_known_hosts(known, lookup, hostname, port if port != 22 else None)[0]
        except Exception:  # noqa: BLE001 - only used to word the message
            keys = []
        where = f"{hostname}:{port}" if port != 22 else hostname
        if keys:
            return (f"the host key of {alias} ({where}) has CHANGED: it does not match the key in "
                    f"{', '.join(known)}. Someone may be intercepting the connection, or the host was "
                    "reinstalled. r1console refuses to connect.")
        return (f"the host key of {alias} ({where}) is unknown (not in {', '.join(known)}); "
                "r1console never accepts a host key on its own")

    async def _connect_one(self, alias: str, *, user: str | None, port: int | None, identity: str | None,
                           explicit_known_hosts: str | None,
                           tunnel: asyncssh.SSHClientConnection | None) -> asyncssh.SSHClientConnection:
        cfg = self.host_config(alias, user=user, port=port)
        hostname, real_port, login = self._describe(cfg, alias, user, port)
        known = self.known_hosts_for(cfg, alias, explicit=explicit_known_hosts)
        options: dict = dict(
            config=self.config_paths() or None,
            known_hosts=known,
            client_factory=lambda: _Client(self, f"{login}@{alias}", self.prompt),
            keepalive_interval=self.keepalive_interval,
            keepalive_count_max=self.keepalive_count_max,
            connect_timeout=self.connect_timeout,
            login_timeout=max(self.connect_timeout, 120.0 if self.prompt else self.connect_timeout),
            tunnel=tunnel,  # always explicit: ProxyJump is resolved by _open_chain, hop by hop
        )
        if user:
            options["username"] = user
        if port:
            options["port"] = port
        if identity:
            path = _expand(identity)
            if not os.path.isfile(path):
                raise TransportError(f"identity file {identity} (cluster {self.label}) does not exist")
            options["client_keys"] = [path]
        self.stats.connect_attempts += 1
        try:
            conn = await asyncssh.connect(alias, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise TransportError(self._key_problem(known, cfg, alias, hostname, real_port),
                                 hint=f"verify the key yourself: run `ssh {alias}` once and compare its "
                                 "fingerprint with the one your cluster publishes") from None
        except asyncssh.PermissionDenied as err:
            raise TransportError(
                f"SSH login as {login} to {alias} ({hostname}:{real_port}) was refused: {err.reason}",
                hint=f"check that `ssh {alias}` works without r1console (key, agent, user name)") from None
        except asyncssh.KeyImportError as err:
            raise TransportError(f"cannot load the SSH key for {alias}: {err}",
                                 hint="encrypted keys: add them to ssh-agent (ssh-add) first") from None
        except asyncssh.DisconnectError as err:
            raise TransportError(f"SSH connection to {alias} ({hostname}:{real_port}) closed: {err.reason}",
                                 transient=True) from None
        except asyncio.TimeoutError:
            raise TransportError(f"SSH connection to {alias} ({hostname}:{real_port}) timed out after "
                                 f"{self.connect_timeout:g} s", transient=True) from None
        except OSError as err:
            reason = "connection refused" if isinstance(err, ConnectionRefusedError) or "Connect call failed" in str(err) \
                else (err.strerror or str(err))
            raise TransportError(f"cannot connect to {alias} ({hostname}:{real_port}): {reason}",
                                 transient=True) from None
        except (asyncssh.Error, ValueError) as err:
            raise TransportError(f"SSH connection to {alias} failed: {err}") from None
        return conn

    @staticmethod
    def _split_hop(hop: str) -> tuple[str | None, str, int | None]:
        hop = hop.strip()
        if hop.startswith("ssh://"):
            hop = hop[len("ssh://"):]
        user, _, host = hop.rpartition("@")
        port: int | None = None
        if host.count(":") == 1:
            host, _, port_text = host.partition(":")
            port = int(port_text) if is_ascii_int(port_text) else None
        return (user or None), host, port

    async def _open_chain(self, alias: str, *, user: str | None, port: int | None, identity: str | None,
                          explicit_known_hosts: str | None, depth: int = 0) -> asyncssh.SSHClientConnection:
        if depth > 8:
            raise TransportError(f"ProxyJump chain for {self.label} is longer than 8 hops (a loop?)")
        cfg = self.host_config(alias, user=user, port=port)
        jump = cfg.get("ProxyJump")
        tunnel: asyncssh.SSHClientConnection | None = None
        if isinstance(jump, str) and jump.strip() and jump.strip().lower() != "none":
            for i, hop in enumerate(jump.split(",")):
                hop_user, hop_host, hop_port = self._split_hop(hop)
                if tunnel is None:
                    tunnel = await self._open_chain(hop_host, user=hop_user, port=hop_port, identity=None,
                                                    explicit_known_hosts=None, depth=depth + 1)
                else:
                    tunnel = await self._connect_one(hop_host, user=hop_user, port=hop_port, identity=None,
                                                     explicit_known_hosts=None, tunnel=tunnel)
                self._hops.append(tunnel)
        return await self._connect_one(alias, user=user, port=port, identity=identity,
                                       explicit_known_hosts=explicit_known_hosts, tunnel=tunnel)

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
        """Listen on 127.0.0.1:<free port>; each accepted connection opens a direct-tcpip channel
        to ``host:port`` on the CURRENT SSH connection, so the forward survives a reconnect."""
        await self._connection()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                conn = await self._connection()
                r2, w2 = await conn.open_connection(host, port)
            except Exception:  # noqa: BLE001 - the client sees a closed connection, like `ssh -L`
                writer.close()
                return
            await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer), return_exceptions=True)
            for w in (writer, w2):
                with contextlib.suppress(Exception):
                    w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self._servers.append(server)
        local_port = server.sockets[0].getsockname()[1]

        async def close() -> None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
            if server in self._servers:
                self._servers.remove(server)

        return PortForward("127.0.0.1", local_port, host, port, close)


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


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
