"""A simulated vLLM OpenAI-compatible server: HTTP/1.1 on asyncio streams, no web framework.

Endpoints (as vLLM serves them; JSON/SSE shapes per ``--vllm-version``, see sim_versions):
  GET  /health  /version  /load  /metrics  /v1/models
  POST /v1/chat/completions  /v1/completions      (streaming or not)
  With an API key every route but /health demands it, like r1console's job (slurm/r1c_auth.py), and
  GET /r1c/identity?challenge=HEX answers the job's identity proof.
Simulator endpoints (never guarded by the API key):
  GET  /_sim/state      counters: requests seen / in flight / completed / aborted / faults / duplicates
  GET  /_sim/requests   recent request records (fingerprint, status, tokens) for duplicate checks
  GET  /_sim/faults     POST /_sim/faults {"drop_after_tokens": 5, ...} (partial update)   DELETE: clear
  POST /_sim/reset      zero the counters and records (not the engine)

Tokens come from ``SimEngine`` (slots, queue, KV cache, step clock calibrated on the seed's H100
numbers); a step of ``d`` simulated seconds takes ``d * time_scale`` wall seconds (0: as fast as
possible). Histograms in /metrics are in simulated seconds.

In-process use::

    async with SimServer(vllm_version="0.32.0", max_num_seqs=8, time_scale=0.01, api_key="k") as srv:
        httpx.get(srv.url + "/health")
        srv.set_faults(status_5xx_rate=1.0, limit=2)   # the next two generation requests get a 500
        srv.state()["completed"]

The code lives in ``r1console.demo.vllm`` (server, api, faults, config, wire; http11 shared with the tests);
this module re-exports its public names.
"""

from __future__ import annotations

from r1console.demo.vllm.config import SimServerConfig
from r1console.demo.vllm.faults import Faults
from r1console.demo.vllm.server import SimServer, run_forever
from r1console.demo.vllm.wire import ENGINE_ERROR, MAX_BODY, MAX_HEAD, PROM_TYPE, SSE_TYPE

__all__ = ["ENGINE_ERROR", "Faults", "MAX_BODY", "MAX_HEAD", "PROM_TYPE", "SSE_TYPE", "SimServer", "SimServerConfig",
           "run_forever"]
