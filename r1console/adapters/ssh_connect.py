"""Opening one SSH connection to a cluster: the OpenSSH config, host-key checks, login prompts, ProxyJump.

* OpenSSH client config is honoured (``~/.ssh/config`` or the cluster's ``ssh_config``): Host alias,
  HostName, User, Port, IdentityFile, HostKeyAlias, ProxyJump (each hop opened here, so each hop's
  host key is verified the same way).
* Host keys are ALWAYS verified against known_hosts (the cluster's ``known_hosts``, else the
  config's UserKnownHostsFile, else ``~/.ssh/known_hosts``). An unknown or changed key is a
  refusal with a clear message; ``UserKnownHostsFile none`` is refused rather than obeyed.
* Password and keyboard-interactive (two-factor) prompts go to a ``PromptCallback``.

:class:`SSHConnector` is the part of ``ssh_transport.SSHTransport`` that does this; every failure is
a :class:`TransportError` saying what to check.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncssh
from asyncssh.config import SSHClientConfig

from r1console.adapters.transport_types import Prompt, PromptCallback, TransportError, TransportStats
from r1console.core.textnum import is_ascii_int
from r1console.core.userconfig import ClusterSpec

if TYPE_CHECKING:
    from r1console.adapters.ssh_transport import SSHTransport

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


class SSHConnector:
    """Config lookup and connection opening of :class:`~r1console.adapters.ssh_transport.SSHTransport`."""

    spec: ClusterSpec
    label: str
    prompt: PromptCallback | None
    keepalive_interval: float
    keepalive_count_max: int
    connect_timeout: float
    stats: TransportStats
    _hops: list[asyncssh.SSHClientConnection]

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
            for hop in jump.split(","):
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

__all__ = ["SSHConnector"]
