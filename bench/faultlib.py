"""Shared pieces of the fault-injection suite (bench/faults.py and the bench/faults_*.py rows).

* :class:`FaultProxy` — a TCP proxy on 127.0.0.1 in front of one address that can cut every
  connection with a RST (``cut()``), black-hole them (``blackhole()``: bytes are swallowed, the
  sockets stay open) or refuse new ones. Put it in front of the test cluster's sshd to cut only
  OUR connection (``drop-ssh`` would drop every helper's sessions on the shared cluster).
* :func:`test_cluster` — the running test cluster's exports (``slurm-cluster.sh env``).
* :func:`proxied_spec` — a ClusterSpec for the test cluster through a proxy (own known_hosts
  line for the proxy's port, same host key).
* :class:`PrivateSshd` — our own sshd on 127.0.0.1:<free port> for users we create (one login
  shell each, MaxSessions of our choosing): no change to the shared cluster's sshd or user.
* :func:`diff_bytes` — lost / duplicated byte counts of a delivered stream against the truth.
* :func:`row` — the result dict every row returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "tests" / "infra" / "slurm-cluster.sh"


@dataclass
class Row:
    """One row of the fault table: ``await row.run(runs)`` returns the result dict."""

    name: str
    area: str
    run: object  # async (runs: int) -> dict
    default_runs: int = 1
    cheap: bool = True


def row(fault: str, runs: int, *, lost: int | None = 0, duplicated: int | None = 0,
        recovery_s: float | None = None, passed: bool, detail: str = "") -> dict:
    return {"fault": fault, "runs": runs, "lost": lost, "duplicated": duplicated,
            "recovery_s": None if recovery_s is None else round(recovery_s, 2), "passed": bool(passed),
            "detail": detail}


def skipped(fault: str, why: str) -> dict:
    """A row this machine cannot run: reported, never counted as passed."""
    return {"fault": fault, "runs": 0, "lost": None, "duplicated": None, "recovery_s": None,
            "passed": False, "skipped": True, "detail": why}


# ---------------------------------------------------------------------------- byte accounting
def diff_bytes(delivered: bytes, truth: bytes) -> tuple[int, int]:
    """(lost, duplicated) of DELIVERED against TRUTH, for a stream that must equal TRUTH.

    The delivered stream is aligned greedily: the longest common prefix is good, then the
    remainder is matched against its longest suffix of truth; bytes only in truth are lost,
    bytes only in delivered are duplicated (or foreign). Exact for the failure shapes a follow
    has (a re-sent range, a skipped range); 0/0 if and only if delivered == truth.
    """
    if delivered == truth:
        return 0, 0
    n = 0
    limit = min(len(delivered), len(truth))
    while n < limit and delivered[n] == truth[n]:
        n += 1
    d_rest, t_rest = delivered[n:], truth[n:]
    m = 0
    limit = min(len(d_rest), len(t_rest))
    while m < limit and d_rest[-1 - m] == t_rest[-1 - m]:
        m += 1
    lost = len(t_rest) - m
    extra = len(d_rest) - m
    return max(lost, 0), max(extra, 0)


# ---------------------------------------------------------------------------- the test cluster
def test_cluster() -> dict[str, str] | None:
    """Exports of the running test cluster, or None when it is not running here."""
    if not CLUSTER_SCRIPT.exists():
        return None
    try:
        status = subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        # sshd and slurmctld up is enough: busy nodes (allocated, "planned" for another job) are fine here
        lines = status.stdout.splitlines()
        if not any(ln.startswith("sshd (") and ": running" in ln for ln in lines) or \
                not any(ln.startswith("slurmctld: running") for ln in lines):
            return None
        out = subprocess.run(["bash", str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    env = {}
    for line in out.splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            env[key] = value
    return env or None


def _host_key_line(known_hosts: str) -> str:
    for line in Path(known_hosts).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            return f"{parts[1]} {parts[2]}"
    raise RuntimeError(f"no host key in {known_hosts}")


def proxied_spec(env: dict[str, str], port: int, workdir: Path, *, slurm: bool = True):
    """A ClusterSpec that reaches the test cluster's sshd through 127.0.0.1:PORT (our proxy)."""
    from r1console.core.userconfig import ClusterSpec

    workdir.mkdir(parents=True, exist_ok=True)
    kh = workdir / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {_host_key_line(env['R1C_TEST_KNOWN_HOSTS'])}\n")
    cfg = workdir / "ssh_config"
    cfg.write_text("Host r1c-fault\n    HostName 127.0.0.1\n")
    return ClusterSpec(name="r1c-fault", ssh_host="127.0.0.1", port=port, user=env["R1C_TEST_USER"],
                       identity_file=env["R1C_TEST_KEY"], known_hosts=str(kh), ssh_config=str(cfg),
                       env={"SLURM_CONF": env["SLURM_CONF"]} if slurm else {})


def as_test_user(env: dict[str, str], argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run ARGV as the cluster's test user (files it must own, e.g. a log being written)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(env["R1C_TEST_USER"])
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--", *argv]
    return subprocess.run(argv, capture_output=True, **kw)


# ---------------------------------------------------------------------------- the fault proxy
class FaultProxy:
    """``async with FaultProxy(host, port) as proxy:`` — listen on ``proxy.port`` and relay."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self.refusing = False
        self._hole = False
        self._server: asyncio.AbstractServer | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def live(self) -> int:
        return len(self._pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _rst(writer)
            return
        self.accepted += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        pair = (writer, up_w)
        self._pairs.add(pair)
        tasks = [asyncio.create_task(self._pipe(reader, up_w)), asyncio.create_task(self._pipe(up_r, writer))]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
                self._tasks.discard(t)
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                if self._hole:
                    continue  # black hole: swallowed, nothing answers
                writer.write(data)
                await writer.drain()

    def cut(self) -> int:
        """RST every relayed connection now (both sides); returns how many."""
        pairs = list(self._pairs)
        for a, b in pairs:
            _rst(a)
            _rst(b)
        self._pairs.clear()
        self.cuts += len(pairs)
        return len(pairs)

    def blackhole(self, on: bool = True) -> None:
        """Swallow all bytes (both directions) while on: a dead link that never says so."""
        self._hole = on


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


# ---------------------------------------------------------------------------- a private sshd
_USER_MARK = "r1console fault suite (bench/faultlib.py)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ShellUser:
    name: str
    shell: str
    home: Path


@dataclass
class PrivateSshd:
    """Our own sshd (root only) for throw-away users with the login shells we want.

    ``with PrivateSshd({"bash": "/bin/bash", "fish": "/usr/bin/fish"}, max_sessions=10) as sshd:``
    creates the users ``r1cf-<key>`` (once; marked, reused later), starts sshd on a free
    127.0.0.1 port and stops it on exit. ``sshd.spec(key)`` is a ClusterSpec for that user.
    """

    shells: dict[str, str]
    max_sessions: int = 10
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    users: dict[str, ShellUser] = field(default_factory=dict)
    _dir: Path | None = None
    _proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> str | None:
        """None when a private sshd can run here, else why not."""
        if os.geteuid() != 0:
            return "needs root (creates users, runs sshd)"
        if not Path("/usr/sbin/sshd").exists():
            return "no /usr/sbin/sshd"
        if not shutil.which("ssh-keygen"):
            return "no ssh-keygen"
        return None

    def _ensure_user(self, key: str, shell: str, base: Path) -> ShellUser:
        name = f"r1cf-{key}"[:31]
        home = base / name
        try:
            pw = pwd.getpwnam(name)
            if pw.pw_gecos != _USER_MARK:
                raise RuntimeError(f"user {name} exists and was not made by the fault suite")
            if pw.pw_shell != shell:
                subprocess.run(["usermod", "-s", shell, name], check=True, capture_output=True)
            if pw.pw_dir != str(home):
                subprocess.run(["usermod", "-d", str(home), name], check=True, capture_output=True)
        except KeyError:
            subprocess.run(["useradd", "-U", "-M", "-d", str(home), "-s", shell, "-c", _USER_MARK, name],
                           check=True, capture_output=True)
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        pw = pwd.getpwnam(name)
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o755)
        return ShellUser(name, shell, home)

    def __enter__(self) -> "PrivateSshd":
        why = self.available()
        if why:
            raise RuntimeError(f"private sshd: {why}")
        self._dir = Path(tempfile.mkdtemp(prefix="r1c-sshd-"))
        self._dir.chmod(0o755)
        d = self._dir
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
        keys = d / "keys"
        keys.mkdir(mode=0o755)
        homes = Path("/tmp/r1c-fault-homes")
        homes.mkdir(exist_ok=True)
        homes.chmod(0o755)
        for key, shell in self.shells.items():
            user = self._ensure_user(key, shell, homes)
            self.users[key] = user
            (keys / user.name).write_text((d / "client_key.pub").read_text())
            (keys / user.name).chmod(0o644)
        self.port = _free_port()
        setenv = " ".join(f"{k}={v}" for k, v in self.env.items())
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {keys}/%u\nAllowUsers {' '.join(u.name for u in self.users.values())}\n"
            "PermitRootLogin no\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\nStrictModes no\nAllowTcpForwarding yes\n"
            f"X11Forwarding no\nPrintMotd no\nPrintLastLog no\nMaxSessions {self.max_sessions}\n"
            + (f"SetEnv {setenv}\n" if setenv else ""))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                                      stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"),
                                      stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                break
            time.sleep(0.05)
        else:
            self.__exit__()
            raise RuntimeError(f"private sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
        host = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host[0]} {host[1]}\n")
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def spec(self, key: str, **extra):
        from r1console.core.userconfig import ClusterSpec

        assert self._dir is not None
        cfg = self._dir / "ssh_config"
        if not cfg.exists():
            cfg.write_text("# empty: everything comes from the ClusterSpec\n")
        return ClusterSpec(name=f"shell-{key}", ssh_host="127.0.0.1", port=self.port, user=self.users[key].name,
                           identity_file=str(self._dir / "client_key"), known_hosts=str(self._dir / "known_hosts"),
                           ssh_config=str(cfg), **extra)


def debian_shells() -> dict[str, str]:
    """The login shells of the matrix that are installed here: name -> path."""
    out = {}
    for name in ("bash", "dash", "zsh", "tcsh", "fish"):
        path = shutil.which(name, path="/usr/bin:/bin")
        if path:
            out[name] = path
    return out
