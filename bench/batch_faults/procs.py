"""The real processes a batch fault row drives: `r1console sim-server` (:class:`SimProcess`, SIGKILL
and restart on the same port) and `r1console batch` (:class:`BatchProcess`, optionally under a file
size limit), with a minimal HTTP GET to ask the server without a client library."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("VLLM_API_KEY", None)
    return env


async def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A minimal GET on 127.0.0.1 (no client library: this measures the client, not with it)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class SimProcess:
    """`r1console sim-server` in its own process on a fixed port: SIGKILL and restart on demand."""

    def __init__(self, port: int, args: list[str], log: Path, *, seed: int | None = None) -> None:
        self.port = port
        self.args = args
        self.log = log
        self.seed = seed            # None: another seed per start (other fault choices)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.ready_at: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        fh = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "r1console", "sim-server", "--port", str(self.port), "--quiet",
            "--seed", str(self.starts if self.seed is None else self.seed), *self.args, cwd=REPO, env=_env(), stdout=fh, stderr=fh,
            stdin=asyncio.subprocess.DEVNULL)
        fh.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (await http_get(self.port, "/health"))[0] == 200:
                    break
            except (OSError, asyncio.TimeoutError, IndexError, ValueError):
                pass
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sim-server did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        self.ready_at.append(time.monotonic())

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def state(self) -> dict[str, Any]:
        status, body = await http_get(self.port, "/_sim/state")
        return json.loads(body) if status == 200 else {}


class BatchProcess:
    """`r1console batch` in its own process."""

    def __init__(self, argv: list[str], log: Path, *, max_file_bytes: int | None = None) -> None:
        self.argv = argv
        self.log = log
        self.max_file_bytes = max_file_bytes   # RLIMIT_FSIZE: writes past it fail (EFBIG)
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    def _limits(self) -> None:
        import resource

        assert self.max_file_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    async def start(self) -> None:
        fh = self.log.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "r1console", *self.argv, cwd=REPO, env=_env(), stdout=fh, stderr=fh,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=self._limits if self.max_file_bytes else None)
        fh.close()
        self.started_at = time.monotonic()

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"batch did not finish within {timeout:g} s: {self.text()[-2000:]}") from None

    async def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
