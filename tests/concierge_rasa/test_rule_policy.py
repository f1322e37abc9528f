"""IndexedRulePolicy finds exactly the rules Rasa's RulePolicy finds (Rasa runtime, Python 3.10)."""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import pytest
from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.constants import SHOULD_NOT_BE_SET

from concierge_rasa.rule_policy import IndexedRulePolicy

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ["action_listen", "utter_greet", "track_order_form", "action_fallback", "utter_goodbye"]
INTENTS = ["greet", "track_order", "stop", "affirm", SHOULD_NOT_BE_SET]


def brute_force(lookup: dict[str, str], states: list[dict]) -> set[str]:
    return RulePolicy._get_possible_keys(IndexedRulePolicy.__new__(IndexedRulePolicy), lookup, states)


def indexed(policy: IndexedRulePolicy, lookup: dict[str, str], states: list[dict]) -> set[str]:
    return policy._get_possible_keys(lookup, states)


def random_state(rng: random.Random, start_ok: bool = True) -> dict:
    if start_ok and rng.random() < 0.1:
        return {}  # a conversation's start
    state: dict = {"prev_action": {"action_name": rng.choice(ACTIONS)}}
    if rng.random() < 0.1:
        state["prev_action"] = {"action_text": "Hello!"}  # an end-to-end bot text
    if rng.random() < 0.7:
        state["user"] = {"intent": rng.choice(INTENTS)}
        if rng.random() < 0.2:
            state["user"]["entities"] = ("order_number",)
    if rng.random() < 0.3:
        state["active_loop"] = {"name": rng.choice(["track_order_form", SHOULD_NOT_BE_SET])}
    if rng.random() < 0.3:
        state["slots"] = {"verified": (1.0,)} if rng.random() < 0.5 else {"verified": SHOULD_NOT_BE_SET}
    return state


def test_the_index_finds_what_rasas_search_finds_on_random_rules() -> None:
    rng = random.Random(7)
    rules = [[random_state(rng, start_ok=(i == 0)) for i in range(rng.randint(1, 3))] for _ in range(300)]
    lookup = {json.dumps(r, sort_keys=True): "action_x" for r in rules}
    policy = IndexedRulePolicy.__new__(IndexedRulePolicy)
    found_some = 0
    for _ in range(2000):
        states = [random_state(rng, start_ok=(i == 0)) for i in range(rng.randint(1, 5))]
        expected = brute_force(lookup, states)
        assert indexed(policy, lookup, states) == expected
        found_some += bool(expected)
    assert found_some > 200  # the comparison is not only between empty sets


def trained_lookups() -> dict[str, dict[str, str]]:
    model = ROOT / "models" / "concierge.tar.gz"
    if not model.is_file():
        pytest.fail(f"{model} is missing: run `make train`")
    with tarfile.open(model) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("RulePolicy0/rule_policy.json"))
        data = json.load(tar.extractfile(member))["lookup"]
    return {name: data[name] for name in ("rules", "rules_for_loop_unhappy_path")}


def as_conversation(states: list[dict]) -> list[dict]:
    """A rule's states as a tracker holds them: JSON's lists are tuples there (slot values, entities)."""
    return [{part: {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()} for part, sub in s.items()}
            for s in states]


def test_the_index_finds_what_rasas_search_finds_on_the_assistants_rules() -> None:
    """Every learned rule's own states (so each finds at least itself), and each with its last state changed."""
    policy = IndexedRulePolicy.__new__(IndexedRulePolicy)
    rng = random.Random(11)
    for lookup in trained_lookups().values():
        assert len(lookup) > 100
        for key in lookup:
            states = as_conversation(json.loads(key))
            assert key in indexed(policy, lookup, states)
            assert indexed(policy, lookup, states) == brute_force(lookup, states)
            changed = [*states[:-1], {**states[-1], "user": {"intent": rng.choice(INTENTS)}}]
            assert indexed(policy, lookup, changed) == brute_force(lookup, changed)
