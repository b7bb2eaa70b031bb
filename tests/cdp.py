"""Headless Chromium over the DevTools protocol (CDP), for tests that need a real browser: load a page,
run JavaScript in it (click a header, read the DOM), take a full-page screenshot.

    with Browser() as b:
        b.open(path.as_uri())
        rows = b.eval("document.querySelectorAll('#runs-table tbody tr').length")
        b.screenshot(out_png, width=1280)

Also a command: `python tests/cdp.py PAGE.html OUT.png [WIDTH]` (how docs/report.png is made).
Needs `chromium` on PATH (Debian: apt-get install chromium) and `websocket-client` (the dev extra).
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class CDPError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; a context manager (the process is ended on exit)."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 60.0) -> None:
        exe = find_chromium()
        if exe is None:
            raise CDPError("chromium not found")
        self.timeout_s = timeout_s
        self.profile = Path(tempfile.mkdtemp(prefix="quest-cdp-"))
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._id = 0
        self.console: list[str] = []  # console messages and uncaught exceptions of the page
        self.ws = None

    # -- plumbing -----------------------------------------------------------------------------
    def _port(self) -> int:
        path = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().splitlines()[0])
            time.sleep(0.1)
        raise CDPError("chromium did not open its DevTools port")

    def __enter__(self) -> "Browser":
        import websocket

        port = self._port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout_s) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        if not pages:
            raise CDPError("no page target")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout_s,
                                              suppress_origin=True)
        self.send("Page.enable")
        self.send("Runtime.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("method") == "Runtime.consoleAPICalled":
            args = msg["params"].get("args", [])
            self.console.append(f"{msg['params'].get('type')}: " + " ".join(str(a.get("value", a.get("description")))
                                                                             for a in args))
        elif msg.get("method") == "Runtime.exceptionThrown":
            self.console.append("exception: " + json.dumps(msg["params"].get("exceptionDetails", {}))[:500])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._event(msg)
            if msg.get("method") == method:
                return msg.get("params", {})
        raise CDPError(f"timed out waiting for {method}")

    # -- what tests use ---------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise CDPError(f"{expression!r} threw: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def screenshot(self, out: Path, width: int = 1280) -> tuple[int, int]:
        """A PNG of the whole page (not just the window); returns its CSS size (width, height)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        w, h = int(width), int(size["height"] + 0.999)
        self.send("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
        Path(out).write_bytes(base64.b64decode(shot["data"]))
        return w, h


if __name__ == "__main__":  # python tests/cdp.py PAGE.html OUT.png [WIDTH]
    page, png = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    with Browser() as browser:
        browser.open(page.as_uri())
        print(browser.screenshot(png, int(sys.argv[3]) if len(sys.argv) > 3 else 1280))
