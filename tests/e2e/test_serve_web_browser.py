"""`r1console serve-web --demo` in a real headless Chromium (Debian's `chromium`, driven over CDP).

The page loads with the printed token, the demo's jobs screen reaches the browser, keys typed in the
page reach the console (help opens on `?`), and screenshots are kept as artefacts. Without the token
the page and the websocket are refused (403) and no console process starts.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from cdp import find_chromium, headless_chromium, open_page

pytestmark = pytest.mark.skipif(find_chromium() is None and not os.environ.get("CI"),
                                reason="chromium is not installed (.ci/run installs it)")


def artefact_dir() -> Path:
    root = Path(os.environ.get("R1C_ARTEFACTS", Path(tempfile.gettempdir()) / "r1console-artefacts"))
    path = root / "serve-web"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def served(tmp_path):
    """`r1console serve-web --demo` on a free port; yields (process, URL with token)."""
    env = dict(os.environ, R1CONSOLE_CONFIG=str(tmp_path / "none.yaml"), R1CONSOLE_STATE_DIR=str(tmp_path / "state"),
               TMPDIR=str(tmp_path))
    errlog = open(tmp_path / "serve-web.err", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "r1console", "serve-web", "--demo"], env=env,
                            stdout=subprocess.PIPE, stderr=errlog, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, seen = None, []
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
            if match:
                url = match.group(1)
        assert url, f"serve-web printed no URL within 30 s: {seen!r}; stderr: {(tmp_path / 'serve-web.err').read_text()}"
        spawned: list[psutil.Process] = []
        yield proc, url, spawned
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        gone, alive = psutil.wait_procs(spawned, timeout=15)
        assert alive == [], f"console processes left running after serve-web stopped: {alive}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        errlog.close()


def console_children(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


async def test_serve_web_in_headless_chromium(served):
    proc, url, spawned = served
    base = url.split("/?token=")[0]
    token = url.split("token=")[1]
    out = artefact_dir()
    print(f"\nserve-web artefacts: {out}")

    listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening

    # Without the token: refused, on the page and on the websocket, and nothing starts.
    async with aiohttp.ClientSession() as http:
        for bad in (f"{base}/", f"{base}/?token=wrong", f"{base}/?token={token[:-1]}"):
            async with http.get(bad) as resp:
                assert resp.status == 403, bad
                assert "token" in await resp.text()
        for bad in (f"{base}/ws", f"{base}/ws/wrong", f"{base}/ws?token=wrong"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(bad)
            assert refused.value.status == 403, bad
        async with http.get(f"{base}/static/js/textual.js") as resp:  # textual-serve's own assets are public
            assert resp.status == 200

    async with headless_chromium() as (http, devtools):
        page = await open_page(http, devtools)
        try:
            # The browser itself: the tokenless page is a 403, its websocket never opens.
            await page.call("Page.navigate", url=f"{base}/")
            status = await page.evaluate(
                "new Promise(r => { const f = () => document.readyState === 'complete' ? "
                "r(performance.getEntriesByType('navigation')[0].responseStatus) : setTimeout(f, 50); f(); })")
            assert status == 403
            ws_result = await page.evaluate(
                f"new Promise(r => {{ const ws = new WebSocket('ws://127.0.0.1:{base.rsplit(':', 1)[1]}/ws/nope'); "
                "ws.onopen = () => r('open'); ws.onclose = () => r('refused'); })")
            assert ws_result == "refused"
            assert console_children(proc) == []

            # With the token: the page loads, its websocket starts the demo console.
            await page.call("Page.navigate", url=url)
            await page.wait_text(r"QUEUED|STARTING|LOADING|READY", timeout=60)  # the demo opens its job
            spawned += console_children(proc)
            assert spawned, "no console process started for the browser session"
            shown = await page.evaluate(
                "new Promise(r => { const t0 = Date.now(); const f = () => "
                "document.body.classList.contains('-first-byte') ? r(document.querySelectorAll('canvas').length) "
                ": (Date.now() - t0 > 20000 ? r(-1) : setTimeout(f, 100)); f(); })")
            assert shown > 0, "the terminal did not render in the page"

            # Keys typed in the page reach the console: escape goes back to the jobs screen, ? opens help.
            await page.evaluate("document.querySelector('.xterm-helper-textarea').focus(), true")
            mark = len(page.frames)
            await page.press("Escape", code="Escape", vk=27)
            await page.wait_text(r"Jobs on demo", since=mark, timeout=30)
            await asyncio.sleep(1.0)
            print(f"  {await page.screenshot(out / 'jobs-screen.png')}")
            mark = len(page.frames)
            await page.press("?", text="?", code="Slash", vk=191, modifiers=8)
            await page.wait_text(r"command palette", since=mark, timeout=30)
            await asyncio.sleep(1.0)
            shot = await page.screenshot(out / "help-screen.png")
            print(f"  {shot}")
            assert shot.stat().st_size > 20_000  # a rendered screen, not a blank page
        finally:
            await page.close()
