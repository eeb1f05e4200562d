"""How responsive the console stays under load (issue: event-loop lag p99 < 50 ms).

Scenarios, each in a headless Textual app (``run_test``: the compositor still renders):
  chat   a 10,000-token answer (half reasoning, half answer) streamed at 500 tokens/s over real
         HTTP/SSE into the chat screen (the same worker, coalescing and Markdown streams);
  log    a job log growing at 10 MB/s fed through the job screen's path (LogParser + LogBuffer +
         LogView with follow on), as JobWatch does;
  render the chat screen's total processing time for 1k/5k/10k/20k tokens streamed as fast as
         possible: per-token cost should stay flat (linear total), not grow (quadratic).
Event-loop lag: a probe task sleeps 10 ms in a loop and records how late it wakes up.

Run: python bench/bench_tui.py  (about 60 s). Prints a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time

from textual.app import App

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from r1console.core.logbuffer import LogBuffer  # noqa: E402
from r1console.core.logparse import LogParser  # noqa: E402
from r1console.tui.screens.chat import ChatScreen  # noqa: E402
from r1console.tui.widgets.log_view import LogView  # noqa: E402


class LagProbe:
    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - t0 - self.period))

    def __enter__(self) -> "LagProbe":
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        self.cpu_share = (time.process_time() - self._cpu0) / max(1e-9, time.perf_counter() - self._wall0)

    def stats(self) -> tuple[float, float, float, float]:
        lags = sorted(self.lags) or [0.0]
        p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
        return p(0.5) * 1000, p(0.99) * 1000, lags[-1] * 1000, 100 * getattr(self, "cpu_share", 0.0)


# ---- a minimal SSE server emitting an R1-shaped stream at a fixed token rate -------------------
async def sse_server(tokens: int, rate: float):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in request.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            path = request.split(b" ")[1]
            if path.startswith(b"/v1/models"):
                body = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            start = time.perf_counter()
            for i in range(tokens):
                field = "reasoning" if i < tokens // 2 else "content"
                word = f"word{i % 97} " if i % 40 else "\n\n"
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "bench",
                         "choices": [{"index": 0, "delta": {field: word}, "finish_reason": None}]}
                writer.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if rate:
                    delay = start + (i + 1) / rate - time.perf_counter()
                    await writer.drain()
                    if delay > 0:
                        await asyncio.sleep(delay)
            end = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "bench",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}}
            writer.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
            await writer.drain()
            writer.close()
            return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


class ChatHost(App):
    CSS_PATH = os.path.join(os.path.dirname(__file__), "..", "r1console", "tui", "app.tcss")

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def on_mount(self) -> None:
        @contextlib.asynccontextmanager
        async def opener():
            yield self.url, None

        self.push_screen(ChatScreen("bench", opener, max_tokens=100_000))


async def chat_run(tokens: int, rate: float) -> tuple[float, tuple[float, float, float, float]]:
    server, url = await sse_server(tokens, rate)
    try:
        app = ChatHost(url)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            while screen.session.model is None:
                await pilot.pause(0.02)
            with LagProbe() as probe:
                t0 = time.perf_counter()
                screen.query_one("#chat-input").value = "go"
                await pilot.press("enter")
                await pilot.pause(0.05)
                while screen.session.streaming or "streaming" in str(screen.query_one(".chat-summary").render()):
                    await pilot.pause(0.02)
                elapsed = time.perf_counter() - t0
            assert len(screen.session.turns[0].content) > 0
            return elapsed, probe.stats()
    finally:
        server.close()


class LogHost(App):
    def compose(self):
        yield LogView(LogBuffer(20_000), id="log")


def fake_log_chunk(i: int, size: int) -> bytes:
    lines = []
    n = 0
    while n < size:
        line = (f"(APIServer pid=4242) INFO 11-28 13:{i % 60:02d}:00 [loggers.py:123] Engine 000: Avg prompt "
                f"throughput: 1234.5 tokens/s, Avg generation throughput: 987.6 tokens/s, Running: 112 reqs, "
                f"Waiting: 3 reqs, GPU KV cache usage: 45.{i % 10}%\n")
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()


async def log_run(mb_per_s: float, seconds: float) -> tuple[float, tuple[float, float, float, float], int]:
    app = LogHost()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(LogView)
        parser = LogParser("out")
        chunk_period = 0.02
        chunk = fake_log_chunk(0, int(mb_per_s * 2**20 * chunk_period))
        fed = 0
        dirty = asyncio.Event()

        async def writer() -> None:
            nonlocal fed
            start = time.perf_counter()
            i = 0
            while time.perf_counter() - start < seconds:
                view.buffer.feed_bytes(chunk)
                parser.feed(chunk)
                fed += len(chunk)
                dirty.set()
                i += 1
                delay = start + i * chunk_period - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))

        async def renderer() -> None:  # the coalesced LogGrew handler: at most one refresh per wake-up
            while True:
                await dirty.wait()
                dirty.clear()
                view.refresh_lines()
                await asyncio.sleep(0)

        with LagProbe() as probe:
            render_task = asyncio.create_task(renderer())
            t0 = time.perf_counter()
            await writer()
            elapsed = time.perf_counter() - t0
            await pilot.pause(0.05)
            render_task.cancel()
        return fed / elapsed / 2**20, probe.stats(), view.line_count


async def main() -> None:
    rows = []
    print(f"machine load average before: {os.getloadavg()[0]:.2f} (lag includes time other processes hold the CPU)")
    elapsed, stats = await chat_run(10_000, 500)
    rows.append(("chat 10k tokens @ 500 tok/s", f"{elapsed:.1f} s", *stats))
    mbps, stats, lines = await log_run(10, 10)
    rows.append((f"log growing @ 10 MB/s (got {mbps:.1f} MB/s)", f"10 s, {lines} lines kept", *stats))
    print(f"{'scenario':<44}{'duration':>24}{'lag p50 ms':>12}{'p99 ms':>9}{'max ms':>9}{'CPU %':>8}")
    for name, dur, p50, p99, worst, cpu in rows:
        print(f"{name:<44}{dur:>24}{p50:>12.1f}{p99:>9.1f}{worst:>9.1f}{cpu:>8.0f}")
    print()
    print(f"{'render cost: tokens streamed flat out':<44}{'total s':>12}{'us/token':>12}")
    for n in (1_000, 5_000, 10_000, 20_000):
        elapsed, _ = await chat_run(n, 0)
        print(f"{n:<44,}{elapsed:>12.2f}{1e6 * elapsed / n:>12.0f}")


if __name__ == "__main__":
    asyncio.run(main())
