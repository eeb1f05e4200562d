"""The project's real test SLURM cluster for tests marked ``slurm``.

Fixture:
  slurm_cluster   session: ensures the cluster of ``tests/infra/slurm-cluster.sh`` runs (2 nodes x 4
                  fake H200 GPUs in network namespaces, slurmdbd for sacct, OpenSSH on 127.0.0.1 with
                  verified host keys, test user ``r1ctest``) and yields a :class:`SlurmCluster`.
                  It starts the cluster when it is not running and LEAVES IT RUNNING at the end
                  (other sessions share it); ``R1C_SLURM_STOP_AFTER=1`` stops it at session end
                  if this session started it.

Every test that uses the fixture is marked ``slurm`` automatically.

Packages missing: tests marked ``slurm`` FAIL with the install command. ``R1C_SKIP_SLURM=1`` skips them
instead, for a quick local run (CI never sets it).

The cluster is shared: tests must only touch their own jobs (``squeue --me``, their job ids), make their
own work directory (:meth:`SlurmCluster.make_workdir`), and undo switches they flip (the helpers below do).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "infra" / "slurm-cluster.sh"
GPU_MODES = ("idle", "load", "missing")
INSTALL_HINT = (
    "The test SLURM cluster's packages are missing: {missing}\n"
    "Install them (Debian/Ubuntu, as root, ~15 s, ~15 MB download):\n"
    "    sudo bash tests/infra/slurm-cluster.sh install\n"
    "The tests start the cluster themselves (or: sudo bash tests/infra/slurm-cluster.sh start).\n"
    "To skip the SLURM tests in a quick local run instead: R1C_SKIP_SLURM=1 python -m pytest"
)
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs the project's real test SLURM cluster + sshd (tests/infra)")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="R1C_SKIP_SLURM=1: real-SLURM tests skipped on request")
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)
        if os.environ.get("R1C_SKIP_SLURM") == "1" and item.get_closest_marker("slurm"):
            item.add_marker(skip)


def _parse_exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            out[key] = value
    return out


def _script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _tcp_sockets() -> dict[int, tuple[int, int]]:
    """socket inode -> (local port, remote port) for the IPv4/IPv6 TCP sockets of this network namespace."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            out[int(f[9])] = (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16))
    return out


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    out.add(int(target[8:-1]))
    return out


def _pid_if(pidfile: Path, comm: str) -> int | None:
    """The pid in PIDFILE if that process is alive, not a zombie, and named COMM."""
    try:
        pid = int(pidfile.read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() != comm:
            return None
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class SlurmCluster:
    """Handle on the running test cluster (values come from ``slurm-cluster.sh env``)."""

    dir: Path                 # the state dir (R1C_CLUSTER_DIR)
    slurm_conf: str           # the cluster's slurm.conf (SLURM_CONF)
    ssh_host: str             # Host alias in ssh_config: "r1c-test"
    ssh_config: str           # ssh_config snippet: use `ssh -F <ssh_config> <ssh_host> ...`
    known_hosts: str          # known_hosts with the sshd host key ([127.0.0.1]:PORT)
    client_key: str           # private key of the test user
    user: str                 # the unprivileged test user jobs run as ("r1ctest")
    ssh_addr: str             # 127.0.0.1
    ssh_port: int
    nodes: list[str]          # ["node1", "node2"]
    node_addrs: list[str]     # their addresses on the private bridge
    gpus_per_node: int        # 4
    partition: str            # "debug"
    home: Path                # the test user's home
    workdir: Path             # a directory the test user owns, parent of make_workdir() dirs
    ray_venv: Path            # Ray venv usable by the test user (`slurm-cluster.sh install-ray`; may be absent)
    exports: dict[str, str]   # every `export` line of `slurm-cluster.sh env`
    env: dict[str, str] = field(repr=False)       # os.environ + SLURM_CONF + exports: run things as yourself
    user_env: dict[str, str] = field(repr=False)  # a login-like environment of the test user (used by run())
    _gpu_modes_set: set[str] = field(default_factory=set, repr=False)

    # ------------------------------------------------------------------ running commands
    def _login_prefix(self, cwd: str) -> list[str]:
        """argv prefix that runs a command as the test user in the login (sshd) namespaces."""
        if os.geteuid() != 0:
            return []   # not root: run as yourself (jobs then run as you)
        pw = pwd.getpwnam(self.user)
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        sshd = _pid_if(self.dir / "run" / "sshd.pid", "sshd")
        if sshd is None:   # no login namespace to enter: same machine view, still the test user
            return drop
        # the login node's mount + UTS namespaces: hostname r1c-head, the cluster's hosts file, no DNS
        return ["nsenter", f"--target={sshd}", "--mount", "--uts", f"--wd={cwd}", "--", *drop]

    def run(self, argv: Sequence[str], *, timeout: float = 60, cwd: str | os.PathLike | None = None,
            input: str | None = None, check: bool = False,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ARGV (e.g. a SLURM client) locally AS THE TEST USER, on the login side, with SLURM_CONF set.

        Text mode, stdout/stderr captured. ``cwd`` defaults to :attr:`workdir` (must be readable by the
        test user). Raises subprocess.TimeoutExpired after ``timeout`` s (the child is killed).
        """
        cwd = str(cwd or self.workdir)
        env = dict(self.user_env, **(extra_env or {}))
        return subprocess.run([*self._login_prefix(cwd), *argv], cwd=cwd, env=env, input=input,
                              capture_output=True, text=True, timeout=timeout, check=check,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ssh_argv(self, argv: Sequence[str] = (), *ssh_options: str) -> list[str]:
        """OpenSSH argv for ARGV on the login node; each remote element is shlex-quoted."""
        remote = [shlex.quote(str(a)) for a in argv]
        return ["ssh", "-F", self.ssh_config, *ssh_options, self.ssh_host, *remote]

    def ssh(self, argv: Sequence[str], *, timeout: float = 60, input: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ARGV over OpenSSH as the test user (host key verified)."""
        return subprocess.run(self.ssh_argv(argv), capture_output=True, text=True, timeout=timeout,
                              input=input, check=check, stdin=None if input is not None else subprocess.DEVNULL)

    # ------------------------------------------------------------------ files
    def make_workdir(self, name: str = "t") -> Path:
        """A fresh directory owned by the test user (jobs run as that user and write there)."""
        path = self.workdir / f"{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        self._chown(path)
        return path

    def write_file(self, path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
        """Write TEXT to PATH and give it to the test user."""
        path = Path(path)
        path.write_text(text)
        path.chmod(mode)
        self._chown(path)
        return path

    def remove_job_tmp(self, job_id: str | int) -> None:
        """Remove the /tmp dirs a job made with mktemp (r1c-tiny-cpu-<id>.*, each Ray step's r1c-ray-<id>.*)."""
        self.run(["find", "/tmp", "-mindepth", "1", "-maxdepth", "1", "-user", self.user, "(",
                  "-name", f"r1c-tiny-cpu-{job_id}.*", "-o", "-name", f"r1c-ray-{job_id}.*", ")",
                  "-exec", "rm", "-rf", "--", "{}", "+"], timeout=30)

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # ------------------------------------------------------------------ jobs
    def job_state(self, job_id: str | int) -> str:
        """RUNNING/PENDING/... from squeue, else the accounting state from sacct ("" if unknown yet)."""
        r = self.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], timeout=30)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
        r = self.run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"], timeout=30)
        return r.stdout.strip().splitlines()[0].split()[0] if r.stdout.strip() else ""

    def wait_job_state(self, job_id: str | int, states: Sequence[str], timeout: float = 60) -> str:
        """Poll until the job's state is one of STATES; return it (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in states:
                return state
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach {list(states)} within {timeout}s (last: {state!r})")

    # ------------------------------------------------------------------ fault injection
    def drop_ssh_connections(self, client_ports: Iterable[int] | None = None) -> int:
        """Kill sshd session processes (the listener stays): those connections drop mid-stream.

        ``client_ports``: only the sessions whose client uses one of these local TCP ports (see
        :meth:`client_ports_of` for an OpenSSH subprocess, or asyncssh's
        ``conn.get_extra_info("sockname")[1]``). None = EVERY session — also other test sessions'
        connections to this shared cluster, so prefer passing your ports.

        A session is two sshd processes (the privileged monitor, a child of the listener, and the user's
        "sshd: USER@notty" below it, which also holds the socket); both are SIGKILLed. Commands the
        sessions ran are left alone. Returns how many sshd processes were killed (root only).
        """
        master = _pid_if(self.dir / "run" / "sshd.pid", "sshd")
        if master is None:
            raise RuntimeError("sshd of the test cluster is not running")
        procs: dict[int, tuple[int, str]] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                procs[int(proc.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), (proc / "comm").read_text().strip())
            except (OSError, ValueError, IndexError):
                continue

        def sshd_tree(root: int) -> list[int]:
            out, frontier = [], [root]
            while frontier:
                parent = frontier.pop()
                for pid, (ppid, comm) in procs.items():
                    if ppid == parent and comm == "sshd":
                        out.append(pid)
                        frontier.append(pid)
            return out

        sessions = [pid for pid, (ppid, comm) in procs.items() if ppid == master and comm == "sshd"]
        if client_ports is not None:
            wanted = {inode for inode, (local, remote) in _tcp_sockets().items()
                      if local == self.ssh_port and remote in set(client_ports)}
            sessions = [s for s in sessions if any(_socket_inodes(p) & wanted for p in [s, *sshd_tree(s)])]
        victims = [pid for s in sessions for pid in [s, *sshd_tree(s)]]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(victims)

    @staticmethod
    def client_ports_of(pid: int) -> set[int]:
        """Local TCP ports of the sockets process PID holds (e.g. an `ssh` client subprocess)."""
        sockets = _tcp_sockets()
        return {sockets[i][0] for i in _socket_inodes(pid) if i in sockets}

    def _ctld_pid(self) -> int:
        pid = _pid_if(self.dir / "run" / "slurmctld.pid", "slurmctld")
        if pid is None:
            raise RuntimeError("slurmctld of the test cluster is not running")
        return pid

    def pause_controller(self) -> None:
        """SIGSTOP slurmctld: clients then hang until their timeouts (it is shared: keep it short)."""
        os.kill(self._ctld_pid(), signal.SIGSTOP)

    def resume_controller(self) -> None:
        """SIGCONT slurmctld."""
        os.kill(self._ctld_pid(), signal.SIGCONT)

    @contextlib.contextmanager
    def controller_paused(self) -> Iterator[None]:
        """``with cluster.controller_paused(): ...`` — slurmctld stops answering inside the block."""
        self.pause_controller()
        try:
            yield
        finally:
            self.resume_controller()

    def set_gpu_mode(self, mode: str | None, node: str | None = None) -> None:
        """What the nodes' stand-in nvidia-smi replays: "idle", "load" or "missing" (None = back to idle).

        With NODE only that node changes. Applies to every job step started afterwards (a per-step
        alternative without global effect: env R1C_FAKE_NVIDIA_SMI=idle|load|missing for that srun).
        """
        if mode is not None and mode not in GPU_MODES:
            raise ValueError(f"gpu mode must be one of {GPU_MODES}, got {mode!r}")
        path = self.dir / "gpu" / "mode" / (f"mode.{node}" if node else "mode")
        if mode is None:
            path.unlink(missing_ok=True)
            self._gpu_modes_set.discard(path.name)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(mode + "\n")
        tmp.chmod(0o644)
        tmp.replace(path)
        self._gpu_modes_set.add(path.name)

    @contextlib.contextmanager
    def gpu_mode(self, mode: str, node: str | None = None) -> Iterator[None]:
        """``with cluster.gpu_mode("load"): ...`` — restored to idle afterwards."""
        self.set_gpu_mode(mode, node)
        try:
            yield
        finally:
            self.set_gpu_mode(None, node)

    def _cleanup(self) -> None:
        """Undo this session's switches (the cluster is shared)."""
        pid = _pid_if(self.dir / "run" / "slurmctld.pid", "slurmctld")
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        for name in list(self._gpu_modes_set):
            (self.dir / "gpu" / "mode" / name).unlink(missing_ok=True)
        self._gpu_modes_set.clear()


def _make_cluster(exports: dict[str, str]) -> SlurmCluster:
    user = exports["R1C_TEST_USER"]
    home = Path(exports["R1C_TEST_HOME"])
    env = dict(os.environ)
    env.update(exports)
    try:
        shell = pwd.getpwnam(user).pw_shell
    except KeyError:
        shell = "/bin/bash"
    user_env = {
        "PATH": LOGIN_PATH, "HOME": str(home), "USER": user, "LOGNAME": user, "SHELL": shell,
        "LANG": os.environ.get("LANG", "C.UTF-8"), "SLURM_CONF": exports["SLURM_CONF"],
    }
    if os.geteuid() != 0:   # run() runs as yourself then: keep your own identity in the environment
        user_env.update({k: os.environ[k] for k in ("HOME", "USER", "LOGNAME", "PATH") if k in os.environ})
    return SlurmCluster(
        dir=Path(exports["R1C_CLUSTER_DIR"]),
        slurm_conf=exports["SLURM_CONF"],
        ssh_host=exports["R1C_TEST_SSH_HOST"],
        ssh_config=exports["R1C_TEST_SSH_CONFIG"],
        known_hosts=exports["R1C_TEST_KNOWN_HOSTS"],
        client_key=exports["R1C_TEST_KEY"],
        user=user,
        ssh_addr=exports["R1C_TEST_SSH_ADDR"],
        ssh_port=int(exports["R1C_TEST_SSH_PORT"]),
        nodes=exports["R1C_TEST_NODES"].split(),
        node_addrs=exports["R1C_TEST_NODE_ADDRS"].split(),
        gpus_per_node=int(exports["R1C_TEST_GPUS_PER_NODE"]),
        partition=exports["R1C_TEST_PARTITION"],
        home=home,
        workdir=Path(exports["R1C_TEST_WORKDIR"]),
        ray_venv=Path(exports["R1C_TEST_RAY_VENV"]),
        exports=exports,
        env=env,
        user_env=user_env,
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.environ.get("R1C_SKIP_SLURM") == "1":
        pytest.skip("R1C_SKIP_SLURM=1: real-SLURM tests skipped on request")
    missing = _script("check-packages")
    if missing.returncode != 0:
        pytest.fail(INSTALL_HINT.format(missing=missing.stdout.strip() or missing.stderr.strip()), pytrace=False)

    started_here = False
    status = _script("status", timeout=60)
    if status.returncode != 0:
        if os.geteuid() != 0:
            pytest.fail("the test SLURM cluster is not running and starting it needs root:\n"
                        f"    sudo bash {SCRIPT.relative_to(REPO)} start\n{status.stdout}", pytrace=False)
        start = _script("start", timeout=300)
        if start.returncode != 0:
            pytest.fail(f"starting the test SLURM cluster failed (rc={start.returncode}):\n"
                        f"{start.stderr[-4000:]}\nlogs: {os.environ.get('R1C_CLUSTER_DIR', '/var/lib/r1c-cluster')}/log/",
                        pytrace=False)
        started_here = True
    exports = _parse_exports(_script("env").stdout)
    cluster = _make_cluster(exports)
    try:
        yield cluster
    finally:
        cluster._cleanup()
        if started_here and os.environ.get("R1C_SLURM_STOP_AFTER") == "1":
            _script("stop", timeout=120)
