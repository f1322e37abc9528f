"""Rasa events -> what the CRM keeps: turns, customer hints, and the outcome rules (in one place).

Why a pure module: the same event arrives through the SQL broker or RabbitMQ, and may be
replayed; everything here is a function of the event alone, so both sources and every replay
give the same record. The ingestor (``bot.crm.ingestor``) applies these to the database.

Event shapes are Rasa 3.6's ``Event.as_dict()`` plus ``sender_id`` (what its brokers publish):
``{"sender_id", "event": "user", "timestamp", "text", "parse_data": {...}, "input_channel", "metadata"}``,
``{"event": "bot", "text", "data", "metadata"}``, ``{"event": "action", "name", "policy", "confidence"}``,
``{"event": "slot", "name", "value"}``, ``session_started``, ``action_execution_rejected``,
``pause``, ``resume``, ``restart``, and others this module ignores.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.intents import FALLBACK_INTENTS

MAX_TEXT = 4000
MAX_ENTITIES_JSON = 4000

# ---------------------------------------------------------------- outcome rules (the only place)
# A task action ran to its end: the customer's request was answered or done.
TASK_ACTIONS = frozenset(
    {
        "action_track_order",
        "action_track_refund",
        "action_show_invoice",
        "action_cancel_order",
        "action_submit_refund",
        "action_change_address",
        "action_change_email",
        "action_newsletter",
        "action_answer_faq",
        "action_recommend",
        "action_product_question",
    }
)
# A human was asked to take over (a ticket or a handoff).
ESCALATION_ACTIONS = frozenset({"action_request_human", "action_log_complaint", "action_handoff"})
FALLBACK_ACTIONS = frozenset({"action_fallback", "action_default_fallback", "action_two_stage_fallback"})
# any reply announcing a ticket means a human takes over; no \b: a Han character before it ("工单号为TK-…")
# is a word character to re, so \b found no boundary there and Chinese escalations went uncounted
TICKET_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_-])TK-\d{6}(?!\d)")
# events that are turns of their own (besides user/bot/action)
LIFECYCLE_EVENTS = frozenset({"session_started", "action_execution_rejected", "pause", "resume", "restart"})
IGNORED_ACTIONS = frozenset({"action_listen"})
CUSTOMER_SLOT = "verified_customer_id"
CLAIMS_KEY = "concierge"  # concierge_rasa.security.CLAIMS_KEY: what the channel vouches for, signed
CSAT_RATING_SLOTS = frozenset({"csat_rating"})
CSAT_COMMENT_SLOTS = frozenset({"csat_comment"})
ESCALATED_SLOT = "escalated"
RESOLVED_SLOT = "csat_due"  # set by the action that resolved a request (CSAT flow)


def outcome(*, escalated: bool, last_fallback: bool, tasks_completed: int, closed: bool) -> str:
    """The conversation's outcome: open while it lasts; at its end escalated > fallback > resolved > abandoned."""
    if not closed:
        return "open"
    if escalated:
        return "escalated"
    if last_fallback:
        return "fallback"
    if tasks_completed > 0:
        return "resolved"
    return "abandoned"


# ---------------------------------------------------------------- parsing
@dataclass(frozen=True)
class RasaEvent:
    """One broker message, checked: a key for dedupe, who, what, when, and the raw dict."""

    key: str
    sender_id: str
    type: str
    at: datetime  # naive UTC (the project's convention)
    data: dict[str, Any]


class BadEvent(ValueError):
    """A broker message that is not a Rasa event (kept out of the CRM, logged by the ingestor)."""


def event_key(event: dict[str, Any]) -> str:
    """sha256 of the canonical JSON: the same event from either source, or replayed, has one key."""
    blob = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_event(raw: bytes | str | dict[str, Any]) -> RasaEvent:
    """Validates a broker message; raises :class:`BadEvent` for anything that is not a Rasa event."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadEvent("not UTF-8") from exc
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise BadEvent("not JSON") from exc
    if not isinstance(raw, dict):
        raise BadEvent("not a JSON object")
    sender = raw.get("sender_id")
    kind = raw.get("event")
    if not isinstance(sender, str) or not sender or not isinstance(kind, str) or not kind:
        raise BadEvent("missing sender_id or event")
    ts = raw.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0 or ts > 4e9:
        raise BadEvent("missing or impossible timestamp")
    at = datetime.fromtimestamp(float(ts), tz=timezone.utc).replace(tzinfo=None)
    return RasaEvent(event_key(raw), sender[:128], kind[:40], at, raw)


# ---------------------------------------------------------------- turns
@dataclass(frozen=True)
class TurnRecord:
    """A row of ``turns`` before redaction (``text`` is what Rasa saw)."""

    role: str  # user | bot | action | event
    event: str
    text: str = ""
    intent: str | None = None
    confidence: float | None = None
    entities: str | None = None  # JSON list of {"entity", "value", "start", "end"}
    sentiment_label: str | None = None
    sentiment_probability: float | None = None
    action_name: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _str(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def sentiment_of(parse_data: Any) -> tuple[str | None, float | None]:
    """(label, calibrated probability of that label) from the NLU's ``parse_data["sentiment"]``.

    The sentiment component puts ``{"label", "confidence", "probabilities": {label: p}}`` there;
    the probability of the chosen label wins over ``confidence`` when both are present.
    """
    if not isinstance(parse_data, dict) or not isinstance(parse_data.get("sentiment"), dict):
        return None, None
    sentiment = parse_data["sentiment"]
    label = _str(sentiment.get("label"), 20)
    if label is None:
        return None, None
    probs = sentiment.get("probabilities")
    prob = _number(probs.get(label)) if isinstance(probs, dict) else None
    if prob is None:
        prob = _number(sentiment.get("confidence"))
    return label, prob


def _entities(parse_data: dict[str, Any]) -> str | None:
    entities = parse_data.get("entities")
    if not isinstance(entities, list) or not entities:
        return None
    kept = [
        {k: e.get(k) for k in ("entity", "value", "start", "end") if k in e}
        for e in entities[:50]
        if isinstance(e, dict) and isinstance(e.get("entity"), str)
    ]
    if not kept:
        return None
    blob = json.dumps(kept, ensure_ascii=False, default=str)
    return blob if len(blob) <= MAX_ENTITIES_JSON else None


def turn_of(event: RasaEvent) -> TurnRecord | None:
    """The turn an event makes, or None for bookkeeping events (slots, action_listen, loops...)."""
    data, kind = event.data, event.type
    if kind == "user":
        parse_data = data.get("parse_data") if isinstance(data.get("parse_data"), dict) else {}
        intent = parse_data.get("intent") if isinstance(parse_data.get("intent"), dict) else {}
        label, prob = sentiment_of(parse_data)
        return TurnRecord(
            role="user",
            event=kind,
            text=(data.get("text") if isinstance(data.get("text"), str) else "")[:MAX_TEXT],
            intent=_str(intent.get("name"), 80),
            confidence=_number(intent.get("confidence")),
            entities=_entities(parse_data),
            sentiment_label=label,
            sentiment_probability=prob,
        )
    if kind == "bot":
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        return TurnRecord(
            role="bot",
            event=kind,
            text=(data.get("text") if isinstance(data.get("text"), str) else "")[:MAX_TEXT],
            action_name=_str(metadata.get("utter_action"), 80),
        )
    if kind == "action":
        name = _str(data.get("name"), 80)
        if name is None or name in IGNORED_ACTIONS:
            return None
        return TurnRecord(role="action", event=kind, action_name=name, confidence=_number(data.get("confidence")))
    if kind in LIFECYCLE_EVENTS:
        return TurnRecord(role="event", event=kind, action_name=_str(data.get("name"), 80))
    return None


# ---------------------------------------------------------------- effects on the conversation
@dataclass(frozen=True)
class Effects:
    """What an event changes on its conversation (None = leaves it as it is)."""

    starts: bool = False  # a new Rasa session: a new conversation
    ends: bool = False  # restart: the conversation is over
    channel: str | None = None
    customer_id: int | None = None  # verified in chat (slot) ...
    claims: dict[str, Any] | None = None  # ... or the channel's signed claims (a website token it checked)
    customer_token: str | None = None  # ... or a website token left on the message (rasa shell, tests)
    task_completed: bool = False
    resolved: bool = False  # the CSAT flow says a request was resolved (counts once with the task)
    escalated: bool = False
    fallback: bool | None = None  # True: this turn fell back; False: understood again
    user_turn: bool = False
    csat_rating: int | None = None
    csat_comment: str | None = None


def _customer_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        return int(value.strip()) or None
    return None


def _rating(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([1-5])(?:\s*(?:/\s*5|stars?|out of 5))?\s*\.?\s*", value, re.IGNORECASE)
        value = int(match.group(1)) if match else None
    return value if isinstance(value, int) and 1 <= value <= 5 else None


def effects_of(event: RasaEvent) -> Effects:
    """How an event moves its conversation: boundaries, customer, outcome flags, CSAT."""
    data, kind = event.data, event.type
    if kind == "session_started":
        return Effects(starts=True)
    if kind == "restart":
        return Effects(ends=True)
    if kind == "user":
        parse_data = data.get("parse_data") if isinstance(data.get("parse_data"), dict) else {}
        intent = parse_data.get("intent") if isinstance(parse_data.get("intent"), dict) else {}
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        token = metadata.get("customer_token")
        claims = metadata.get(CLAIMS_KEY)
        return Effects(
            channel=_str(data.get("input_channel"), 40),
            claims=claims if isinstance(claims, dict) else None,
            customer_token=token if isinstance(token, str) and 0 < len(token) <= 4096 else None,
            fallback=intent.get("name") in FALLBACK_INTENTS,
            user_turn=True,
        )
    if kind == "action":
        name = data.get("name")
        return Effects(
            task_completed=name in TASK_ACTIONS,
            escalated=name in ESCALATION_ACTIONS,
            fallback=True if name in FALLBACK_ACTIONS else None,
        )
    if kind == "bot":
        text = data.get("text")
        return Effects(escalated=isinstance(text, str) and bool(TICKET_IN_TEXT.search(text)))
    if kind == "slot":
        name, value = data.get("name"), data.get("value")
        if name == CUSTOMER_SLOT:
            return Effects(customer_id=_customer_id(value))
        if name == ESCALATED_SLOT and value is True:
            return Effects(escalated=True)
        if name == RESOLVED_SLOT and value is True:
            return Effects(resolved=True)
        if name in CSAT_RATING_SLOTS:
            return Effects(csat_rating=_rating(value))
        if name in CSAT_COMMENT_SLOTS and isinstance(value, str) and value.strip():
            return Effects(csat_comment=value.strip()[:MAX_TEXT])
    return Effects()
