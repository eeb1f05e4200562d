#!/usr/bin/env python3
"""Capture a running test vLLM server's real responses and logs as test data.

    bash tests/infra/vllm-cpu.sh model && R1C_VLLM_API_KEY=k bash tests/infra/vllm-cpu.sh start
    python tests/infra/vllm-capture.py --url http://127.0.0.1:8011 --api-key k \\
        --logs /opt/r1c-vllm/state/logs --out tests/data/vllm-0.32
    bash tests/infra/vllm-cpu.sh stop

    # with a tiny KV cache (R1C_VLLM_KV_CACHE_BYTES=4M ... start): metrics under load
    python tests/infra/vllm-capture.py ... --load-only --prefix kv4M_

Writes raw bodies exactly as the server sent them (SSE streams byte for byte), the server's
startup logs (.out = vLLM logger, .err = tqdm bars and uvicorn), and capture.json describing
the server. Only sends to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


def save(out: Path, name: str, data: bytes | str) -> None:
    path = out / name
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    print(f"{path} ({len(data)} bytes)")


def capture_basic(client: httpx.Client, url: str, model: str, out: Path) -> None:
    r = client.get("/health")
    save(out, "health.txt", f"HTTP {r.status_code}\n{r.text}")
    save(out, "version.json", client.get("/version").content)
    save(out, "models.json", client.get("/v1/models").content)
    save(out, "load.json", client.get("/load").content)

    chat = {"model": model, "messages": QUESTION, "temperature": 0}
    save(out, "chat.json", client.post("/v1/chat/completions", json=chat).content)
    with client.stream("POST", "/v1/chat/completions",
                       json={**chat, "stream": True, "stream_options": {"include_usage": True}}) as r:
        save(out, "chat_stream_usage.sse", r.read())
    with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True, "max_tokens": 6}) as r:
        save(out, "chat_stream_length.sse", r.read())
    save(out, "completions.json", client.post(
        "/v1/completions", json={"model": model, "prompt": "The console", "max_tokens": 8,
                                 "temperature": 0}).content)

    errors = {
        "error_401_no_key.json": httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=30),
        "error_404_model.json": client.post("/v1/chat/completions", json={**chat, "model": "no-such-model"}),
        "error_400_max_tokens.json": client.post("/v1/chat/completions", json={**chat, "max_tokens": 5000}),
        "error_400_too_long.json": client.post("/v1/chat/completions", json={
            **chat, "messages": [{"role": "user", "content": "7 " * 1100}]}),
        "error_400_bad_json.json": client.post("/v1/chat/completions", content=b"{not json",
                                               headers={"content-type": "application/json"}),
    }
    for name, r in errors.items():
        save(out, name, f"HTTP {r.status_code}\n".encode() + r.content)
    save(out, "metrics.txt", client.get("/metrics").content)


async def capture_load(url: str, key: str, model: str, out: Path, prefix: str,
                       requests: int, max_tokens: int) -> None:
    """Bounded load: ``requests`` concurrent streams of ``max_tokens`` (ignore_eos); keep the
    /metrics sample with the highest KV-cache usage (the one after the load is only summarised)."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": model, "messages": QUESTION, "stream": True, "max_tokens": max_tokens,
            "ignore_eos": True}
    best: tuple[float, bytes] = (-1.0, b"")
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        async def one() -> None:
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                async for _ in r.aiter_bytes():
                    pass

        tasks = [asyncio.create_task(one()) for _ in range(requests)]
        deadline = time.monotonic() + 300
        while not all(t.done() for t in tasks) and time.monotonic() < deadline:
            text = (await client.get("/metrics")).content
            m = re.search(rb"^vllm:kv_cache_usage_perc\{[^}]*\} (\S+)$", text, re.M)
            if m and float(m.group(1)) > best[0]:
                best = (float(m.group(1)), text)
            await asyncio.sleep(0.25)
        await asyncio.gather(*tasks)
        save(out, f"{prefix}metrics_under_load.txt", best[1])
        after = (await client.get("/metrics")).text
        for name in ("vllm:num_preemptions_total", "vllm:generation_tokens_total"):
            m = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", after, re.M)
            print(f"after load: {name} = {m.group(1) if m else '?'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--model", default="tiny-r1")
    ap.add_argument("--logs", type=Path, help="the server's logs dir (server.out, server.err)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prefix", default="", help="prefix for the file names")
    ap.add_argument("--load-only", action="store_true", help="only the metrics-under-load capture")
    ap.add_argument("--load-requests", type=int, default=16)
    ap.add_argument("--load-max-tokens", type=int, default=256)
    args = ap.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("--url must be a loopback address")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.logs:  # before any request, so the logs are the startup logs
        for suffix in ("out", "err"):
            shutil.copyfile(args.logs / f"server.{suffix}", args.out / f"{args.prefix}startup.{suffix}")
            print(args.out / f"{args.prefix}startup.{suffix}")
    if args.load_only:
        asyncio.run(capture_load(args.url, args.api_key, args.model, args.out, args.prefix,
                                 args.load_requests, args.load_max_tokens))
        return 0
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {args.api_key}"},
                      timeout=60) as client:
        capture_basic(client, args.url.rstrip("/"), args.model, args.out)
        version = client.get("/version").json()["version"]
        model_root = client.get("/v1/models").json()["data"][0]["root"]
    manifest_path = Path(model_root) / "r1console-tiny-model.json"
    info = {"vllm_version": version, "served_model": args.model,
            "tiny_model": json.loads(manifest_path.read_text()) if manifest_path.exists() else None,
            "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save(args.out, f"{args.prefix}capture.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
