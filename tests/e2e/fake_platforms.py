"""A loopback stand-in for the Slack, Telegram, Twilio and Facebook APIs (the real ones are
unreachable here). It records every request the Rasa server's connectors send and answers the
way each platform does, so the connectors' own clients (slack_sdk, aiogram, twilio,
fbmessenger) parse the answers as they would in production.

Base URLs to give the channels: ``slack_url`` (``SLACK_API_URL``), ``telegram_url``,
``twilio_url`` and ``facebook_url``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TELEGRAM_BOT = {"id": 123456, "is_bot": True, "first_name": "Concierge", "username": "concierge_test_bot"}


@dataclass
class Call:
    """One request a connector sent to a platform."""

    platform: str
    method: str  # the API method: chat.postMessage, sendMessage, Messages.json, me/messages
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(raw)
        return data if isinstance(data, dict) else {"_": data}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    if content_type.startswith("multipart/form-data"):
        boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
        out: dict[str, Any] = {}
        for part in raw.split(b"--" + boundary):
            head, _, value = part.partition(b"\r\n\r\n")
            if b'name="' in head:
                name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
                out[name] = value.rstrip(b"\r\n").decode()
        return out
    return {"_raw": raw.decode("utf-8", "replace")}


class FakePlatforms:
    """Serves the four fake APIs on a free loopback port; ``calls`` is what they received."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-platforms", daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.slack_url = f"{self.url}/slack/api/"
        self.telegram_url = f"{self.url}/telegram"
        self.twilio_url = f"{self.url}/twilio"
        self.facebook_url = f"{self.url}/facebook"
        self._ids = 0

    def __enter__(self) -> FakePlatforms:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ---------------------------------------------------------- reading what arrived
    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, mark: int, predicate: Callable[[Call], bool] | None = None) -> list[Call]:
        with self._lock:
            calls = self.calls[mark:]
        return [c for c in calls if predicate is None or predicate(c)]

    def wait_for(self, predicate: Callable[[Call], bool], *, since: int = 0, timeout: float = 60.0) -> Call:
        """The first call after ``since`` matching ``predicate``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.since(since, predicate)
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(
            f"no matching platform call within {timeout}s; received: "
            + "; ".join(f"{c.platform} {c.method} {json.dumps(c.body)[:200]}" for c in self.since(since))
        )

    # ---------------------------------------------------------- answering like the platforms
    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        if call.platform == "slack":
            return 200, {"ok": True, "channel": call.body.get("channel"), "ts": f"1700000000.{self._next_id():06d}"}
        if call.platform == "telegram":
            return 200, {"ok": True, "result": self._telegram_result(call)}
        if call.platform == "twilio":
            sid = f"SM{self._next_id():032d}"
            return 201, {
                "sid": sid,
                "account_sid": call.path.split("/Accounts/")[1].split("/")[0],
                "to": call.body.get("To"),
                "from": call.body.get("From"),
                "body": call.body.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": call.path.replace(".json", f"/{sid}.json"),
            }
        if call.platform == "facebook":
            recipient = (call.body.get("recipient") or {}).get("id")
            if "sender_action" in call.body:
                return 200, {"recipient_id": recipient}
            return 200, {"recipient_id": recipient, "message_id": f"m_{self._next_id()}"}
        return 404, {"error": "unknown platform"}

    def _telegram_result(self, call: Call) -> Any:
        if call.method == "getMe":
            return TELEGRAM_BOT
        if call.method in ("setWebhook", "deleteWebhook", "answerCallbackQuery"):
            return True
        chat_id = call.body.get("chat_id")
        return {
            "message_id": self._next_id(),
            "from": TELEGRAM_BOT,
            "chat": {"id": int(chat_id) if str(chat_id).lstrip("-").isdigit() else chat_id, "type": "private"},
            "date": int(time.time()),
            "text": call.body.get("text", ""),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                segments = parts.path.strip("/").split("/")
                platform = segments[0] if segments else ""
                method = {
                    "slack": segments[-1],
                    "telegram": segments[-1],
                    "twilio": segments[-1],
                    "facebook": "/".join(segments[-2:]),
                }.get(platform, parts.path)
                call = Call(
                    platform,
                    method,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    _parse_body(self.headers.get("Content-Type", ""), raw),
                )
                with fake._lock:
                    fake.calls.append(call)
                status, payload = fake.answer(call)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # noqa: N815 - same answers for GET methods (getMe)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
