"""The tracker's past states, built once per prediction (concierge_rasa/states.py): the same states as
Rasa's, each caller its own copy, and built again as soon as the conversation moves on."""

from __future__ import annotations

import random

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

import concierge_rasa  # noqa: F401 - installs the cache, as in the Rasa server
from concierge_rasa.states import install

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, track, inform, thanks]
entities: [order_number]
slots:
  order_number:
    type: text
    influence_conversation: true
    mappings: [{type: from_entity, entity: order_number}]
  verified:
    type: bool
    influence_conversation: true
    mappings: [{type: custom}]
forms:
  track_form:
    required_slots: [order_number]
responses:
  utter_greet: [{text: hi}]
  utter_ask_order_number: [{text: "which order?"}]
actions: [action_track, validate_track_form]
""")

RASA_PAST_STATES = DialogueStateTracker.past_states.__wrapped__


def random_tracker(rng: random.Random) -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_events("s", [ActionExecuted("action_listen")], DOMAIN.slots)
    for _ in range(rng.randint(1, 6)):
        intent = rng.choice(["greet", "track", "inform", "thanks"])
        entities = [{"entity": "order_number", "value": "190001"}] if rng.random() < 0.4 else []
        tracker.update(UserUttered("x", {"name": intent, "confidence": 1.0}, entities))
        if entities:
            tracker.update(SlotSet("order_number", "190001"))
        action = rng.choice(["utter_greet", "action_track", "track_form"])
        tracker.update(ActionExecuted(action))
        if action == "track_form":
            tracker.update(ActiveLoop("track_form" if rng.random() < 0.5 else None))
        if rng.random() < 0.3:
            tracker.update(SlotSet("verified", True))
        tracker.update(BotUttered("ok"))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


def test_installed_and_the_states_are_rasas_for_every_argument() -> None:
    assert install() and DialogueStateTracker.past_states.__wrapped__ is RASA_PAST_STATES
    rng = random.Random(7)
    rule_only = {"slots": ["verified"], "loops": ["track_form"]}
    for _ in range(60):
        tracker = random_tracker(rng)
        for omit, ignore, rules in [(False, False, None), (True, False, None), (False, True, rule_only),
                                    (True, True, rule_only), (False, False, None)]:
            cached = tracker.past_states(DOMAIN, omit, ignore, rules)
            assert cached == RASA_PAST_STATES(tracker, DOMAIN, omit, ignore, rules)


def test_each_caller_gets_its_own_copy() -> None:
    tracker = random_tracker(random.Random(3))
    first = tracker.past_states(DOMAIN)
    expected = RASA_PAST_STATES(tracker, DOMAIN)
    for state in first:  # what Rasa's memoization does to the states it is given
        state.get("user", {}).pop("text", None)
        state.pop("slots", None)
        state.get("prev_action", {}).clear()
    assert tracker.past_states(DOMAIN) == expected


def test_a_new_event_makes_the_states_stale() -> None:
    tracker = random_tracker(random.Random(5))
    before = tracker.past_states(DOMAIN)
    tracker.update(UserUttered("190002", {"name": "inform", "confidence": 1.0},
                               [{"entity": "order_number", "value": "190002"}]))
    after = tracker.past_states(DOMAIN)
    assert after != before and after == RASA_PAST_STATES(tracker, DOMAIN)
    tracker.update(SlotSet("order_number", "190002"))
    assert tracker.past_states(DOMAIN) == RASA_PAST_STATES(tracker, DOMAIN)


def test_a_bounded_history_that_drops_an_event_is_seen() -> None:
    """Same number of events, a different last one: the states are built again."""
    tracker = DialogueStateTracker.from_events("b", [ActionExecuted("action_listen")], DOMAIN.slots,
                                               max_event_history=3)
    for intent in ("greet", "track"):
        tracker.update(UserUttered("x", {"name": intent, "confidence": 1.0}))
        tracker.update(ActionExecuted("action_listen"))
    before = tracker.past_states(DOMAIN)
    tracker.update(UserUttered("x", {"name": "thanks", "confidence": 1.0}))
    assert len(tracker.events) == 3
    after = tracker.past_states(DOMAIN)
    assert after != before and after == RASA_PAST_STATES(tracker, DOMAIN)
