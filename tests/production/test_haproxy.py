"""The production topology behind a real HAProxy (deploy/haproxy/, scripts/run_production.sh's layout):
two Rasa replicas (PostgreSQL tracker store, Redis lock store, RabbitMQ broker), one action server, two
web apps and a CRM ingestor, every request of these tests through the load balancer.

- REST turns are balanced over both replicas, Rasa's HTTP API is not public, CORS lets only the
  configured origin through;
- the web apps (shop log-in, the customer token endpoint, the console) answer from both replicas;
- socket.io works over websocket and over long-polling (sticky cookie) with the customer's token;
- fault: ``kill -9`` of the replica that holds a widget's socket in the middle of two conversations:
  REST turns go on without an error, HAProxy's health check takes the replica out, the widget
  reconnects and keeps its conversation, and the PostgreSQL tracker store holds every turn sent,
  once and in order.

HAProxy comes from PATH or Debian's package unpacked by deploy/haproxy/install.sh; without it, or
without PostgreSQL/Redis/RabbitMQ, the tests skip, and fail under CI=true (tests/requirements.py).
One stack for the whole file; the fault test runs last because it kills a replica.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.stack import (
    HAPROXY_RENDER,
    PRODUCTION_API_TOKEN,
    PRODUCTION_ORIGIN,
    ROOT,
    Production,
    haproxy_binary,
    start_production,
)

pytestmark = pytest.mark.postgres

WAIT_S = 45.0  # bounded waits on a condition (a busy machine), never a fixed sleep
REST_TURNS = ["hello", "where is my order?", "how long does delivery take?", "what payment methods do you accept?"]
SOCKET_TURNS = ["hello", "what is your return policy?", "how long does delivery take?"]


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    tmp = tmp_path_factory.mktemp("haproxy")
    # the turns below are about transport, not understanding: a misread message must not hand the
    # conversation to a person half-way (the shipped trigger: two misunderstood messages in a row)
    shipped = (ROOT / "bot" / "content" / "handoff.yml").read_text()
    assert "  fallbacks: 2 " in shipped
    handoff = tmp / "handoff.yml"
    handoff.write_text(shipped.replace("  fallbacks: 2 ", "  fallbacks: 0 "))
    yield from start_production(tmp, extra_env={"CONCIERGE_HANDOFF_CONFIG": str(handoff)})


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return value


def turns(events: list[dict]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """(user text, what followed it up to the next user message) for each user event, in stored order."""
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    return [(events[s]["text"], [(e.get("event"), e.get("name")) for e in events[s + 1:end]])
            for s, end in zip(users, [*users[1:], len(events)][:len(users)], strict=True)]


def assert_conversation(prod: Production, sender: str, sent: list[str]) -> None:
    """Every message sent is stored once, in the order sent, each with its own reply and end of turn."""
    stored = turns(prod.tracker_events(sender))
    assert [text for text, _ in stored] == sent, f"{sender}: stored {[t for t, _ in stored]}, sent {sent}"
    for text, after in stored:
        assert ("bot", None) in after, f"{text!r} got no reply: {after}"
        assert after[-1] == ("action", "action_listen"), f"turn of {text!r} did not end: {after}"


def turn_ended(prod: Production, sender: str, users: int) -> bool:
    """The tracker holds ``users`` user messages and the last one's turn has ended (action_listen)."""
    stored = turns(prod.tracker_events(sender))
    return len(stored) == users and bool(stored[-1][1]) and stored[-1][1][-1] == ("action", "action_listen")


class Rest:
    """A REST customer through the load balancer, keeping its session credential as a real client does."""

    def __init__(self, prod: Production) -> None:
        self.prod, self.sender, self.session = prod, f"rest-{uuid.uuid4().hex[:10]}", ""
        self.sent: list[str] = []

    def say(self, text: str) -> tuple[list[dict], str]:
        headers = {"X-Concierge-Session": self.session} if self.session else {}
        resp = requests.post(f"{self.prod.url}/webhooks/rest/webhook", json={"sender": self.sender, "message": text},
                             headers=headers, timeout=120)
        assert resp.status_code == 200, f"{text!r}: {resp.status_code} {resp.text[:300]}"
        self.session = resp.headers.get("X-Concierge-Session", self.session)
        self.sent.append(text)
        return resp.json(), resp.headers["X-Served-By"]


# ------------------------------------------------------------------ the configuration itself
def test_reference_config_is_the_generators_output_and_valid() -> None:
    """deploy/haproxy/haproxy.cfg is what render_config.py writes for the default topology, and HAProxy
    accepts it (``haproxy -c``)."""
    rendered = subprocess.run([sys.executable, str(HAPROXY_RENDER)], capture_output=True, text=True, check=True)
    reference = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
    assert reference.read_text() == rendered.stdout, "run deploy/haproxy/render_config.py > deploy/haproxy/haproxy.cfg"
    check = subprocess.run([haproxy_binary(), "-c", "-f", str(reference)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for backend, health in (("rasa_socketio", "GET /"), ("web", "GET /healthz"), ("actions", "GET /health")):
        block = rendered.stdout.split(f"\nbackend {backend}\n", 1)[1].split("\nbackend ", 1)[0]
        assert f"option httpchk {health}" in block and " check" in block, backend


# ------------------------------------------------------------------ REST, CORS, the HTTP API
def test_rest_turns_are_balanced_over_both_replicas(prod: Production) -> None:
    customer = Rest(prod)
    served = []
    for text in REST_TURNS:
        replies, by = customer.say(text)
        assert replies and all(r.get("recipient_id") == customer.sender for r in replies), replies
        served.append(by)
    assert set(served) == {"rasa0", "rasa1"}, served  # round robin: both replicas answered this conversation
    assert_conversation(prod, customer.sender, customer.sent)


def test_rasa_http_api_is_not_public_and_cors_admits_only_the_shop(prod: Production) -> None:
    # the API exists (localhost frontend, with the token) but the public frontend sends its paths to the web app
    inside = requests.get(f"{prod.rasa_api_url}/status", params={"token": PRODUCTION_API_TOKEN}, timeout=30)
    assert inside.status_code == 200 and inside.headers["X-Served-By"].startswith("rasa"), inside.text
    outside = requests.get(f"{prod.url}/status", params={"token": PRODUCTION_API_TOKEN}, timeout=30)
    assert outside.status_code == 404 and outside.headers["X-Served-By"].startswith("web")
    tracker = requests.get(f"{prod.url}/conversations/x/tracker", params={"token": PRODUCTION_API_TOKEN}, timeout=30)
    assert tracker.status_code == 404 and tracker.headers["X-Served-By"].startswith("web")

    def preflight(origin: str) -> requests.Response:
        return requests.options(f"{prod.url}/webhooks/rest/webhook", timeout=30, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})

    assert preflight(PRODUCTION_ORIGIN).headers.get("Access-Control-Allow-Origin") == PRODUCTION_ORIGIN
    assert "Access-Control-Allow-Origin" not in preflight("http://evil.example").headers


# ------------------------------------------------------------------ the web apps
def signed_in_shopper(prod: Production) -> requests.Session:
    """A browser session signed in as the first demo customer through the load balancer."""
    from bot.seed import DEMO_CUSTOMERS

    browser = requests.Session()
    page = browser.get(f"{prod.url}/login", timeout=30)
    assert page.status_code == 200, page.text[:300]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, "no CSRF token on the log-in page"
    done = browser.post(f"{prod.url}/login", data={"csrf": csrf.group(1), "email": DEMO_CUSTOMERS[0].email,
                                                   "next": "/"}, allow_redirects=False, timeout=30)
    assert done.status_code == 303, done.text[:300]
    return browser


def test_token_endpoint_and_console_answer_from_both_web_apps(prod: Production) -> None:
    browser = signed_in_shopper(prod)  # the session cookie one web app signed is honoured by the other
    tokens = [browser.get(f"{prod.url}/api/chat-token", timeout=30) for _ in range(4)]
    assert [t.status_code for t in tokens] == [200] * 4, [t.text for t in tokens]
    assert {t.headers["X-Served-By"] for t in tokens} == {"web0", "web1"}
    assert all(t.json()["token"] for t in tokens)
    assert requests.get(f"{prod.url}/api/chat-token", timeout=30).status_code == 401  # anonymous

    consoles = [requests.get(f"{prod.url}/console/login", timeout=30) for _ in range(2)]
    assert [c.status_code for c in consoles] == [200, 200]
    assert {c.headers["X-Served-By"] for c in consoles} == {"web0", "web1"}
    dashboard = requests.get(f"{prod.url}/console/dashboard", headers={"Accept": "text/html"},
                             allow_redirects=False, timeout=30)
    assert dashboard.status_code == 303 and dashboard.headers["Location"].endswith("/console/login")


# ------------------------------------------------------------------ socket.io through the load balancer
class Widget:
    """A socket.io customer (python-socketio, as rasa-webchat talks) through the load balancer, with a
    cookie jar that keeps HAProxy's sticky cookie (aiohttp's default jar ignores cookies of IP hosts)."""

    def __init__(self, prod: Production, transport: str, token: str | None = None,
                 reconnection: bool = False) -> None:
        self.prod, self.transport, self.token, self.reconnection = prod, transport, token, reconnection
        self.events: asyncio.Queue = asyncio.Queue()
        self.session_id: str | None = None
        self.sent: list[str] = []
        self.connects = 0

    async def __aenter__(self) -> Widget:
        import aiohttp
        import socketio

        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.client = socketio.AsyncClient(reconnection=self.reconnection, reconnection_delay=0.2,
                                           reconnection_delay_max=1, http_session=self.http)
        self.client.on("bot_uttered", lambda data: self.events.put_nowait(("bot_uttered", data)))
        self.client.on("session_confirm", lambda data: self.events.put_nowait(("session_confirm", data)))
        self.client.on("connect", self._connected)
        await self.client.connect(self.prod.url, transports=[self.transport], wait_timeout=30)
        return self

    async def _connected(self) -> None:
        self.connects += 1
        # as rasa-webchat on every (re)connection: ask for the stored session, or a new one
        await self.client.emit("session_request", {"session_id": self.session_id})

    async def __aexit__(self, *_: object) -> None:
        # abort: a polite long-polling disconnect waits for the pending poll (up to the 25 s ping interval)
        await self.client.eio.disconnect(abort=True)
        await self.http.close()

    def replica(self) -> str:
        """The replica HAProxy's cookie pins this client to."""
        cookies = {c.key: c.value for c in self.http.cookie_jar}
        return cookies["CONCIERGE_RASA"]

    async def confirmed(self) -> str:
        while True:
            name, data = await asyncio.wait_for(self.events.get(), WAIT_S)
            if name == "session_confirm":
                assert self.session_id in (None, data), "the reconnected widget got another conversation"
                self.session_id = data
                return data

    async def say(self, text: str) -> list[str]:
        """Sends one message and returns the turn's replies (complete once the tracker shows the turn's end)."""
        custom = {"customer_token": self.token} if self.token else {}
        users = len(self.sent)
        await self.client.emit("user_uttered", {"message": text, "session_id": self.session_id, "customData": custom})
        self.sent.append(text)
        await asyncio.to_thread(wait_until, lambda: turn_ended(self.prod, self.session_id, users + 1),
                                f"the turn of {text!r} ended")
        # the turn's bot events are stored; each reaches the widget as at least one message
        bots = sum(kind == "bot" for kind, _ in turns(self.prod.tracker_events(self.session_id))[-1][1])
        replies = []
        while len(replies) < bots or not self.events.empty():
            name, data = await asyncio.wait_for(self.events.get(), WAIT_S)
            if name == "bot_uttered":
                replies.append(data.get("text") if isinstance(data, dict) else data)
        return replies


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socketio_conversation_through_the_load_balancer(prod: Production, transport: str) -> None:
    """A signed-in customer's widget over each transport; long-polling sends every request separately,
    so it works with two replicas only because HAProxy's cookie keeps them on one."""
    token = signed_in_shopper(prod).get(f"{prod.url}/api/chat-token", timeout=30).json()["token"]
    async with Widget(prod, transport, token) as widget:
        await widget.confirmed()
        assert widget.replica() in ("rasa0", "rasa1")
        for text in SOCKET_TURNS:
            assert await widget.say(text), f"no reply to {text!r}"
        assert widget.client.transport() == transport
        assert_conversation(prod, widget.session_id, widget.sent)


# ------------------------------------------------------------------ fault: kill -9 a replica mid-conversation
async def test_killed_replica_is_taken_out_and_conversations_go_on(prod: Production) -> None:
    """Two conversations under way (REST, and a websocket widget); the widget's replica is killed with
    SIGKILL between turns. REST turns go on at once with no error (HAProxy sends a refused connection
    to the other replica), the health check marks the replica DOWN, the widget reconnects through
    HAProxy to the survivor with its session id, and both conversations are complete in PostgreSQL."""
    rest = Rest(prod)
    async with Widget(prod, "websocket", reconnection=True) as widget:
        await widget.confirmed()
        victim = widget.replica()
        survivor = next(name for name in prod.rasa if name != victim)
        for text in ("hello", "where is my order?"):
            await asyncio.to_thread(rest.say, text)
            assert await widget.say(text)

        prod.rasa[victim].send_signal(signal.SIGKILL)
        prod.rasa[victim].wait(timeout=30)
        killed_at = time.monotonic()

        after = [await asyncio.to_thread(rest.say, t) for t in ("how long does delivery take?", "thanks")]
        assert [by for _, by in after] == [survivor, survivor] and all(replies for replies, _ in after)
        await asyncio.to_thread(prod.wait_status, {("rasa_socketio", victim): "DOWN",
                                                   ("rasa_webhooks", victim): "DOWN",
                                                   ("rasa_socketio", survivor): "UP"}, WAIT_S)
        down_s = time.monotonic() - killed_at

        await asyncio.to_thread(wait_until, lambda: widget.connects >= 2, "the widget reconnected")
        await widget.confirmed()  # the same conversation, now on the survivor
        assert widget.replica() == survivor
        for text in ("what is your return policy?", "thanks"):
            assert await widget.say(text), f"no reply to {text!r} after the fault"
        rest.say("what payment methods do you accept?")
        print(f"\nkill -9 {victim}: HAProxy marked it DOWN after {down_s:.1f} s; "
              f"{len(rest.sent)} REST and {len(widget.sent)} socket.io turns, none lost")

    assert_conversation(prod, rest.sender, rest.sent)
    assert_conversation(prod, widget.session_id, widget.sent)
