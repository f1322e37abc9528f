"""The handoff stack for end-to-end tests and bench/handoff_latency.py: real Rasa (HTTP API on, with a
token, on localhost), action server, CRM ingestor and the web app with the agent console, plus the
clients people use: a python-socketio widget and an agent's HTTP session with its SSE stream.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import socketio

from tests.stack import Servers, start_servers, start_web, tracker_events, user_messages, wait_turn_end

RASA_API_TOKEN = "e2e-rasa-api-token-0123456789abcdef"
SESSION_SECRET = "e2e-web-session-secret-0123456789abcdef"


@dataclass
class ConsoleStack:
    servers: Servers
    web_url: str
    web_proc: subprocess.Popen


def start_console_stack(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[ConsoleStack]:
    """``start_servers`` with Rasa's HTTP API, then the web app on the same database (demo users seeded)."""
    env = {"RASA_API_TOKEN": RASA_API_TOKEN, "CONCIERGE_SESSION_SECRET": SESSION_SECRET,
           "CONCIERGE_CONSOLE_LOGIN_PER_MIN": "1000", **(extra_env or {})}
    for servers in start_servers(tmp, extra_env=env, rasa_args=["--enable-api", "--auth-token", RASA_API_TOKEN]):
        from bot.db.session import session_scope
        from bot.web.users import ensure_demo_users

        with session_scope(servers.db_url) as s:
            ensure_demo_users(s)
        web_env = {**servers.env, "CONCIERGE_RASA_API_URL": servers.rasa_url,
                   "RASA_PORT": servers.rasa_url.rsplit(":", 1)[1]}
        for web in start_web(web_env, tmp / "web.log"):
            yield ConsoleStack(servers, web.url, web.proc)


class Widget:
    """A python-socketio client speaking Rasa's protocol, as the website widget does.

    With ``tracker_db`` (the stack's Rasa tracker store) it knows when the bot is done with a message:
    ``replies`` waits for the end of the turn in the tracker, then takes every reply sent before now
    (``flush``), instead of waiting out a quiet window."""

    def __init__(self, url: str, tracker_db: Path | None = None) -> None:
        self.url = url
        self.tracker_db = tracker_db
        self.sio = socketio.AsyncClient(reconnection=False)
        # bot_uttered and session_confirm in one queue, in the order they arrived on the socket
        self.events: asyncio.Queue = asyncio.Queue()
        self.session_id: str | None = None
        self._users_before = 0
        self.sio.on("bot_uttered", lambda data: self.events.put_nowait((time.perf_counter(), "bot_uttered", data)))
        self.sio.on("session_confirm", lambda data: self.events.put_nowait((time.perf_counter(), "confirm", data)))

    async def open(self) -> Widget:
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=15)
        await self.sio.emit("session_request", {"session_id": None})
        _, name, self.session_id = await asyncio.wait_for(self.events.get(), 15)
        assert name == "confirm", name
        return self

    async def send(self, text: str) -> float:
        if self.tracker_db is not None:
            self._users_before = user_messages(await asyncio.to_thread(tracker_events, self.tracker_db,
                                                                        self.session_id))
        sent = time.perf_counter()
        await self.sio.emit("user_uttered", {"message": text, "session_id": self.session_id})
        return sent

    async def next_text(self, timeout: float = 45.0) -> tuple[float, str]:
        at, name, data = await asyncio.wait_for(self.events.get(), timeout)
        assert name == "bot_uttered", (name, data)
        return at, str((data or {}).get("text", "")) if isinstance(data, dict) else str(data)

    async def flush(self) -> list[dict]:
        """Every reply the server sent before now: a session_request for our own session is answered on
        this socket after them (one socket's packets keep their order)."""
        await self.sio.emit("session_request", {"session_id": self.session_id})
        got = []
        while True:
            _, name, data = await asyncio.wait_for(self.events.get(), 15)
            if name == "confirm":
                assert data == self.session_id, data
                return got
            got.append(data)

    async def replies(self, timeout: float = 45.0) -> list[dict]:
        """The bot's whole answer to the last ``send``, and nothing more: once Rasa's tracker holds the end
        of the turn, the channel has sent every reply of it (Rasa saves the tracker after its sends), so
        ``flush`` returns them all; the channel's apology after a turn that sent nothing comes after the
        save, so that one is waited for."""
        assert self.tracker_db is not None, "replies() needs the tracker store"
        end = await asyncio.to_thread(wait_turn_end, self.tracker_db, self.session_id, self._users_before, timeout)
        got = []
        if end.bot_messages == 0 and not end.paused:
            _, name, data = await asyncio.wait_for(self.events.get(), timeout)
            assert name == "bot_uttered", (name, data)
            got.append(data)
        got += await self.flush()
        # each bot event is at least one message (Rasa's socket.io output splits a text at blank lines)
        assert len(got) >= end.bot_messages, (end, got)
        return got

    async def texts(self, timeout: float = 45.0) -> list[str]:
        return [str(m.get("text", "")) for m in await self.replies(timeout)]

    async def texts_until_quiet(self, first_timeout: float = 45.0, quiet: float = 2.0) -> list[str]:
        """bench/handoff_latency.py's reading of a turn (a quiet window: no tracker there). Tests use ``texts``."""
        got = [(await self.next_text(first_timeout))[1]]
        while True:
            try:
                got.append((await self.next_text(quiet))[1])
            except asyncio.TimeoutError:
                return got

    async def close(self) -> None:
        await self.sio.eio.disconnect(abort=True)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class AgentClient:
    """An agent in the console over HTTP: log-in, inbox, claim, reply, resolve, and the live SSE stream."""

    def __init__(self, web_url: str) -> None:
        self.web_url = web_url
        self.http = requests.Session()
        self.stream_events: queue.Queue = queue.Queue()
        self._stream_thread: threading.Thread | None = None
        self._stop = threading.Event()

    def login(self, username: str, password: str) -> requests.Response:
        page = self.http.get(f"{self.web_url}/console/login", timeout=10)
        return self.http.post(f"{self.web_url}/console/login", timeout=10, allow_redirects=False,
                              data={"username": username, "password": password, "csrf": csrf_of(page.text)})

    def find_handoff(self, ticket_number: str, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            html = self.http.get(f"{self.web_url}/console", timeout=10).text
            match = re.search(r'href="/console/h/(\d+)">' + re.escape(ticket_number) + "<", html)
            if match:
                return int(match.group(1))
            time.sleep(0.3)
        raise AssertionError(f"{ticket_number} never reached the inbox")

    def page(self, handoff_id: int) -> str:
        return self.http.get(f"{self.web_url}/console/h/{handoff_id}", timeout=10).text

    def post(self, handoff_id: int, action: str, **data: Any) -> requests.Response:
        csrf = csrf_of(self.page(handoff_id))
        return self.http.post(f"{self.web_url}/console/h/{handoff_id}/{action}", data={"csrf": csrf, **data},
                              timeout=30, allow_redirects=False, headers={"HX-Request": "true"})

    def open_stream(self, handoff_id: int) -> None:
        """Opens the live view's SSE stream as the page does (turns after the page's last one) and reads it
        in a thread: (arrival perf_counter, event name, data) go to ``stream_events``."""
        match = re.search(r'data-stream="([^"]+)"', self.page(handoff_id))
        assert match, "the conversation page has no live stream"
        url = self.web_url + match.group(1).replace("&amp;", "&")
        resp = self.http.get(url, stream=True, timeout=(10, 60))
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")

        def read() -> None:
            name = "message"
            try:
                for line in resp.iter_lines(decode_unicode=True):
                    if self._stop.is_set():
                        break
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        self.stream_events.put((time.perf_counter(), name, json.loads(line[6:])))
                        name = "message"
            except requests.RequestException:  # the stack stopped under an open stream
                pass
            finally:
                resp.close()

        self._stream_thread = threading.Thread(target=read, daemon=True)
        self._stream_thread.start()

    def wait_turn(self, predicate: Any, timeout: float = 20) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, name, data = self.stream_events.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            if name == "turn" and predicate(data):
                return at, data
        raise AssertionError("the console never showed the expected turn")

    def close(self) -> None:
        self._stop.set()
        self.http.close()
