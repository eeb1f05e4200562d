"""A scripted OpenAI-compatible HTTP/1.1 server on 127.0.0.1, for client tests.

It replays real vLLM 0.32 captures (tests/data/vllm-0.32/) and can rewrite them into the
reasoning-field shapes of older vLLM versions, as ``r1console.core.vllm_versions`` names them
(``REASONING_SHAPES``):

* ``"reasoning_content"`` — before vLLM 0.11.2 (and DeepSeek's own API);
* ``"both"`` — 0.11.2–0.15: ``reasoning`` and ``reasoning_content`` with the same text;
* ``"reasoning"`` — 0.16 and later (the capture as is).

Each test scripts the answers with handlers. A handler is ``async def h(request, reply)``;
``reply`` writes raw HTTP: ``await reply.json(status, obj)``, ``await reply.sse(events, ...)``,
``await reply.cut()``, or just sleeps (a slow server). Responses are chunked like uvicorn's, so
a cut stream looks to the client exactly like a server that died.

The server runs its own event loop in a thread, so both async tests and the synchronous CLI
(``r1console.cli.main``, which calls ``asyncio.run``) can talk to it. Every request is recorded
in ``server.requests``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

from r1console.core.vllm_versions import REASONING, REASONING_SHAPES
from r1console.demo.vllm import http11
from r1console.demo.vllm.http11 import Request

__all__ = ["SHAPES", "FakeOpenAI", "Handler", "Reply", "Request", "capture_body", "capture_chunks",
           "capture_json", "capture_status", "error_capture", "reshape", "stall", "stream_chunks"]

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-0.32"


# -- captures ---------------------------------------------------------------------------------

def capture_body(name: str) -> str:
    """The body of a raw HTTP capture (headers dropped); metrics captures are bodies already."""
    text = (DATA / name).read_text(encoding="utf-8")
    if text.startswith("HTTP/"):
        text = text.replace("\r\n", "\n").split("\n\n", 1)[1]
    return text


def capture_json(name: str) -> Any:
    return json.loads(capture_body(name))


def capture_status(name: str) -> int:
    return int((DATA / name).read_text(encoding="utf-8").split()[1])


def capture_chunks(name: str) -> list[dict]:
    """The JSON chunks of an SSE capture, without the final ``[DONE]``."""
    out = []
    for line in capture_body(name).splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[len("data: "):]))
    return out


SHAPES = tuple(REASONING_SHAPES)  # "reasoning_content", "both", "reasoning"


def reshape(obj: dict, shape: str) -> dict:
    """Rewrite the reasoning field of a chunk or response into ``shape`` (see module doc)."""
    if shape not in SHAPES:
        raise ValueError(shape)
    keys = REASONING_SHAPES[shape]
    obj = copy.deepcopy(obj)
    for choice in obj.get("choices") or []:
        for key in ("delta", "message"):
            part = choice.get(key)
            if not isinstance(part, dict):
                continue
            if REASONING in part:
                value = part.pop(REASONING)
                part.update(dict.fromkeys(keys, value))
            elif shape == "both" and "content" in part and key == "delta":
                # 0.11.2–0.15 serialize the unset reasoning fields as null next to content.
                part.update(dict.fromkeys(keys))
    return obj


def stream_chunks(shape: str = "reasoning", name: str = "chat_stream_sse.txt") -> list[dict]:
    return [reshape(c, shape) for c in capture_chunks(name)]


# -- the server -------------------------------------------------------------------------------

class Reply:
    """Raw HTTP writer for one response (``connection: close``)."""

    def __init__(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader | None = None) -> None:
        self.writer = writer
        self.reader = reader

    async def client_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the client to close its side; True if it did."""
        assert self.reader is not None
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) == b""
        except ConnectionError:
            return True
        except asyncio.TimeoutError:
            return False

    async def head(self, status: int, headers: dict[str, str]) -> None:
        self.writer.write(http11.response_head(status, headers.items(), keep_alive=False, server="fake-openai"))
        await self.writer.drain()

    async def body(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        await self.head(status, {"content-type": content_type, "content-length": str(len(body))})
        self.writer.write(body)
        await self.writer.drain()

    async def json(self, status: int, obj: Any) -> None:
        await self.body(status, json.dumps(obj).encode())

    async def text(self, status: int, text: str, content_type: str = "text/plain") -> None:
        await self.body(status, text.encode(), content_type)

    async def start_stream(self) -> None:
        await self.head(200, {"content-type": "text/event-stream; charset=utf-8",
                              "transfer-encoding": "chunked"})

    async def chunk(self, data: bytes) -> None:
        if data:
            self.writer.write(http11.chunk(data))
            await self.writer.drain()

    async def end_stream(self) -> None:
        self.writer.write(http11.LAST_CHUNK)
        await self.writer.drain()

    async def sse(self, events: list[Any], *, delay: float = 0.0, done: bool = True,
                  cut_after: int | None = None, split: int | None = None,
                  newline: str = "\n", first_delay: float = 0.0) -> None:
        """Stream ``events`` (dicts become ``data: json``; str/bytes are sent raw) as SSE.

        ``cut_after=n``: after n events, send half of the next one and drop the connection.
        ``split=k``: cut the byte stream into k-byte network chunks.  ``delay``: seconds
        between events; ``first_delay`` before the first.
        """
        await self.start_stream()
        if first_delay:
            await asyncio.sleep(first_delay)
        payloads = [self._event(e, newline) for e in events]
        if done:
            payloads.append(f"data: [DONE]{newline}{newline}".encode())
        for i, payload in enumerate(payloads):
            if cut_after is not None and i == cut_after:
                await self.chunk(payload[: len(payload) // 2])
                await self.cut()
                return
            if i and delay:
                await asyncio.sleep(delay)
            if split:
                for j in range(0, len(payload), split):
                    await self.chunk(payload[j:j + split])
            else:
                await self.chunk(payload)
        await self.end_stream()

    @staticmethod
    def _event(event: Any, newline: str) -> bytes:
        if isinstance(event, bytes):
            return event
        if isinstance(event, str):
            return event.encode()
        return f"data: {json.dumps(event)}{newline}{newline}".encode()

    async def cut(self) -> None:
        """Drop the connection abruptly (no end of chunked body)."""
        self.writer.transport.abort()


Handler = Callable[[Request, Reply], Awaitable[None]]


class FakeOpenAI:
    """``with FakeOpenAI(api_key="k") as server: server.url ...``. Defaults answer like vLLM
    0.32 serving ``tiny-r1``; replace any route with ``server.route(method, path, handler)``."""

    def __init__(self, *, api_key: str | None = None, shape: str = "reasoning") -> None:
        self.api_key = api_key
        self.shape = shape
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): self._health,
            ("GET", "/version"): self._version,
            ("GET", "/v1/models"): self._models,
            ("GET", "/metrics"): self._metrics,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
        }
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def last(self, path: str) -> Request:
        return [r for r in self.requests if r.path == path][-1]

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            try:
                request = await http11.read_request(http11.Connection(reader, writer))
            except http11.BadRequest:
                writer.write(http11.BAD_REQUEST)
                return
            if request is None:
                return
            method, headers = request.method, request.headers
            self.requests.append(request)
            reply = Reply(writer, reader)
            if (self.api_key and request.path.startswith("/v1")
                    and headers.get("authorization") != f"Bearer {self.api_key}"):
                # vLLM's AuthenticationMiddleware: /v1/* only, this exact body.
                await reply.json(401, {"error": "Unauthorized"})
            else:
                handler = self.routes.get((method, request.path))
                if handler is None:
                    await reply.json(404, {"detail": "Not Found"})
                else:
                    await handler(request, reply)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    # -- default routes (vLLM 0.32 captures) ------------------------------------------------

    async def _health(self, request: Request, reply: Reply) -> None:
        await reply.body(200, b"", "application/json")

    async def _version(self, request: Request, reply: Reply) -> None:
        await reply.json(200, capture_json("version.txt"))

    async def _models(self, request: Request, reply: Reply) -> None:
        await reply.json(200, capture_json("models.txt"))

    async def _metrics(self, request: Request, reply: Reply) -> None:
        await reply.text(200, capture_body("metrics_under_load.txt"),
                         "text/plain; version=0.0.4; charset=utf-8")

    async def _chat(self, request: Request, reply: Reply) -> None:
        body = request.json()
        if body.get("model") != "tiny-r1":
            await reply.body(404, capture_body("err_bad_model.txt").encode())
            return
        if body.get("stream"):
            await reply.sse(stream_chunks(self.shape))
        else:
            await reply.json(200, reshape(capture_json("chat_nonstream.txt"), self.shape))

    async def _completions(self, request: Request, reply: Reply) -> None:
        await reply.json(200, capture_json("completions.txt"))


def error_capture(name: str) -> Handler:
    """A handler that answers with a captured error response (status and body)."""

    async def handler(request: Request, reply: Reply) -> None:
        await reply.body(capture_status(name), capture_body(name).encode())

    return handler


def stall(seconds: float) -> Handler:
    """A handler that says nothing for ``seconds`` (the client should time out first)."""

    async def handler(request: Request, reply: Reply) -> None:
        await asyncio.sleep(seconds)

    return handler
