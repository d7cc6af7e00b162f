"""Drive a headless chromium over the DevTools protocol (aiohttp's websocket client) for page tests.

`check_pages` serves a folder on 127.0.0.1, loads each page, collects console errors, failed loads
and uncaught exceptions, checks that every <img> decoded and every <audio> reports a duration,
and saves a full-page screenshot. Chromium runs with a fresh profile and no network but loopback.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]

# Runs in the page: waits for every image and audio element, returns what the browser reports.
CHECK_SCRIPT = """
(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
  const audios = [...document.querySelectorAll('audio')];
  const settle = a => new Promise(r => {
    if (a.readyState >= 1 || a.error) return r();
    a.addEventListener('loadedmetadata', r, {once: true});
    a.addEventListener('error', r, {once: true});
    a.load();
  });
  await Promise.race([Promise.all(audios.map(settle)), new Promise(r => setTimeout(r, 20000))]);
  return JSON.stringify({
    title: document.title,
    images: imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight})),
    audio: audios.map(a => ({src: a.getAttribute('src'), duration: a.duration, error: a.error ? a.error.code : null,
                             canPlayFlac: a.canPlayType('audio/flac')})),
    text: document.body.innerText,
  });
})()
"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class LocalServer:
    """http.server for `folder` on 127.0.0.1 in a thread (audio works as over any web server)."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Cdp:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def wait_event(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no {method} within {timeout} s")


def _problems(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            found.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log error: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFailed":
            if params.get("type") == "Media" and params.get("errorText") == "net::ERR_ABORTED":
                continue  # chromium stops fetching a clip once it has the metadata (preload="metadata")
            found.append(f"load failed: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params.get("response", {}).get("status", 200) >= 400:
            found.append(f"HTTP {params['response']['status']}: {params['response'].get('url')}")
    return found


async def _check(chromium: str, url_screens: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    import aiohttp

    profile = tempfile.mkdtemp(prefix="hsp-chromium-")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stderr.readline)
            if not line and proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
        if port is None:
            raise RuntimeError("chromium did not open its DevTools port")
        results = []
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                targets = await reply.json(content_type=None)
            page = next(t for t in targets if t.get("type") == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = _Cdp(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await cdp.send(f"{domain}.enable")
                for url, screenshot in url_screens:
                    cdp.events.clear()
                    await cdp.send("Page.navigate", url=url)
                    await cdp.wait_event("Page.loadEventFired", 60)
                    evaluated = await cdp.send("Runtime.evaluate", timeout=90, expression=CHECK_SCRIPT, awaitPromise=True, returnByValue=True)
                    result = json.loads(evaluated["result"]["value"])
                    await cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
                    metrics = await cdp.send("Page.getLayoutMetrics")
                    height = int(min(metrics["cssContentSize"]["height"], 16000))
                    clip = {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}
                    shot = await cdp.send("Page.captureScreenshot", timeout=90, format="png", clip=clip, captureBeyondViewport=True)
                    await cdp.send("Emulation.clearDeviceMetricsOverride")
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                    await asyncio.sleep(0.2)  # late console messages
                    result["problems"] = _problems(cdp.events)
                    result["screenshot"] = str(screenshot)
                    results.append(result)
                cdp.reader.cancel()
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def check_pages(chromium: str, folder: Path, pages: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    """Load `pages` (paths under `folder`, screenshot file) in headless chromium; one result each."""
    os.environ.setdefault("no_proxy", "127.0.0.1")
    with LocalServer(folder) as base:
        return asyncio.run(_check(chromium, [(f"{base}/{page}", shot) for page, shot in pages]))
