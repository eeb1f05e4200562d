"""Who may use a deployment's server, and how the console knows it talks to its own job.

The job runs vLLM with the ``r1c_auth`` middleware (``slurm/r1c_auth.py``, written into the job
by the script): every route but ``/health`` demands the deployment's key, and
``/r1c/identity?challenge=C`` answers ``HMAC-SHA256(key, context, job id, C)`` without it.

Before the console sends the key to ``head:port`` (through its forward) it sends a fresh random
128-bit challenge and checks the proof. Only a process that holds this deployment's key can
compute it; a process squatting on the port (a non-exclusive node, a job id SLURM reused, a
server that is not ours) cannot, and gets neither the key nor the prompts. A proof cannot be
replayed (the challenge is new each time), and it cannot be relayed from our real server either:
that server would have to listen on the very address the squatter holds.

Pure functions; the HTTP request is made by ``adapters.reach``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from r1console.core.errors import R1Error

#: Records of deployments whose script runs the middleware carry this in ``Deployment.auth``.
AUTH_SCHEME = "r1c-identity-v1"
IDENTITY_PATH = "/r1c/identity"
OPEN_PATHS = ("/health",)
PROOF_CONTEXT = "r1console-identity-v1"  # the same string as slurm/r1c_auth.py
_HEX = re.compile(r"[0-9a-f]{64}\Z")


class IdentityError(R1Error):
    """The server at the deployment's address did not prove it holds the deployment's key."""

    exit_code = 1


def new_challenge() -> str:
    return secrets.token_hex(16)


def identity_proof(key: str, job_id: str, challenge: str) -> str:
    message = f"{PROOF_CONTEXT}\n{job_id}\n{challenge}".encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def check_identity(status: int, body: Any, *, key: str, job_id: str, challenge: str, where: str) -> None:
    """Raise IdentityError unless ``body`` (the JSON of /r1c/identity) proves ``job_id`` holds ``key``."""
    hint = ("another process may be listening on the deployment's port (a non-exclusive node, or a job id "
            "SLURM reused); the API key was NOT sent. Check `r1console status` and the job's log")
    if status != 200 or not isinstance(body, dict):
        raise IdentityError(f"{where} did not answer r1console's identity check (HTTP {status}): it may not be "
                            f"job {job_id}'s server", hint=hint)
    proof = body.get("proof")
    if not isinstance(proof, str) or not _HEX.match(proof):
        raise IdentityError(f"{where} answered the identity check without a valid proof", hint=hint)
    if str(body.get("job_id", "")) != str(job_id):
        raise IdentityError(f"{where} says it is job {body.get('job_id')!r}, not job {job_id}", hint=hint)
    if not hmac.compare_digest(proof, identity_proof(key, str(job_id), challenge)):
        raise IdentityError(f"{where} could not prove it holds job {job_id}'s API key", hint=hint)


__all__ = ["AUTH_SCHEME", "IDENTITY_PATH", "IdentityError", "OPEN_PATHS", "PROOF_CONTEXT", "check_identity",
           "identity_proof", "new_challenge"]
