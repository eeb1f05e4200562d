"""A small Chrome DevTools Protocol client (aiohttp websocket) for driving headless Chromium.

Enough for the browser tests: open a page, evaluate JavaScript, type keys, record the websocket
frames the page receives, take screenshots. No webdriver: Chromium speaks CDP itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpPage:
    """One page target. ``frames`` collects the payloads of websocket frames the page receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.frames = bytearray()
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self.events.append(data)
            if data.get("method") == "Network.webSocketFrameReceived":
                response = data["params"]["response"]
                payload = response["payloadData"]
                if response.get("opcode") == 2:  # binary: base64
                    self.frames += base64.b64decode(payload)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("CDP connection closed"))

    async def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send_str(json.dumps({"id": self._next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"CDP {method}: {reply['error']}")
        return reply.get("result", {})

    async def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        result = await self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                                 awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self, since: int = 0) -> str:
        """What the page's websocket delivered from byte ``since`` on, escape sequences removed."""
        raw = bytes(self.frames[since:]).decode("utf-8", errors="replace")
        return re.sub(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>NOM78])", "", raw)

    async def wait_text(self, pattern: str, *, since: int = 0, timeout: float) -> re.Match:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            match = re.search(pattern, self.text(since))
            if match:
                return match
            if loop.time() > deadline:
                tail = self.text(since)[-3000:]
                raise AssertionError(f"{pattern!r} did not reach the page within {timeout} s; last text:\n{tail}")
            await asyncio.sleep(0.2)

    async def press(self, key: str, *, text: str = "", code: str = "", vk: int = 0, modifiers: int = 0) -> None:
        """A real key press in the page (keydown with its text, then keyup), as a user's keyboard sends."""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    async def screenshot(self, path: Path) -> Path:
        result = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.ws.close()


@contextlib.asynccontextmanager
async def headless_chromium(width: int = 1280, height: int = 800, timeout: float = 30.0) -> AsyncIterator[
        tuple[aiohttp.ClientSession, str]]:
    """Start headless Chromium with CDP on a free 127.0.0.1 port; yields (http session, devtools base URL)."""
    binary = find_chromium()
    if binary is None:
        raise AssertionError("chromium is not installed (.ci/run installs Debian's chromium)")
    profile = tempfile.mkdtemp(prefix="r1c-chromium-")
    argv = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited with {proc.returncode} before DevTools came up")
            if loop.time() > deadline:
                raise AssertionError(f"chromium's DevTools did not come up within {timeout} s")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            yield http, f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


async def open_page(http: aiohttp.ClientSession, devtools: str) -> CdpPage:
    async with http.put(f"{devtools}/json/new?about:blank") as resp:
        target = await resp.json()
    ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
    page = CdpPage(ws)
    await page.call("Page.enable")
    await page.call("Network.enable")
    await page.call("Runtime.enable")
    return page
