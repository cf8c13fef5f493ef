"""Open a page in headless Chromium (Debian's `chromium`) and read back what a person would see: every
section's size, every image's decoded size, and what the console reported. Speaks the DevTools protocol over
`--remote-debugging-pipe` (file descriptors 3 and 4, NUL-terminated JSON), so no WebSocket library and no
network port are needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# what the page reports about itself once loaded: run in the page after the load event
PAGE_PROBE = """JSON.stringify({
  title: document.title,
  sections: Array.from(document.querySelectorAll('section')).map(s => ({
    id: s.id, heading: (s.querySelector('h2') || {}).textContent || '',
    height: s.getBoundingClientRect().height, visible: s.checkVisibility()})),
  images: Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
    shown: i.getBoundingClientRect().width})),
  links: Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href')),
})"""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@dataclass
class PageReport:
    title: str
    sections: list[dict[str, Any]]
    images: list[dict[str, Any]]
    links: list[str]
    console: list[str] = field(default_factory=list)  # errors and warnings, exceptions, failed loads


class _Pipe:
    """One DevTools session over the browser's pipe: send a command, wait for its answer, keep events."""

    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                raise RuntimeError(f"Chromium closed its pipe (exit {self.proc.poll()}): {err}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def _console_lines(events: list[dict[str, Any]]) -> list[str]:
    lines = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            lines.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description", "")
            lines.append(f"exception: {details.get('text', '')} {thrown}".strip())
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
            entry = params["entry"]
            lines.append(f"{entry['source']} {entry['level']}: {entry.get('text', '')} {entry.get('url', '')}")
    return lines


def open_page(path: Path, *, timeout: float = 120) -> PageReport:
    """Load `path` (a local HTML file) in a fresh headless Chromium and report what it shows."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def wire_fds() -> None:  # the browser reads commands on fd 3 and writes answers on fd 4
        commands, answers = os.dup(to_browser_r), os.dup(from_browser_w)  # above 4: neither overwrites the other
        os.dup2(commands, 3)
        os.dup2(answers, 4)

    with tempfile.TemporaryDirectory(prefix="qwen-hpc-chromium-") as profile:
        proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             f"--user-data-dir={profile}", "--window-size=1200,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire_fds, pass_fds=(3, 4),  # kept open after wire_fds
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(proc, to_browser_w, from_browser_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout=timeout)
            probe = pipe.call("Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True},
                              session=session)
            seen = json.loads(probe["result"]["value"])
            try:
                pipe.call("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(to_browser_w)
            os.close(from_browser_r)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return PageReport(seen["title"], seen["sections"], seen["images"], seen["links"], _console_lines(pipe.events))
