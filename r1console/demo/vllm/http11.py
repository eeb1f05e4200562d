"""The server side of HTTP/1.1 as uvicorn speaks it in front of vLLM: read a request (head,
``content-length`` or chunked body, ``Expect: 100-continue``, keep-alive) and frame a response
(head, chunked body). Shared by the simulated vLLM server (``r1console.demo.sim_server``) and the
tests' scripted OpenAI server (``tests/unit/_fake_openai.py``), so both look the same on the wire.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
#: uvicorn's answer to a request it cannot parse (h11's "Invalid HTTP request received.").
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"connection: close\r\ncontent-length: 29\r\n\r\nInvalid HTTP request received.")
LAST_CHUNK = b"0\r\n\r\n"


class BadRequest(Exception):
    """The bytes on the connection are not a request we accept (uvicorn answers 400 and closes)."""


@dataclass
class Request:
    method: str
    target: str   # as sent, query included
    path: str     # the target's path ("/" when empty)
    version: str  # "1.1" or "1.0"
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    keep_alive: bool

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One client connection: its streams, the bytes read past the last request, who it is."""

    __slots__ = ("reader", "writer", "buf", "peer", "disconnected")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown"
        self.disconnected = False

    async def _more(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise BadRequest()
        self.buf += data


async def read_request(conn: Connection, *, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> Request | None:
    """The next request on ``conn``; None when the client closed between requests; BadRequest otherwise."""
    buf = conn.buf
    while True:
        idx = buf.find(b"\r\n\r\n")
        if idx >= 0:
            break
        if len(buf) > max_head:
            raise BadRequest()
        data = await conn.reader.read(65536)
        if not data:
            if buf.strip():
                raise BadRequest()
            return None
        buf += data
    head = bytes(buf[:idx]).decode("latin-1")
    del buf[:idx + 4]
    method, target, version, headers = _parse_head(head)
    conn_hdr = headers.get("connection", "").lower()
    keep_alive = ("close" not in conn_hdr) if version == "1.1" else ("keep-alive" in conn_hdr)
    if headers.get("expect", "").lower() == "100-continue":
        conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await read_chunked(conn, max_body=max_body)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise BadRequest() from None
        if length < 0 or length > max_body:
            raise BadRequest()
        while len(buf) < length:
            await conn._more()
        body = bytes(buf[:length])
        del buf[:length]
    path = urlsplit(target).path or "/"
    return Request(method, target, path, version, headers, body, keep_alive)


def _parse_head(head: str) -> tuple[str, str, str, dict[str, str]]:
    lines = head.lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest()
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return parts[0], parts[1], parts[2][5:], headers


async def read_chunked(conn: Connection, *, max_body: int = MAX_BODY) -> bytes:
    """A ``transfer-encoding: chunked`` body (trailers skipped)."""
    buf, out = conn.buf, bytearray()
    while True:
        while b"\r\n" not in buf:
            await conn._more()
        idx = buf.find(b"\r\n")
        try:
            size = int(bytes(buf[:idx]).split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest() from None
        del buf[:idx + 2]
        while len(buf) < size + 2:
            await conn._more()
        if size == 0:
            # trailers are not used by clients we care about; skip to the blank line
            while not buf.startswith(b"\r\n"):
                end = buf.find(b"\r\n")
                if end < 0:
                    await conn._more()
                    continue
                del buf[:end + 2]
            del buf[:2]
            return bytes(out)
        out += buf[:size]
        del buf[:size + 2]
        if len(out) > max_body:
            raise BadRequest()


class _DateCache:
    """The ``date`` header text, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second, self.text = now, email.utils.formatdate(now, usegmt=True)
        return self.text


http_date = _DateCache()


def reason(status: int) -> str:
    """The reason phrase for ``status`` (``Unknown`` for codes HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(status: int, headers: Iterable[tuple[str, str]], *, keep_alive: bool, server: str = "uvicorn",
                  date: bool = True) -> bytes:
    """Status line, ``date`` and ``server`` (as uvicorn orders them), ``headers``, and ``connection: close``
    unless the connection stays open."""
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    if date:
        lines.append(f"date: {http_date()}")
    lines.append(f"server: {server}")
    lines += [f"{k}: {v}" for k, v in headers]
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty data is not a chunk: the last chunk is :data:`LAST_CHUNK`)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
