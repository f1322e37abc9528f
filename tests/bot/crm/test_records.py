"""Rasa events -> CRM records, on the events Rasa 3.6.21 really published (fixtures/)."""

from __future__ import annotations

import json
import math

import pytest

from bot.crm import records
from bot.crm.records import BadEvent, outcome, parse_event
from tests.bot.crm.conftest import rasa_events


def parsed():
    return [parse_event(json.dumps(e)) for e in rasa_events()]


def test_every_published_event_parses_with_a_distinct_key() -> None:
    events = parsed()
    assert len(events) == 111
    assert len({e.key for e in events}) == len(events)
    assert {e.type for e in events} >= {"user", "bot", "action", "slot", "session_started", "restart"}
    # the key is a function of the event alone: the same event from RabbitMQ has the same key
    raw = rasa_events()[5]
    assert parse_event(raw).key == parse_event(json.dumps(raw, indent=2).encode()).key


def test_user_turn_keeps_intent_confidence_and_entities() -> None:
    user = next(e for e in parsed() if e.type == "user" and "190001" in e.data["text"])
    turn = records.turn_of(user)
    assert turn.role == "user" and turn.intent == "track_order" and turn.confidence > 0.9
    assert turn.text == "where is my order 190001?"
    assert {"entity": "order_number", "value": "190001"}.items() <= json.loads(turn.entities)[0].items()
    assert records.effects_of(user).channel == "rest" and records.effects_of(user).user_turn


def test_bot_action_and_bookkeeping_events() -> None:
    events = parsed()
    bot = next(e for e in events if e.type == "bot")
    assert records.turn_of(bot).role == "bot" and records.turn_of(bot).text.startswith("Hi! I'm Concierge")
    assert records.turn_of(bot).action_name == "utter_greet"
    actions = [records.turn_of(e) for e in events if e.type == "action"]
    assert all(t is None or t.action_name != "action_listen" for t in actions)
    assert any(t and t.action_name == "action_track_order" for t in actions)
    assert all(records.turn_of(e) is None for e in events if e.type in ("slot", "user_featurization", "active_loop"))
    started = next(e for e in events if e.type == "session_started")
    assert records.effects_of(started).starts and records.turn_of(started).role == "event"
    restart = next(e for e in events if e.type == "restart")
    assert records.effects_of(restart).ends


def test_customer_hints_from_the_verified_slot_and_the_website_token() -> None:
    events = parsed()
    verified = [records.effects_of(e).customer_id for e in events if e.type == "slot"]
    assert {1, 2} <= {v for v in verified if v is not None}
    tokens = [records.effects_of(e).customer_token for e in events if e.type == "user"]
    assert sum(t is not None for t in tokens) == 1
    for bad in ("abc", "", None, True, -3, "12345678901234567"):
        event = parse_event(
            {"sender_id": "s", "event": "slot", "timestamp": 1.0, "name": "verified_customer_id", "value": bad}
        )
        assert records.effects_of(event).customer_id is None


def test_escalation_fallback_and_tasks() -> None:
    events = parsed()
    by_sender: dict[str, list] = {}
    for e in events:
        by_sender.setdefault(e.sender_id, []).append(records.effects_of(e))
    assert any(fx.escalated for fx in by_sender["cap-human"])  # action_request_human
    assert any(fx.escalated for fx in by_sender["cap-fallback"])  # the second fallback opened a ticket
    assert any(fx.fallback for fx in by_sender["cap-fallback"])
    assert any(fx.task_completed for fx in by_sender["cap-verified"])  # action_track_order ran


@pytest.mark.parametrize(
    ("text", "escalated"),
    [("Your ticket TK-123456 is open.", True), ("您的投诉已登记，工单号为TK-123456，我们会在1个工作日内回复您。", True),
     ("工单TK-123456", True), ("XTK-123456", False), ("TK-1234567", False), ("no ticket here", False)],
)
def test_a_reply_announcing_a_ticket_escalates_in_any_language(text: str, escalated: bool) -> None:
    event = parse_event({"sender_id": "s", "event": "bot", "timestamp": 1.0, "text": text})
    assert records.effects_of(event).escalated is escalated


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"escalated": True, "last_fallback": True, "tasks_completed": 2}, "escalated"),
        ({"escalated": False, "last_fallback": True, "tasks_completed": 2}, "fallback"),
        ({"escalated": False, "last_fallback": False, "tasks_completed": 1}, "resolved"),
        ({"escalated": False, "last_fallback": False, "tasks_completed": 0}, "abandoned"),
    ],
)
def test_outcome_rules(flags: dict, expected: str) -> None:
    assert outcome(**flags, closed=True) == expected
    assert outcome(**flags, closed=False) == "open"


def test_sentiment_from_the_nlu_parse_data() -> None:
    parse_data = {
        "sentiment": {"label": "negative", "confidence": 0.91, "probabilities": {"negative": 0.87, "positive": 0.13}}
    }
    assert records.sentiment_of(parse_data) == ("negative", 0.87)  # the calibrated probability of the label
    assert records.sentiment_of({"sentiment": {"label": "positive", "confidence": 0.7}}) == ("positive", 0.7)
    assert records.sentiment_of({"sentiment": {"label": "positive", "confidence": math.nan}}) == ("positive", None)
    assert records.sentiment_of({"sentiment": "happy"}) == (None, None)
    assert records.sentiment_of({}) == (None, None)
    event = parse_event(
        {"sender_id": "s", "event": "user", "timestamp": 2.0, "text": "grr", "parse_data": {**parse_data, "intent": {}}}
    )
    turn = records.turn_of(event)
    assert (turn.sentiment_label, turn.sentiment_probability, turn.intent) == ("negative", 0.87, None)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00",
        "not json",
        "[1, 2]",
        json.dumps({"event": "user", "timestamp": 1.0}),
        json.dumps({"sender_id": "s", "event": "user"}),
        json.dumps({"sender_id": "s", "event": "user", "timestamp": "yesterday"}),
        '{"sender_id": "s", "event": "user", "timestamp": NaN}',
        json.dumps({"sender_id": "s", "event": "user", "timestamp": 1e300}),
        json.dumps({"sender_id": "", "event": "user", "timestamp": 1.0}),
    ],
)
def test_malformed_broker_messages_are_rejected_clearly(raw) -> None:
    with pytest.raises(BadEvent):
        parse_event(raw)


def test_csat_slots_and_odd_values() -> None:
    def slot(name, value):
        return records.effects_of(
            parse_event({"sender_id": "s", "event": "slot", "timestamp": 3.0, "name": name, "value": value})
        )

    assert slot("csat_rating", "4").csat_rating == 4
    assert slot("csat_rating", 5).csat_rating == 5
    assert slot("csat_rating", "4/5").csat_rating == 4
    assert slot("csat_rating", "11").csat_rating is None and slot("csat_rating", True).csat_rating is None
    assert slot("csat_comment", "  quick and helpful ").csat_comment == "quick and helpful"
    huge = parse_event({"sender_id": "s", "event": "user", "timestamp": 4.0, "text": "a" * 20_000})
    assert len(records.turn_of(huge).text) == records.MAX_TEXT
