"""Locust load test of the production profile through HAProxy (docs/production.md). Not in the test suite.

Setup (once; Locust's gevent stays out of the project's environments):

    python3.11 -m venv var/tools/locust
    var/tools/locust/bin/pip install "locust==2.47.0" "python-socketio[client]==5.18.1" psycopg2-binary

Run against scripts/run_production.sh (its environment needs CONCIERGE_RATE_CLIENT_PER_MIN=0 and
CONCIERGE_RATE_SENDER_PER_MIN=0, or every user shares one client address' limit):

    var/tools/locust/bin/locust -f bench/locust_production.py --host http://127.0.0.1:8080 \\
        --headless -u 10 -r 2 -t 60s --csv var/bench/locust_production --only-summary

Users: ``RestCustomer`` (REST webhook, like an app or a messaging bridge) and ``WidgetCustomer``
(socket.io over websocket through the sticky backend, like rasa-webchat), 3:1. Each plays whole
conversations from ``CONVERSATIONS`` (tracking, delivery, a refund, recommendations, payments; the
last one asks for a person) under a fresh sender id, then starts another. A REST turn's time is the
HTTP round trip; a socket.io turn's is the time to its first ``bot_uttered``. A turn fails on a
non-200, a turn without any reply before the conversation was handed to a person, the channels'
apology for a turn the server could not finish (concierge_rasa/channels/guard.py APOLOGY: an error the
customer sees although the HTTP status is 200), or no reply within TURN_TIMEOUT_S. After a non-200 or
an apology the customer gives up that conversation and starts another.

With ``CONCIERGE_LOCUST_TRACKER_URL`` (a libpq URL of the tracker store, e.g.
``postgresql://root@127.0.0.1:5432/test``) the end of the run compares every conversation's user
events in the tracker store with the messages sent: lost, duplicated or reordered turns are printed
and make Locust exit non-zero.
"""

from __future__ import annotations

import os
import queue
import random
import time
import uuid
from typing import Any

from locust import HttpUser, between, events, task

TURN_TIMEOUT_S = 60.0
CHECK_WAIT_S = 30.0
CONVERSATIONS: list[list[str]] = [
    ["hello", "where is my order?", "how long does delivery take?", "thanks"],
    ["hi", "I want a refund", "what is your return policy?", "thanks"],
    ["recommend me something", "what payment methods do you accept?", "thanks"],
    ["hello", "can I change my delivery address?", "I want to talk to a person"],
]
HANDOFF = "I want to talk to a person"
APOLOGY_START = "Sorry, something went wrong on my side"  # concierge_rasa/channels/guard.py APOLOGY
SENT: dict[str, list[str]] = {}  # sender -> the messages sent, in order (checked at the end)
IN_FLIGHT: set[str] = set()  # senders whose last message had not been answered when the run stopped


def _apology(messages: Any) -> bool:
    """Whether a reply is the channels' apology for a failed turn (one message dict or a list of them)."""
    if isinstance(messages, dict):
        messages = [messages]
    return isinstance(messages, list) and any(
        isinstance(m, dict) and str(m.get("text", "")).startswith(APOLOGY_START) for m in messages)


def _fire(request_type: str, name: str, started: float, length: int, exc: Exception | None) -> None:
    events.request.fire(request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
                        response_length=length, exception=exc, context={})


class RestCustomer(HttpUser):
    """A customer on the REST channel: one POST per turn, the reply in the response."""

    weight = 3
    wait_time = between(0.5, 2.0)

    @task
    def conversation(self) -> None:
        sender = f"locust-rest-{uuid.uuid4().hex[:12]}"
        session = ""
        for text in random.choice(CONVERSATIONS):
            headers = {"X-Concierge-Session": session} if session else {}
            SENT.setdefault(sender, []).append(text)  # before sending: a run may stop while a turn is in flight
            IN_FLIGHT.add(sender)
            with self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text},
                                  headers=headers, name="rest turn", catch_response=True,
                                  timeout=TURN_TIMEOUT_S) as resp:
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}")
                    return
                if _apology(resp.json()):  # the turn failed on the server: it may not be stored
                    resp.failure("apology (the server could not finish the turn)")
                    return
                IN_FLIGHT.discard(sender)
                session = resp.headers.get("X-Concierge-Session", session)
                if not resp.json() and text != HANDOFF:
                    resp.failure("no reply")
            self.wait()


class WidgetCustomer(HttpUser):
    """A customer on the website widget: socket.io over websocket, through HAProxy's sticky backend."""

    weight = 1
    wait_time = between(0.5, 2.0)

    @task
    def conversation(self) -> None:
        import socketio

        replies: queue.Queue = queue.Queue()
        client = socketio.Client(reconnection=False)
        client.on("bot_uttered", lambda data: replies.put(("bot", data)))
        client.on("session_confirm", lambda data: replies.put(("session", data)))
        started = time.perf_counter()
        try:
            client.connect(self.host, transports=["websocket"], wait_timeout=30)
            client.emit("session_request", {"session_id": None})
            kind, session_id = replies.get(timeout=TURN_TIMEOUT_S)
            assert kind == "session", kind
        except Exception as exc:  # noqa: BLE001 - reported to Locust as a failed connection
            _fire("socketio", "connect", started, 0, exc)
            client.disconnect()
            return
        _fire("socketio", "connect", started, 0, None)
        try:
            for text in random.choice(CONVERSATIONS):
                started = time.perf_counter()
                SENT.setdefault(session_id, []).append(text)
                IN_FLIGHT.add(session_id)
                exc: Exception | None = None
                got: tuple[str, Any] = ("", "")
                try:
                    client.emit("user_uttered", {"message": text, "session_id": session_id})
                    while (got := replies.get(timeout=TURN_TIMEOUT_S))[0] != "bot":
                        pass
                except queue.Empty:
                    exc = None if text == HANDOFF else TimeoutError(f"no reply in {TURN_TIMEOUT_S}s")
                except Exception as lost:  # noqa: BLE001 - the socket died (its replica was killed): a failed turn
                    _fire("socketio", "socket.io turn", started, 0, lost)
                    return
                if exc is None and _apology(got[1]):  # the turn failed on the server: it may not be stored
                    _fire("socketio", "socket.io turn", started, 0,
                          RuntimeError("apology (the server could not finish the turn)"))
                    return
                IN_FLIGHT.discard(session_id)
                _fire("socketio", "socket.io turn", started, len(str(got[1])) if exc is None else 0, exc)
                self.wait()
                while not replies.empty():  # the rest of the turn's messages
                    replies.get_nowait()
        finally:
            client.disconnect()


def _tracker_users(url: str, senders: list[str]) -> dict[str, list[str]]:
    import json

    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT sender_id, data FROM events WHERE sender_id = ANY(%s) AND type_name = 'user' ORDER BY id",
                    (senders,))
        stored: dict[str, list[str]] = {}
        for sender, data in cur.fetchall():
            stored.setdefault(sender, []).append(json.loads(data).get("text"))
    return stored


@events.test_stop.add_listener
def check_tracker(environment: Any, **_: Any) -> None:
    """Lost, duplicated or reordered user turns in the tracker store (with CONCIERGE_LOCUST_TRACKER_URL)."""
    url = os.environ.get("CONCIERGE_LOCUST_TRACKER_URL", "")
    if not url or not SENT:
        return
    deadline = time.monotonic() + CHECK_WAIT_S  # turns still in flight when the run stopped end meanwhile
    while True:
        stored = _tracker_users(url, list(SENT))
        # a message in flight when the run stopped may not have left the client: stored without it is fine
        bad = {s: (sent, stored.get(s, [])) for s, sent in SENT.items()
               if stored.get(s, []) != sent and not (s in IN_FLIGHT and stored.get(s, []) == sent[:-1])}
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    turns = sum(len(v) for v in SENT.values())
    print(f"tracker check: {len(SENT)} conversations, {turns} turns sent ({len(IN_FLIGHT)} in flight at the stop), "
          f"{len(bad)} conversations lost, duplicated or reordered a turn")
    for sender, (sent, got) in list(bad.items())[:10]:
        print(f"  {sender}: sent {sent}, stored {got}")
    if bad:
        environment.process_exit_code = 1
