"""The transport for running on the login node itself: asyncio subprocesses, no shell.

Each command runs in its own process group, so a timeout kills it and anything it started.
``env`` (from the cluster config, e.g. SLURM_CONF) is added to this process's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from r1console.adapters.transport import (
    DEFAULT_TIMEOUT,
    FOLLOW_CHUNK,
    SESSION_PID,
    ArgvItem,
    PortForward,
    RunResult,
    Transport,
    TransportTimeout,
    display_argv,
    timeout_hint,
)
from r1console.core.errors import R1Error

_KILL_GRACE_S = 2.0


def _kill_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    _kill_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
    except asyncio.TimeoutError:
        _kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await proc.wait()


class LocalTransport(Transport):
    is_local = True

    def __init__(self, *, label: str = "local", env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.label = label
        self.env = dict(env or {})
        self._procs: set[asyncio.subprocess.Process] = set()  # running children, reaped by close()

    async def connect(self) -> None:
        if self.stats.connects == 0:
            self.stats.connect_attempts += 1
            self.stats.connects += 1

    async def close(self) -> None:
        """Stop every child still running (a follow's ``tail -F``, a cancelled command) and reap it,
        so nothing outlives the session or is left for the garbage collector after the loop ends."""
        procs, self._procs = list(self._procs), set()
        for proc in procs:
            await _terminate(proc)

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def _render(self, argv: Sequence[ArgvItem]) -> list[str]:
        return [f"--pid={os.getpid()}" if a is SESSION_PID else str(a) for a in argv]

    async def _spawn(self, argv: list[str], stdin_data: bool) -> asyncio.subprocess.Process | RunResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin_data else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=self._environ(), start_new_session=True,
            )
            self._procs.add(proc)
            return proc
        except FileNotFoundError:
            return RunResult(tuple(argv), 127, "", f"{argv[0]}: command not found\n")
        except PermissionError:
            return RunResult(tuple(argv), 126, "", f"{argv[0]}: permission denied\n")

    async def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                  retry_on_drop: bool = True) -> RunResult:
        cmd = self._render(argv)
        self.stats.note_command(cmd)
        started = time.monotonic()
        proc = await self._spawn(cmd, stdin is not None)
        if isinstance(proc, RunResult):
            return proc
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
            self._procs.discard(proc)
        except asyncio.TimeoutError:
            await _terminate(proc)
            self._procs.discard(proc)
            raise TransportTimeout(
                f"`{display_argv(cmd)}` did not finish within {timeout:g} s on {self.label}", argv=cmd,
                hint=timeout_hint(argv)) from None
        except asyncio.CancelledError:
            await _terminate(proc)
            self._procs.discard(proc)
            raise
        return RunResult(tuple(cmd), proc.returncode if proc.returncode is not None else -1,
                         out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), out,
                         time.monotonic() - started)

    async def stream(self, argv: Sequence[ArgvItem], *,
                     on_stderr: Callable[[bytes], None] | None = None) -> AsyncIterator[bytes]:
        cmd = self._render(argv)
        self.stats.streams += 1
        proc = await self._spawn(cmd, False)
        if isinstance(proc, RunResult):
            if on_stderr:
                on_stderr(proc.stderr.encode())
            return

        async def pump_stderr() -> None:
            assert proc.stderr is not None
            while data := await proc.stderr.read(4096):
                if on_stderr:
                    on_stderr(data)

        err_task = asyncio.create_task(pump_stderr())
        try:
            assert proc.stdout is not None
            while data := await proc.stdout.read(FOLLOW_CHUNK):
                self.stats.bytes_streamed += len(data)
                yield data
            await proc.wait()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(err_task), 1.0)
        finally:
            await _terminate(proc)
            self._procs.discard(proc)
            err_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await err_task

    # Local files need no subprocess.
    async def read_file(self, path: str, *, max_bytes: int = 16 * 1024 * 1024,
                        timeout: float = DEFAULT_TIMEOUT) -> bytes:
        try:
            with open(os.path.expanduser(path), "rb") as fh:
                return fh.read(max_bytes)
        except OSError as err:
            raise R1Error(f"{path}: cannot read: {err.strerror}") from None

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600,
                         timeout: float = DEFAULT_TIMEOUT) -> None:
        target = Path(os.path.expanduser(path))
        tmp = target.with_name(f"{target.name}.tmp.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.fchmod(fd, mode)
                with os.fdopen(fd, "wb", closefd=False) as fh:
                    fh.write(data)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise R1Error(f"{path}: cannot write: {err.strerror}") from None

    async def mkdir(self, path: str, *, mode: int = 0o700, timeout: float = DEFAULT_TIMEOUT) -> None:
        target = Path(os.path.expanduser(path))
        if target.is_dir():
            return  # existing directories ($HOME, a shared lab dir) are never chmod'ed
        try:
            old_umask = os.umask(0o077)
            try:
                target.mkdir(parents=True, exist_ok=True)
            finally:
                os.umask(old_umask)
            os.chmod(target, mode)
        except OSError as err:
            raise R1Error(f"{path}: cannot create directory: {err.strerror}") from None

    async def identity(self) -> tuple[str, str]:
        if self._home is None or self._user is None:
            import pwd

            self._home = os.path.expanduser("~")
            self._user = pwd.getpwuid(os.getuid()).pw_name
        return self._home, self._user

    async def forward_local_port(self, host: str, port: int) -> PortForward:
        # On the login node itself the head node is reachable directly: no forward needed.
        return PortForward(local_host=host, local_port=port, remote_host=host, remote_port=port)


__all__ = ["LocalTransport"]
