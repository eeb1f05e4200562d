"""The shared HTTP/1.1 framing (demo/vllm/http11.py), over a real loopback connection."""

from __future__ import annotations

import asyncio

from r1console.demo.vllm import http11


async def exchange(raw: bytes) -> tuple[list[http11.Request | str], bytes]:
    """Send ``raw`` to a server that reads requests until the client is done; what it read, what it wrote."""
    seen: list[http11.Request | str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = http11.Connection(reader, writer)
        try:
            while (req := await http11.read_request(conn, max_body=1000)) is not None:
                seen.append(req)
        except http11.BadRequest:
            seen.append("bad")
            writer.write(http11.BAD_REQUEST)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    server.close()
    await server.wait_closed()
    return seen, answer


async def test_keep_alive_requests_with_length_and_chunked_bodies():
    raw = (b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\n{}"
           b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
           b"Connection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
    seen, answer = await exchange(raw)
    first, second = seen
    assert (first.method, first.path, first.target, first.json(), first.keep_alive) == (
        "POST", "/v1/chat/completions", "/v1/chat/completions?x=1", {}, True)
    assert first.headers["x-a"] == "1, 2"
    assert (second.body, second.keep_alive) == (b"abcde", False)
    assert answer == b"HTTP/1.1 100 Continue\r\n\r\n"


async def test_malformed_or_oversized_requests_are_refused():
    for raw in (b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\n bad: x\r\n\r\n",
                b"POST / HTTP/1.1\r\ncontent-length: 5000\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a"):
        seen, answer = await exchange(raw)
        assert seen == ["bad"] and answer.startswith(b"HTTP/1.1 400 Bad Request"), raw


def test_response_framing():
    head = http11.response_head(200, [("content-length", "2")], keep_alive=False, server="s", date=False)
    assert head == b"HTTP/1.1 200 OK\r\nserver: s\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    assert http11.response_head(599, [], keep_alive=True).split(b"\r\n")[:3][0] == b"HTTP/1.1 599 Unknown"
    assert b"\r\ndate: " in http11.response_head(200, [], keep_alive=True)
    assert http11.chunk(b"hello") == b"5\r\nhello\r\n" and http11.chunk(b"") == b""
    assert http11.http_date() == http11.http_date()
