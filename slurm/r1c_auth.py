"""r1console: every route of this vLLM server but /health demands the deployment's API key.

Loaded by the job script with ``vllm serve ... --middleware r1c_auth.R1cAuth`` (the script writes this
file into a private 0700 directory and puts it on PYTHONPATH for vLLM only). vLLM's own key check
guards /v1/* (and a few other prefixes) only: /invocations, /tokenize, /pooling, /score, /metrics,
/docs, /openapi.json... answer anyone who reaches the port. This pure ASGI middleware runs before
all of them, for HTTP and WebSocket alike, and passes requests (and streamed responses) through
untouched once the bearer key matches (constant-time compare of SHA-256 digests).

Two routes answer without the key:
  /health                                        for load balancers and `wait --for ready`
  /r1c/identity?challenge=<32-128 hex digits>    {"job_id": ..., "proof": HMAC-SHA256(key, ...)}
The console sends a fresh random challenge and checks the proof BEFORE it sends the key: only a
process holding this deployment's key can compute it, so a squatter on the port gets nothing.

Standard library only (it runs inside vLLM's own Python).
"""

import hashlib
import hmac
import json
import os
import re

IDENTITY_PATH = "/r1c/identity"
OPEN_PATHS = ("/health",)
PROOF_CONTEXT = "r1console-identity-v1"
_CHALLENGE = re.compile(r"[0-9a-f]{32,128}\Z")


def identity_proof(key, job_id, challenge):
    """HMAC-SHA256 over a fixed context, the job id and the console's challenge (hex)."""
    message = f"{PROOF_CONTEXT}\n{job_id}\n{challenge}".encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


class R1cAuth:
    """ASGI middleware: 401 (HTTP) / close 1008 (WebSocket) without ``Authorization: Bearer <key>``."""

    def __init__(self, app, key=None, job_id=None):
        self.app = app
        key = os.environ.get("VLLM_API_KEY", "") if key is None else key
        if not key:
            # fail closed: vLLM does not start rather than serving every route to everyone
            raise RuntimeError("r1c_auth: VLLM_API_KEY is empty; refusing to start without the key")
        self._key = key
        self._want = _digest(key)
        self._job_id = os.environ.get("SLURM_JOB_ID", "") if job_id is None else job_id

    def _authorized(self, scope):
        values = [v for k, v in scope.get("headers") or () if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, token = values[0].decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(token.strip()), self._want)

    async def __call__(self, scope, receive, send):
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan: not a request
        path = scope.get("path", "")
        root = scope.get("root_path", "") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if kind == "http" and path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if kind == "http" and path == IDENTITY_PATH:
            return await self._identity(scope, send)
        if self._authorized(scope):
            return await self.app(scope, receive, send)
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return None
        await _json(send, 401, {"error": "Unauthorized"},
                    [(b"www-authenticate", b'Bearer realm="r1console"')])
        return None

    async def _identity(self, scope, send):
        if scope.get("method") not in ("GET", "HEAD"):
            return await _json(send, 405, {"error": "Method Not Allowed"})
        query = scope.get("query_string", b"").decode("latin-1")
        challenge = ""
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "challenge":
                challenge = value
        if not _CHALLENGE.match(challenge):
            return await _json(send, 400, {"error": "challenge must be 32-128 lowercase hex digits"})
        return await _json(send, 200, {"r1console_identity": 1, "job_id": self._job_id,
                                       "proof": identity_proof(self._key, self._job_id, challenge)})


async def _json(send, status, obj, extra=()):
    body = json.dumps(obj).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
