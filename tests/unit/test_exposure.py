"""Server exposure (audit H1/L5) and Ray auth (H2): the job's middleware, the identity proof, the script.

The middleware (slurm/r1c_auth.py) is plain ASGI and stdlib only, so it runs here against a tiny
ASGI app; the real-vLLM proof is tests/integration/test_e2e_tiny_cpu.py (every route of a real job).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from r1console.core import exposure
from r1console.core.logparse import Notice, parse_bytes
from r1console.core.profiles import load_profile
from r1console.core.render import RenderPlan, render_script

REPO = Path(__file__).resolve().parents[2]
KEY = "k3y-" + "x" * 40


def load_middleware():
    spec = importlib.util.spec_from_file_location("r1c_auth_under_test", REPO / "slurm" / "r1c_auth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def inner_app(scope, receive, send):
    """Stands in for vLLM: 200 'inner <path>' streamed in two body chunks."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"inner ", "more_body": True})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def call(app, path, *, headers=(), method="GET", kind="http", query=b""):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": kind, "path": path, "method": method, "headers": list(headers), "query_string": query,
             "root_path": ""}
    asyncio.run(app(scope, receive, send))
    return sent


def status_of(sent):
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def body_of(sent):
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


ROUTES = ["/v1/models", "/v1/chat/completions", "/invocations", "/tokenize", "/detokenize", "/pooling", "/score",
          "/metrics", "/docs", "/openapi.json", "/version", "/load", "/ping", "/health/", "/HEALTH", "/"]


def test_every_route_but_health_needs_the_key_and_streams_pass_through_untouched():
    mod = load_middleware()
    app = mod.R1cAuth(inner_app, key=KEY, job_id="77")
    good = [(b"authorization", f"Bearer {KEY}".encode())]
    for path in ROUTES:
        for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", f"Basic {KEY}".encode())],
                        [(b"authorization", b"Bearer " + KEY.encode()), (b"authorization", b"Bearer x")]):
            for method in ("GET", "POST", "OPTIONS", "HEAD"):
                sent = call(app, path, headers=headers, method=method)
                assert status_of(sent) == 401, (path, headers, method)
                assert json.loads(body_of(sent)) == {"error": "Unauthorized"}
        sent = call(app, path, headers=good, method="POST")
        assert status_of(sent) == 200 and body_of(sent) == b"inner " + path.encode()
        assert [m.get("more_body", False) for m in sent[1:]] == [True, False]  # chunks not merged
    assert body_of(call(app, "/health")) == b"inner /health"
    assert status_of(call(app, "/v1/models", headers=[(b"Authorization", f"bearer {KEY}".encode())])) == 200


def test_websocket_without_the_key_is_closed_before_accept():
    app = load_middleware().R1cAuth(inner_app, key=KEY, job_id="77")
    assert call(app, "/v1/realtime", kind="websocket") == [{"type": "websocket.close", "code": 1008}]
    ok = call(app, "/v1/realtime", kind="websocket", headers=[(b"authorization", f"Bearer {KEY}".encode())])
    assert ok == [{"type": "websocket.accept"}]


def test_lifespan_passes_and_an_empty_key_refuses_to_start(monkeypatch):
    mod = load_middleware()
    seen = []

    async def lifespan_app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(mod.R1cAuth(lifespan_app, key=KEY)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="refusing to start"):
        mod.R1cAuth(inner_app)
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    from_env = mod.R1cAuth(inner_app)
    assert from_env._job_id == "4242"  # noqa: SLF001 - what the proof is bound to


def test_identity_proof_matches_the_console_and_needs_the_key():
    mod = load_middleware()
    app = mod.R1cAuth(inner_app, key=KEY, job_id="77")
    challenge = exposure.new_challenge()
    sent = call(app, exposure.IDENTITY_PATH, query=f"challenge={challenge}".encode())
    assert status_of(sent) == 200
    body = json.loads(body_of(sent))
    exposure.check_identity(200, body, key=KEY, job_id="77", challenge=challenge, where="n1:8000")
    assert mod.identity_proof(KEY, "77", challenge) == exposure.identity_proof(KEY, "77", challenge)
    assert mod.PROOF_CONTEXT == exposure.PROOF_CONTEXT and mod.IDENTITY_PATH == exposure.IDENTITY_PATH
    with pytest.raises(exposure.IdentityError, match="could not prove"):  # a squatter with another key
        exposure.check_identity(200, body, key="other", job_id="77", challenge=challenge, where="n1:8000")
    with pytest.raises(exposure.IdentityError, match="could not prove"):  # a replayed answer
        exposure.check_identity(200, body, key=KEY, job_id="77", challenge=exposure.new_challenge(), where="x")
    with pytest.raises(exposure.IdentityError, match="HTTP 404"):  # something that is not our job
        exposure.check_identity(404, {"detail": "Not Found"}, key=KEY, job_id="77", challenge=challenge, where="x")
    for bad in (b"", b"challenge=abc", b"challenge=" + b"A" * 32, b"challenge=" + b"a" * 129,
                b"challenge=" + b"a" * 32 + b"%0a"):
        assert status_of(call(app, exposure.IDENTITY_PATH, query=bad)) == 400, bad
    assert status_of(call(app, exposure.IDENTITY_PATH, method="POST", query=b"challenge=" + b"a" * 32)) == 405


# ---- the rendered script -----------------------------------------------------------------------

def fake_bin(tmp_path: Path, ray_version: str | None = None) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a `vllm` that records argv, the key it got, and copies the middleware module it was given
    (bindir / "vllm").write_text(
        '#!/bin/bash\nprintf "%s\\n" "$@" > "$ARGV_OUT"\necho "key=$VLLM_API_KEY" >> "$ARGV_OUT"\n'
        'dir=${PYTHONPATH%%:*}; stat -c "%a" "$dir" > "$ARGV_OUT.mode"; cp "$dir/r1c_auth.py" "$ARGV_OUT.py"\n'
        'env > "$ARGV_OUT.env"\n')
    (bindir / "vllm").chmod(0o755)
    if ray_version:
        (bindir / "ray").write_text(f'#!/bin/bash\necho "ray, version {ray_version}"\n')
        (bindir / "ray").chmod(0o755)
    return bindir


def run_script(tmp_path: Path, profile: str, overrides=(), *, key: str | None = "s3cret", ray_version=None):
    bindir = fake_bin(tmp_path, ray_version)
    key_path = None
    if key is not None:
        key_path = tmp_path / "k.key"
        key_path.write_text(key)
    loaded = load_profile(profile, overrides=["env.setup=[]", *overrides]).profile
    path = tmp_path / "job.sbatch"
    path.write_text(render_script(loaded, RenderPlan(str(tmp_path), str(key_path) if key_path else None)))
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "ARGV_OUT": str(tmp_path / "argv"), "HOME": str(tmp_path),
           "TMPDIR": str(tmp_path), "SLURM_JOB_ID": "991"}
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=30)


def test_script_loads_the_middleware_from_a_private_dir_and_cleans_up(tmp_path):
    result = run_script(tmp_path, "tiny-cpu")
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[argv.index("--middleware") + 1] == "r1c_auth.R1cAuth"
    assert argv[-1] == "key=s3cret"
    assert (tmp_path / "argv.mode").read_text().strip() == "700"
    assert (tmp_path / "argv.py").read_text() == (REPO / "slurm" / "r1c_auth.py").read_text()
    assert "[r1console] auth=all_routes" in result.stdout
    assert not list(tmp_path.glob("r1c-auth.*")), "the private dir is removed at exit"


def test_without_a_key_the_log_carries_a_warning_the_parser_shows(tmp_path):
    result = run_script(tmp_path, "tiny-cpu", ["server.api_key=none"], key=None)
    assert result.returncode == 0, result.stderr
    assert "--middleware" not in (tmp_path / "argv").read_text()
    notices = [e for e in parse_bytes(result.stdout.encode(), "out") if isinstance(e, Notice)]
    assert [n.kind for n in notices] == ["auth_none"]
    assert "open to anyone" in notices[0].explanation and "api_key: auto" in notices[0].what_to_try


RAY = ["vllm.distributed_executor_backend=ray", "ray.wait_timeout_s=10"]


@pytest.mark.parametrize("version", ["2.60.0", "2.52.0"])
def test_ray_token_auth_when_ray_has_it(tmp_path, version):
    # the fake `ray` makes the Ray bring-up fail right after the auth step: we only look at that step
    result = run_script(tmp_path, "tiny-cpu", RAY, ray_version=version)
    assert f"[r1console] ray_auth=token ray={version} token_file={tmp_path}/keys/ray-991.token" in result.stdout, \
        result.stdout + result.stderr
    assert "WARNING ray_auth" not in result.stdout


def test_ray_token_file_is_0600_and_exported(tmp_path):
    # stop right after the auth step by making `ray start` a success and the counts answer at once
    script = (REPO / "slurm" / "vllm-serve.sbatch").read_text()
    start = script.index("r1c_ray_token=\"\"")
    end = script.index("if [[ \"$R1C_BACKEND\" == \"ray\" ]]; then\n    r1c_ray_auth")
    bindir = fake_bin(tmp_path, "2.60.0")
    snippet = ("r1c_mark() { echo \"[r1console] $*\"; }\nr1c_fatal() { echo FATAL \"$*\"; exit 1; }\n"
               f"R1C_WORKDIR={tmp_path}\n" + script[start:end] +
               "r1c_ray_auth\nstat -c '%a' \"$RAY_AUTH_TOKEN_PATH\" \"$(dirname \"$RAY_AUTH_TOKEN_PATH\")\"\n"
               "echo \"mode=$RAY_AUTH_MODE\"; wc -c < \"$RAY_AUTH_TOKEN_PATH\"\n")
    result = subprocess.run(["bash", "-c", snippet], env={"PATH": f"{bindir}:/usr/bin:/bin", "SLURM_JOB_ID": "5"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-4:] == ["600", "700", "mode=token", "64"]
    token = (tmp_path / "keys" / "ray-5.token").read_text()
    assert len(token) == 64 and all(c in "0123456789abcdef" for c in token)
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "ray-5.token").st_mode) == 0o600


@pytest.mark.parametrize("version", ["2.51.1", "2.9.3", ""])
def test_old_ray_gets_a_warning_marker(tmp_path, version):
    result = run_script(tmp_path, "tiny-cpu", RAY, ray_version=version or None)
    notices = [e for e in parse_bytes(result.stdout.encode(), "out") if isinstance(e, Notice)]
    assert [n.kind for n in notices] == ["ray_auth_unavailable"], result.stdout
    assert "needs Ray >= 2.52" in notices[0].explanation
    assert "ray_auth=token" not in result.stdout and not (tmp_path / "keys").exists()


# ---- the console's check, over HTTP -------------------------------------------------------------

async def test_verify_identity_accepts_its_job_and_refuses_squatters():
    from r1console.adapters.reach import verify_identity
    from r1console.core.api_errors import ServerUnreachable
    from r1console.demo.sim_server import SimServer

    async with SimServer(api_key=KEY, job_id="77", time_scale=0.0) as ours:
        await verify_identity(ours.url, KEY, "77", where="ours")
        with pytest.raises(exposure.IdentityError, match="not job 78"):
            await verify_identity(ours.url, KEY, "78", where="ours")  # a different job of the same key
    async with SimServer(api_key="someone-elses-key", job_id="77", time_scale=0.0) as squatter:
        with pytest.raises(exposure.IdentityError, match="could not prove"):
            await verify_identity(squatter.url, KEY, "77", where="squatter")
    # a squatter that records what it is sent: the identity check carries no key
    heads = []

    async def on_connect(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        with pytest.raises(exposure.IdentityError, match="without a valid proof"):
            await verify_identity(url, KEY, "77", where="recorder")
    assert len(heads) == 1 and heads[0].startswith(b"GET /r1c/identity?challenge=")
    assert KEY.encode() not in heads[0] and b"authorization" not in heads[0].lower()
    async with SimServer(time_scale=0.0) as keyless:  # answers /r1c/identity with 401/404: not our job
        with pytest.raises(exposure.IdentityError, match="did not answer r1console's identity check"):
            await verify_identity(keyless.url, KEY, "77", where="keyless")
        port = keyless.port
    with pytest.raises(ServerUnreachable, match="not answering yet"):
        await verify_identity(f"http://127.0.0.1:{port}", KEY, "77", where="closed", timeout=3)
