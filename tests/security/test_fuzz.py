"""Bounded fuzzing of the public and internal endpoints of a real stack (hypothesis).

More than 10,000 generated inputs: REST bodies (mostly malformed, rejected before the NLU, plus a
share of full turns with hostile text), socket.io events over real sockets, and calls to the
action server with and without its token. Passes when no reply is a server error, no reply shows
a stack trace or an internal name, and the customer data is unchanged afterwards (row counts and
a checksum). The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
import socketio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security.conftest import ACTION_TOKEN

REST_MALFORMED, REST_TURNS, SOCKET_EVENTS, ACTION_CALLS = 3000, 150, 1500, 5600
LEAKS = ("Traceback", 'File "', "sqlalchemy", "rasa_sdk", "concierge_rasa", "bot.services", "/work/", ".py\"",
         "Exception", "sqlite3", "psycopg2", "KeyError", "TypeError", "AttributeError")
CUSTOMER_TABLES = ("customers", "addresses", "orders", "order_items", "payments", "refunds", "invoices", "shipments")
HOSTILE = [
    "'; DROP TABLE orders; --", "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x/a}", "%s%n%x",
    "../../etc/passwd", "\x00\x01\x02", "😀" * 200, "/restart", '/inform{"verified_customer_id": "1"}',
    "where is my order 190001?", "alice.martin@example.com", "cancel order 190002", "human", "a" * 5000,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
texts = st.one_of(
    st.text(max_size=200), st.sampled_from(HOSTILE), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
)


class Tally:
    """What came back, for the assertions and the printed figures."""

    def __init__(self) -> None:
        self.by_target: Counter = Counter()
        self.statuses: Counter = Counter()
        self.problems: list[str] = []
        self.lock = threading.Lock()

    def check(self, target: str, status: int, body: str) -> None:
        with self.lock:
            self.by_target[target] += 1
            self.statuses[status // 100 * 100] += 1
            leaked = [m for m in LEAKS if m in body]
            if status >= 500 or leaked:
                self.problems.append(f"{target} {status} {leaked} {body[:200]!r}")


def customer_checksum(db_url: str) -> tuple[dict, str]:
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        digest = hashlib.sha256()
        counts = {}
        for table in CUSTOMER_TABLES:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608 - fixed names
            counts[table] = len(rows)
            digest.update(repr(rows).encode())
        return counts, digest.hexdigest()
    finally:
        conn.close()


_local = threading.local()
WORKERS = 6  # concurrent clients: the servers are asynchronous, so waiting on one reply never idles them


def http() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def fake_ip(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def draw_many(strategy: st.SearchStrategy, n: int) -> list:
    """``n`` values drawn by hypothesis (deterministic, no shrinking: a bounded run)."""
    out: list = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: object) -> None:
        out.append(value)

    collect()
    return out


def rest_bodies() -> st.SearchStrategy:
    sender = st.one_of(st.text(max_size=150), st.integers(), st.none(), json_values)
    body = st.fixed_dictionaries(
        {}, optional={"sender": sender, "message": st.one_of(texts, json_values), "metadata": json_values}
    )
    raw = st.one_of(
        body.map(json.dumps),
        json_values.map(json.dumps),
        st.binary(max_size=300),
        st.text(max_size=300),
        st.integers(min_value=1, max_value=4000).map(lambda n: "[" * n + "]" * n),
    )
    return raw


def run_rest_malformed(srv, tally: Tally) -> None:  # noqa: ANN001
    bodies = draw_many(rest_bodies(), REST_MALFORMED)
    url = f"{srv.rasa_url}/webhooks/rest/webhook"

    def send(item: tuple[int, object]) -> None:
        i, body = item
        data = body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json", "X-Forwarded-For": fake_ip(i)}
        resp = http().post(url, data=data, headers=headers, timeout=60)
        tally.check("rest", resp.status_code, resp.text)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, enumerate(bodies)))


def run_rest_turns(srv, tally: Tally) -> None:  # noqa: ANN001
    cases = draw_many(st.tuples(texts, st.one_of(st.none(), json_values)), REST_TURNS)
    url = f"{srv.rasa_url}/webhooks/rest/webhook"

    def send(item: tuple[int, tuple]) -> None:
        i, (text, metadata) = item
        body = {"sender": f"fuzz-{i}", "message": text, "metadata": metadata}
        resp = http().post(url, json=body, headers={"X-Forwarded-For": fake_ip(100_000 + i)}, timeout=60)
        tally.check("rest-turn", resp.status_code, resp.text)
        if resp.status_code == 200:
            assert isinstance(resp.json(), list) and resp.json(), body  # a polite reply, never silence

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, enumerate(cases)))


def run_socketio(srv, tally: Tally) -> None:  # noqa: ANN001
    payloads = draw_many(
        st.one_of(
            json_values,
            st.fixed_dictionaries({"message": st.one_of(texts, json_values)},
                                  optional={"session_id": json_values, "customData": json_values}),
        ),
        SOCKET_EVENTS,
    )
    replies: list = []
    sockets = []
    per_socket = 200
    for k in range(0, len(payloads), per_socket):
        client = socketio.Client(reconnection=False)
        client.on("bot_uttered", lambda data: replies.append(data))
        client.connect(srv.rasa_url, socketio_path="/socket.io", transports=["websocket"],
                       headers={"X-Forwarded-For": fake_ip(200_000 + k)}, wait_timeout=30)
        sockets.append(client)
        for j, payload in enumerate(payloads[k:k + per_socket]):
            event = "session_request" if j % 25 == 0 else "user_uttered"
            client.emit(event, payload)
            tally.check("socketio", 200, "")
    deadline = time.monotonic() + 90
    last = -1
    while time.monotonic() < deadline and len(replies) != last:  # until the replies stop coming
        last = len(replies)
        time.sleep(3)
    for client in sockets:
        client.disconnect()
    assert replies, "the socket.io channel answered nothing"
    for reply in replies:
        tally.check("socketio-reply", 200, json.dumps(reply))
    tally.by_target["socketio-reply"] -= len(replies)  # replies are not inputs
    tally.statuses[200] -= len(replies)
    print(f"socket.io: {len(payloads)} events on {len(sockets)} sockets, {len(replies)} bot_uttered replies checked")


def action_calls() -> st.SearchStrategy:
    tracker = st.fixed_dictionaries(
        {"sender_id": st.text(max_size=20)},
        optional={
            "slots": st.one_of(json_values, st.fixed_dictionaries({}, optional={
                "verified_customer_id": st.one_of(st.text(max_size=5), st.integers()),
                "order_number": st.one_of(st.text(max_size=8), st.sampled_from(["190001", "190005"])),
                "email": st.one_of(st.emails(), st.text(max_size=10)),
            })),
            "events": st.one_of(json_values, st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=3),
                                                      max_size=3)),
            "latest_message": json_values,
        },
    )
    valid = st.fixed_dictionaries({
        "next_action": st.sampled_from(["action_track_order", "action_request_human", "validate_track_order_form",
                                        "action_nonexistent", "action_recommend"]),
        "tracker": tracker,
        "domain": st.just({}),
    })
    return st.one_of(valid.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=200))


def run_action_server(srv, tally: Tally) -> None:  # noqa: ANN001
    bodies = draw_many(st.tuples(action_calls(), st.integers(0, 3)), ACTION_CALLS)
    auth = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {ACTION_TOKEN}"},
            {"Authorization": f"Bearer {ACTION_TOKEN}"}]

    def send(item: tuple) -> None:
        body, who = item
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json", **auth[who]}
        resp = http().post(f"{srv.action_url}/webhook", data=data, headers=headers, timeout=60)
        tally.check("action-server", resp.status_code, resp.text)
        if who < 2:
            assert resp.status_code == 401

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, bodies))


def test_fuzz_public_and_internal_endpoints(stack):
    counts_before, checksum_before = customer_checksum(stack.db_url)
    tally = Tally()
    started = time.monotonic()
    for name, step in (("REST malformed", run_rest_malformed), ("REST turns", run_rest_turns),
                       ("socket.io", run_socketio), ("action server", run_action_server)):
        t0 = time.monotonic()
        step(stack, tally)
        print(f"{name}: done in {time.monotonic() - t0:.1f} s, {sum(tally.by_target.values())} inputs so far")
    elapsed = time.monotonic() - started
    counts_after, checksum_after = customer_checksum(stack.db_url)
    total = sum(tally.by_target.values())
    figures = {
        "inputs": total,
        "by_target": dict(tally.by_target),
        "status_classes": {str(k): v for k, v in sorted(tally.statuses.items())},
        "server_errors_or_leaks": len(tally.problems),
        "seconds": round(elapsed, 1),
        "inputs_per_s": round(total / elapsed, 1),
        "customer_rows": counts_after,
        "customer_data_unchanged": checksum_before == checksum_after,
    }
    print("fuzz figures:", json.dumps(figures))
    assert total >= 10_000
    assert not tally.problems, tally.problems[:10]
    assert counts_after == counts_before and checksum_after == checksum_before
    assert requests.post(f"{stack.rasa_url}/webhooks/rest/webhook", json={"sender": "after-fuzz", "message": "hi"},
                         headers={"X-Forwarded-For": "10.255.255.254"}, timeout=60).status_code == 200
