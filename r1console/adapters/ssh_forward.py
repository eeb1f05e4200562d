"""Port forwards over the SSH transport: a local listener whose connections become direct-tcpip channels.

Each accepted connection opens its channel on the transport's CURRENT connection, so a forward
outlives a reconnect. ``ssh_transport.SSHTransport.forward_local_port`` is this over its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncssh

from r1console.adapters.transport_types import PortForward


async def forward_local_port(connection: Callable[[], Awaitable[asyncssh.SSHClientConnection]],
                             servers: list[asyncio.AbstractServer], host: str, port: int) -> PortForward:
    """Listen on 127.0.0.1:<free port>; each accepted connection opens a direct-tcpip channel
    to ``host:port`` on the CURRENT SSH connection (``connection()``), so the forward survives a
    reconnect. The listener is kept in ``servers`` until the forward is closed."""
    await connection()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await connection()
            r2, w2 = await conn.open_connection(host, port)
        except Exception:  # noqa: BLE001 - the client sees a closed connection, like `ssh -L`
            writer.close()
            return
        await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer), return_exceptions=True)
        for w in (writer, w2):
            with contextlib.suppress(Exception):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    servers.append(server)
    local_port = server.sockets[0].getsockname()[1]

    async def close() -> None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        if server in servers:
            servers.remove(server)

    return PortForward("127.0.0.1", local_port, host, port, close)


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


__all__ = ["forward_local_port"]
