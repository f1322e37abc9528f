"""The action server's gate (bot/internal_auth.py): token check and action-call shape."""

import json
import logging
import zlib
from pathlib import Path

import pytest
import yaml

from bot.internal_auth import action_call_problem, bearer_ok

TOKEN = "t" * 40


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


CALL = {"next_action": "action_track_order", "tracker": {"sender_id": "a", "slots": {}, "events": []}, "domain": {}}


def tracker_with(**tracker: object) -> dict:
    """A form validation call whose tracker holds ``tracker``'s keys."""
    return {**CALL, "next_action": "validate_track_order_form", "tracker": {"sender_id": "a", **tracker}}


# What Rasa 3.6 sends: every kind of event the actions read, with the keys Rasa always writes.
RASA_EVENTS = [
    {"event": "action", "name": "action_session_start", "timestamp": 1.7e9},
    {"event": "session_started", "timestamp": 1.7e9},
    {"event": "action", "name": "action_listen", "policy": None, "confidence": None},
    {"event": "user", "text": "where is my order 100001?", "input_channel": "rest",
     "parse_data": {"intent": {"name": "track_order", "confidence": 0.9}, "entities": []}},
    {"event": "user_featurization", "use_text_for_featurization": False},
    {"event": "action", "name": None, "action_text": "an end-to-end bot text"},
    {"event": "active_loop", "name": "track_order_form"},
    {"event": "slot", "name": "order_number", "value": "100001"},
    {"event": "slot", "name": "requested_slot", "value": None},
    {"event": "bot", "text": None, "data": {"buttons": []}},
    {"event": "active_loop", "name": None},
    {"event": "rewind"},
]


def test_bearer_must_match_exactly():
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN)
    for bad in (None, "", TOKEN, f"Bearer {TOKEN}x", f"bearer {TOKEN}", f"Bearer {TOKEN[:-1]}", "Bearer ", 5):
        assert not bearer_ok(bad, TOKEN)
    assert not bearer_ok("Bearer ", "")


def test_well_formed_calls_pass_plain_and_deflated():
    body = json.dumps(CALL).encode()
    assert action_call_problem(body, None) is None
    assert action_call_problem(zlib.compress(body), "deflate") is None


def test_every_event_rasa_sends_passes():
    latest = {"intent": {"name": "track_order"}, "entities": [{"entity": "order_number", "value": "100001"}],
              "text": "hi", "metadata": {}}
    assert action_call_problem(json.dumps(tracker_with(events=RASA_EVENTS, latest_message=latest)).encode(),
                               None) is None
    assert action_call_problem(json.dumps(tracker_with(latest_message={"intent": {}, "entities": [],
                                                                       "text": None})).encode(), None) is None


def test_an_event_without_a_name_would_crash_form_validation(caplog: pytest.LogCaptureFixture) -> None:
    """Why the gate looks inside the events: rasa_sdk's own form validation indexes ``e["event"]``."""
    import asyncio

    from rasa_sdk.executor import ActionExecutor
    from rasa_sdk.interfaces import Tracker

    call = tracker_with(events=[{"name": "order_number", "value": "100001"}], latest_message={})
    call["domain"] = yaml.safe_load((Path(__file__).resolve().parents[2] / "domain.yml").read_text())
    with pytest.raises(KeyError):
        Tracker.from_dict(call["tracker"]).slots_to_validate()
    from actions.orders import ValidateTrackOrderForm

    # the one validator this call names: register_package() would also pick up every Action subclass
    # other test modules defined (rasa_sdk registers all subclasses in memory), e.g. one needing arguments
    executor = ActionExecutor()
    executor.register_action(ValidateTrackOrderForm)
    with caplog.at_level(logging.ERROR, logger="actions"):  # the real order form validator, as the server runs it
        asyncio.run(executor.run(call))
    crashes = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], KeyError)]
    assert crashes, "the validator no longer trips on it: the gate's check may be redundant now"
    assert "no 'event' name" in action_call_problem(json.dumps(call).encode(), None)


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"not json", None, "not JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"\x00\xff", "deflate", "deflate"),
        (json.dumps({**CALL, "next_action": 5}).encode(), None, "next_action"),
        (json.dumps({**CALL, "tracker": []}).encode(), None, "tracker"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "events": {}}}).encode(), None, "events"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "events": [1]}}).encode(), None, "events"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "slots": []}}).encode(), None, "slots"),
        (json.dumps({**CALL, "domain": "x"}).encode(), None, "domain"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "latest_message": None}}).encode(), None, "latest_message"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "slots": None}}).encode(), None, "slots"),
        (json.dumps({**CALL, "version": {}}).encode(), None, "version"),
        (b"[" * 5000 + b"]" * 5000, None, ""),
        # events and messages that crashed form validation with a traceback (fuzz, issue 28 item 3)
        (json.dumps(tracker_with(events=[{"name": "x"}])).encode(), None, "no 'event' name"),
        (json.dumps(tracker_with(events=[{"event": 5}])).encode(), None, "no 'event' name"),
        (json.dumps(tracker_with(events=[{"event": ""}])).encode(), None, "no 'event' name"),
        (json.dumps(tracker_with(events=[{"event": "slot", "value": 1}])).encode(), None, "'name'"),
        (json.dumps(tracker_with(events=[{"event": "slot", "name": "email"}])).encode(), None, "'value'"),
        (json.dumps(tracker_with(events=[{"event": "slot", "name": ["email"], "value": 1}])).encode(), None, "'name'"),
        (json.dumps(tracker_with(events=[{"event": "action"}])).encode(), None, "'name'"),
        (json.dumps(tracker_with(events=[{"event": "user", "text": ["hi"]}])).encode(), None, "'text'"),
        (json.dumps(tracker_with(events=[{"event": "user", "parse_data": "x"}])).encode(), None, "'parse_data'"),
        (json.dumps(tracker_with(events=[{"event": "bot", "text": {}}])).encode(), None, "'text'"),
        (json.dumps(tracker_with(events=[{"event": "active_loop", "name": 3}])).encode(), None, "'name'"),
        (json.dumps(tracker_with(latest_message={"intent": "greet"})).encode(), None, "intent"),
        (json.dumps(tracker_with(latest_message={"entities": {"a": 1}})).encode(), None, "entities"),
        (json.dumps(tracker_with(latest_message={"entities": ["email"]})).encode(), None, "entities"),
        (json.dumps(tracker_with(latest_message={"text": 5})).encode(), None, "text"),
        (json.dumps({**CALL, "x": nested(70)}).encode(), None, "deeply"),
        (zlib.compress(b" " * (9 * 1024 * 1024)), "deflate", "too large"),
    ],
)
def test_malformed_calls_are_refused_with_a_reason(body, encoding, reason):
    problem = action_call_problem(body, encoding)
    assert problem is not None and reason in problem
