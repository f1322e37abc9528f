"""The action server's executor (bot/action_server.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from actions.orders import ValidateTrackOrderForm
from bot.action_server import build_executor

# the fuzz test's find (seed 4244274257): a first call after a start with an empty domain
CALL = {
    "next_action": "validate_track_order_form",
    "sender_id": "",
    "version": "3.6.21",
    "domain": {},
    "tracker": {
        "sender_id": "Lucas",
        "events": [{"event": "slot", "name": "csat_due", "value": False}],
        "followup_action": None,
        "latest_message": {"text": "where is 190001", "intent": {"name": "track_order"}, "metadata": {"language": 3}},
        "slots": {},
        "active_loop": {"name": "track_order_form"},
    },
}


def test_a_call_without_a_domain_uses_the_shipped_one(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    executor = build_executor(actions=[ValidateTrackOrderForm])
    with caplog.at_level(logging.ERROR):
        result = asyncio.run(executor.run(CALL))
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert result is not None and isinstance(result.events, list)


def test_without_the_file_an_empty_domain_still_crashes_the_validators(db_url: str, tmp_path, caplog) -> None:
    """Why the default exists: rasa_sdk hands the validators ``None`` for a domain."""
    executor = build_executor(tmp_path / "missing.yml", actions=[ValidateTrackOrderForm])
    with caplog.at_level(logging.ERROR):
        asyncio.run(executor.run(CALL))
    assert [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], AttributeError)]


def test_a_call_with_no_domain_key_as_rasa_sends_it_runs_the_form_with_the_shipped_domain(db_url: str) -> None:
    """endpoints.yml's enable_selective_domain: Rasa 3.6 sends neither a domain nor a digest; rasa_sdk
    alone refuses such a call (ActionMissingDomainException, HTTP 449). The validator still reads the
    form's required slots from the shipped domain: an order number is checked, not just accepted."""
    call = {k: v for k, v in CALL.items() if k != "domain"}
    events = [*CALL["tracker"]["events"], {"event": "slot", "name": "order_number", "value": "abc"}]
    call["tracker"] = {**CALL["tracker"], "events": events, "slots": {"order_number": "abc"}}
    executor = build_executor(actions=[ValidateTrackOrderForm])
    result = asyncio.run(executor.run(call))
    assert result is not None
    assert [e.get("value") for e in result.events if e.get("name") == "order_number"] == [None]
    assert result.responses  # and the customer hears why


def test_a_domain_one_call_carries_is_that_calls_only() -> None:
    """rasa_sdk keeps a call's domain for every later call without one: an old Rasa replica during a
    rolling update (or any caller with the token) would change the replies of every conversation."""
    from rasa_sdk import Action

    class WhichDomain(Action):
        def name(self) -> str:
            return "action_which_domain"

        def run(self, dispatcher, tracker, domain):  # noqa: ANN001, ANN201
            dispatcher.utter_message(text="custom" if "utter_only_in_the_call" in domain["responses"] else "shipped")
            return []

    executor = build_executor(actions=[WhichDomain])
    call = {"next_action": "action_which_domain", "sender_id": "s", "tracker": {**CALL["tracker"], "events": []}}
    custom = {"responses": {"utter_only_in_the_call": [{"text": "x"}]}}
    texts = [asyncio.run(executor.run(c)).responses[0]["text"] for c in (call, {**call, "domain": custom}, call)]
    assert texts == ["shipped", "custom", "shipped"]
