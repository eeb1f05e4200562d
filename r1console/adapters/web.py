"""The console in a browser: textual-serve's aiohttp app behind a per-run secret token.

textual-serve starts one console process per browser session (its websocket) and relays the
terminal over that websocket. On a shared login node every other user can reach 127.0.0.1, and a
session holds the user's SSH connection, so every route except the static assets needs the token
printed at start (Jupyter's convention): ``/?token=T`` for the page, ``/ws/T`` for the websocket
(textual-serve's JavaScript appends ``?width=..`` to the websocket URL, so it cannot carry a query).
Anything else gets 403 before the page renders or the websocket upgrades.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

HOST = "127.0.0.1"
REFUSED = "r1console serve-web: this URL needs the token printed when the server started (?token=...)\n"


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenServer(Server):
    """textual-serve's Server with a token guard on every route but ``/static``."""

    def __init__(self, command: str, *, token: str, port: int, title: str) -> None:
        super().__init__(command, host=HOST, port=port, title=title)
        self.token = token

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        path = request.path
        if path.startswith("/static/"):
            return await handler(request)
        if path.startswith("/ws/"):
            given = path[len("/ws/"):]
        else:
            given = request.query.get("token")
        if not self._token_ok(given):
            return web.Response(status=403, text=REFUSED)
        return await handler(request)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        app.router.add_get("/ws/{token}", self.handle_websocket, name="token_websocket")
        return app

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        font_size = 16
        try:
            font_size = int(request.query.get("fontsize", "16"))
        except ValueError:
            pass
        context = {
            "font_size": font_size,
            "app_websocket_url": f"ws://{HOST}:{self.port}/ws/{self.token}",
            "config": {"static": {"url": f"{self.public_url}/static/"}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def on_startup(self, app: web.Application) -> None:  # textual-serve prints a logo here
        return None


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(command: str, *, port: int, title: str, token: str | None = None,
          announce: Callable[[str], None] | None = None) -> int:
    """Serve until SIGINT/SIGTERM. ``announce(url)`` gets the URL with its token once listening."""
    token = token or new_token()
    sock = bind(port)
    port = sock.getsockname()[1]
    server = TokenServer(command, token=token, port=port, title=title)
    logging.basicConfig(level=logging.WARNING, format="r1console serve-web: %(message)s", stream=sys.stderr)

    async def main() -> None:
        app = await server._make_app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        url = f"http://{HOST}:{port}/?token={token}"
        (announce or print)(url)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return 0
