"""A small Chrome DevTools Protocol client over the standard library: enough to drive headless
Chromium for screenshots (navigate, wait for text, run a line of JavaScript, capture).

Screenshots need more than `chromium --screenshot`: the Dagster UI loads its data after the
page, and some views (the check's plots) sit below the fold or behind a click.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

# Flags for a quiet, isolated headless browser that talks to nothing but the page it is given.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-port=0",
)
_DEVTOOLS_LINE = re.compile(rb"DevTools listening on ws://127\.0\.0\.1:(\d+)/")


class WebSocket:
    """A client WebSocket (RFC 6455) for text messages, as DevTools speaks it."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        match = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        if not match:
            raise ValueError(f"not a ws:// URL: {url}")
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self._sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self._sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {response[:200]!r}")
        self._buffer = response.split(b"\r\n\r\n", 1)[1]

    def send(self, text: str) -> None:
        """One masked text frame (clients must mask)."""
        payload = text.encode()
        header = bytearray([0x81])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self._sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def receive(self) -> str:
        """The next complete text message (continuation frames joined; control frames skipped)."""
        parts: list[bytes] = []
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping / pong: DevTools does not need an answer
                continue
            parts.append(payload)
            if first & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        """Drop the connection (the browser is stopped right after)."""
        self._sock.close()


class Browser:
    """Headless Chromium with one page, driven over DevTools."""

    def __init__(self, profile_dir: Path, width: int, height: int, chromium: str = "chromium") -> None:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                   "about:blank"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = self._devtools_port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(target for target in targets if target["type"] == "page")
        self._socket = WebSocket(page["webSocketDebuggerUrl"])
        self._next_id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_port(self) -> int:
        """The port Chromium chose, from the line it prints on stderr at start-up."""
        assert self._process.stderr is not None
        for line in self._process.stderr:
            match = _DEVTOOLS_LINE.search(line)
            if match:
                # Keep draining stderr (dbus complaints and the like): a full pipe would stall Chromium.
                threading.Thread(target=self._process.stderr.read, daemon=True).start()
                return int(match.group(1))
        raise RuntimeError("chromium exited before opening DevTools")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events received meanwhile are dropped)."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.receive())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, wait_for_text: str, timeout: float = 90.0, settle: float = 2.0) -> None:
        """Load a page and wait until its text contains `wait_for_text`, then let it settle
        (the asset graph lays itself out and fits the view after its data arrives)."""
        self.call("Page.navigate", url=url)
        self.wait_for_text(wait_for_text, timeout)
        time.sleep(settle)

    def wait_for_text(self, text: str, timeout: float = 90.0) -> None:
        """Until the page's text contains `text` (its data arrives after the page)."""
        deadline = time.monotonic() + timeout
        probe = f"document.body ? document.body.innerText.includes({json.dumps(text)}) : false"
        while not self.evaluate(probe):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.evaluate('location.href')} never showed {text!r}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        """The visible viewport as a PNG."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Stop the browser."""
        self._socket.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
