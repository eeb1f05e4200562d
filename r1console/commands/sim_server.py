"""``r1console sim-server``: a simulated vLLM OpenAI-compatible server (no GPU, no model).

It answers like the vLLM version it claims (JSON/SSE shapes, reasoning field, metric names, log
lines), schedules requests on ``--max-num-seqs`` slots with a queue, and paces tokens like the seed's
16 x H100 DeepSeek-R1 deployment (``--time-scale 0.01`` runs 100x faster, 0 as fast as possible).
Faults can be set here or at runtime: ``curl -X POST localhost:8000/_sim/faults -d '{"stall_s": 5}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from r1console.core.errors import R1Error
from r1console.core.versions import parse_version
from r1console.demo.vllm.engine import DEFAULT_KV_CACHE_TOKENS
from r1console.demo.vllm.versions import DEFAULT_VERSION


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim-server",
        help="run a simulated vLLM server (OpenAI API, metrics, faults) for demos and tests",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--vllm-version", default=DEFAULT_VERSION, metavar="V",
                   help=f"vLLM version to imitate (default {DEFAULT_VERSION}, the seed's pin)")
    p.add_argument("--model", default="deepseek-ai/DeepSeek-R1", help="model path reported by the server")
    p.add_argument("--served-model-name", help="name clients send as `model` (default: --model)")
    p.add_argument("--max-num-seqs", type=int, default=1024, help="concurrent sequences (default 1024)")
    p.add_argument("--max-num-batched-tokens", type=int, default=8192, help="token budget per step")
    p.add_argument("--max-model-len", type=int, default=163_840, help="context length (default 163840)")
    p.add_argument("--kv-cache-tokens", type=int, default=DEFAULT_KV_CACHE_TOKENS,
                   help=f"KV cache capacity in tokens (default {DEFAULT_KV_CACHE_TOKENS:,})")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="wall seconds per simulated second (1 real time, 0.01 = 100x faster, 0 = no waiting)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on every route but /health (default: $VLLM_API_KEY, else none)")
    p.add_argument("--seed", type=int, default=0, help="seed for lengths, text and fault choices")
    p.add_argument("--quiet", action="store_true", help="do not print vLLM/uvicorn log lines")
    f = p.add_argument_group("fault injection (also at runtime: POST /_sim/faults)")
    f.add_argument("--drop-after-tokens", type=int, metavar="N", help="reset the connection after N tokens")
    f.add_argument("--drop-rate", type=float, default=1.0, metavar="R", help="fraction of requests dropped")
    f.add_argument("--status-5xx-rate", type=float, default=0.0, metavar="R", help="fraction answered 5xx")
    f.add_argument("--status-5xx-code", type=int, default=500, metavar="CODE", help="the 5xx status (500)")
    f.add_argument("--stall-s", type=float, default=0.0, metavar="S", help="pause responses S seconds")
    f.add_argument("--stall-spread-s", type=float, default=0.0, metavar="S",
                   help="add a random 0..S seconds to each stall (held streams end at different times)")
    f.add_argument("--stall-after-tokens", type=int, default=0, metavar="N",
                   help="stall after N streamed tokens (0: before the response starts)")
    f.add_argument("--stall-rate", type=float, default=1.0, metavar="R", help="fraction of requests stalled")
    f.add_argument("--unhealthy", action="store_true", help="/health answers like a dead engine")
    f.add_argument("--fault-limit", type=int, metavar="N", help="fault at most N requests")
    p.set_defaults(func=run)


def build_server(args: argparse.Namespace):
    from r1console.demo.sim_server import Faults, SimServer, SimServerConfig

    try:
        parse_version(args.vllm_version)
    except ValueError as err:
        raise R1Error(f"--vllm-version: {err}") from None
    if not 0 <= args.port <= 65535:
        raise R1Error(f"--port must be 0-65535, got {args.port}")
    if args.time_scale < 0:
        raise R1Error(f"--time-scale must be >= 0, got {args.time_scale:g}")
    try:
        faults = Faults(drop_after_tokens=args.drop_after_tokens, drop_rate=args.drop_rate,
                        status_5xx_rate=args.status_5xx_rate, status_5xx_code=args.status_5xx_code,
                        stall_s=args.stall_s, stall_spread_s=args.stall_spread_s,
                        stall_after_tokens=args.stall_after_tokens,
                        stall_rate=args.stall_rate, unhealthy=args.unhealthy, limit=args.fault_limit)
        faults.validate()
        config = SimServerConfig(
            host=args.host, port=args.port, vllm_version=args.vllm_version, model=args.model,
            served_model_name=args.served_model_name,
            api_key=args.api_key if args.api_key is not None else (os.environ.get("VLLM_API_KEY") or None),
            max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
            max_model_len=args.max_model_len, kv_cache_tokens=args.kv_cache_tokens,
            time_scale=args.time_scale, seed=args.seed, faults=faults,
            log_stream=None if args.quiet else sys.stdout, err_stream=None if args.quiet else sys.stderr)
        return SimServer(config)
    except ValueError as err:
        raise R1Error(f"sim-server: {err}") from None


async def run(args: argparse.Namespace) -> int:
    server = build_server(args)
    try:
        await server.start()
    except OSError as err:
        raise R1Error(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}",
                      hint="pick another --port (0 chooses a free one)") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0
