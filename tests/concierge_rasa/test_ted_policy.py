"""MemoTEDPolicy: the memo returns exactly what TED computes, and only for windows TED can't tell apart.

A real TED is trained (a few epochs, a small domain with slots, a form-like loop and entities)
through Rasa's own training path; its predictions with and without the memo are compared on many
random conversations."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rasa.core.training import load_data
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from concierge_rasa.ted_policy import MEMO_SIZE, MemoTEDPolicy

DOMAIN = """
version: "3.1"
intents: [greet, track, refund, inform, thanks, bye]
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
responses:
  utter_greet: [{text: hi}]
  utter_ask_order: [{text: "which order?"}]
  utter_bye: [{text: bye}]
  utter_welcome: [{text: welcome}]
actions: [action_track, action_refund]
"""

STORIES = """
version: "3.1"
stories:
- story: track with number
  steps:
  - intent: greet
  - action: utter_greet
  - intent: track
    entities: [{order_number: "190001"}]
  - slot_was_set: [{order_number: "190001"}]
  - action: action_track
  - intent: thanks
  - action: utter_welcome
- story: track without number
  steps:
  - intent: track
  - action: utter_ask_order
  - intent: inform
    entities: [{order_number: "190002"}]
  - slot_was_set: [{order_number: "190002"}]
  - action: action_track
  - slot_was_set: [{verified: true}]
  - intent: bye
  - action: utter_bye
- story: refund
  steps:
  - intent: refund
    entities: [{order_number: "190003"}]
  - slot_was_set: [{order_number: "190003"}]
  - action: action_refund
  - intent: thanks
  - action: utter_welcome
"""

INTENTS = ["greet", "track", "refund", "inform", "thanks", "bye"]
ACTIONS = ["utter_greet", "utter_ask_order", "utter_bye", "utter_welcome", "action_track", "action_refund"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[MemoTEDPolicy, Domain]:
    tmp = tmp_path_factory.mktemp("ted")
    domain = Domain.from_yaml(DOMAIN)
    (tmp / "stories.yml").write_text(STORIES)
    trackers = load_data(str(tmp / "stories.yml"), domain, augmentation_factor=0)
    (tmp / "storage").mkdir()
    storage = LocalModelStorage(tmp / "storage")
    policy = MemoTEDPolicy.create({**MemoTEDPolicy.get_default_config(), "epochs": 3, "max_history": 3},
                                  storage, Resource("ted"), ExecutionContext(GraphSchema({}), "t"))
    policy.train(trackers, domain)
    return policy, domain


def random_tracker(rng: random.Random, domain: Domain, sender: str) -> DialogueStateTracker:
    """A conversation of random turns: intents, an order number now and then, slots, bot actions."""
    events: list = [ActionExecuted("action_listen")]
    for _ in range(rng.randint(1, 6)):
        intent = rng.choice(INTENTS)
        entities = [{"entity": "order_number", "value": "190001"}] if rng.random() < 0.4 else []
        events.append(UserUttered("x", {"name": intent, "confidence": 1.0}, entities))
        if entities:
            events.append(SlotSet("order_number", "190001"))
        if rng.random() < 0.7:
            events.append(ActionExecuted(rng.choice(ACTIONS)))
            if rng.random() < 0.2:
                events.append(SlotSet("verified", rng.random() < 0.5))
            if rng.random() < 0.8:
                events.append(ActionExecuted("action_listen"))
    return DialogueStateTracker.from_events(sender, events, domain.slots)


def predict(policy: MemoTEDPolicy, domain: Domain, tracker: DialogueStateTracker, memo: bool) -> list[float]:
    policy.config[MEMO_SIZE] = 4096 if memo else 0
    return policy.predict_action_probabilities(tracker, domain).probabilities


def test_memoised_predictions_are_teds_own(trained: tuple[MemoTEDPolicy, Domain]) -> None:
    policy, domain = trained
    rng = random.Random(5)
    trackers = [random_tracker(rng, domain, f"c{i}") for i in range(150)]
    for round_ in range(2):  # the second round is answered from the memo, and must not differ
        for tracker in trackers:
            assert np.allclose(predict(policy, domain, tracker, memo=True),
                               predict(policy, domain, tracker, memo=False), atol=1e-6)
        if round_ == 0:
            misses = policy.memo_misses
    assert policy.memo_misses == misses  # nothing new in the second round
    assert policy.memo_hits >= len(trackers)


def test_only_the_window_ted_reads_is_shared(trained: tuple[MemoTEDPolicy, Domain]) -> None:
    """max_history 3: what happened before the last three states doesn't matter; the last turns do."""
    policy, domain = trained
    policy._memo.clear()
    tail = [UserUttered("x", {"name": "track", "confidence": 1.0}), ActionExecuted("utter_ask_order"),
            ActionExecuted("action_listen"), UserUttered("x", {"name": "inform", "confidence": 1.0})]
    early_a = [ActionExecuted("action_listen"), UserUttered("x", {"name": "greet", "confidence": 1.0}),
               ActionExecuted("utter_greet"), ActionExecuted("action_listen")]
    early_b = [ActionExecuted("action_listen"), UserUttered("x", {"name": "refund", "confidence": 1.0}),
               ActionExecuted("action_refund"), ActionExecuted("action_listen")]
    a = DialogueStateTracker.from_events("a", early_a + tail, domain.slots)
    b = DialogueStateTracker.from_events("b", early_b + tail, domain.slots)
    predict(policy, domain, a, memo=True)
    hits = policy.memo_hits
    predict(policy, domain, b, memo=True)
    assert policy.memo_hits == hits + 1  # same last three states: one prediction serves both

    c = DialogueStateTracker.from_events("c", early_a + tail + [SlotSet("verified", True)], domain.slots)
    predict(policy, domain, c, memo=True)
    assert policy.memo_hits == hits + 1  # a featurised slot changed: computed afresh


def test_memo_is_bounded(trained: tuple[MemoTEDPolicy, Domain]) -> None:
    policy, domain = trained
    policy._memo.clear()
    policy.config[MEMO_SIZE] = 5
    rng = random.Random(9)
    for i in range(60):
        policy.predict_action_probabilities(random_tracker(rng, domain, f"b{i}"), domain)
    assert 0 < len(policy._memo) <= 5
