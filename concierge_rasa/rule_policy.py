"""Rasa's RulePolicy with its rules indexed by their last state (issue 24: CPU per turn).

Why: to find the rules that apply, Rasa 3.6's RulePolicy checks every learned rule against the
conversation's states on every prediction: 817 rules (the digression rules of every form) plus 121
unhappy-path rules, each decoded from its JSON key (an LRU cache of 1,000 entries that the 1,578
keys of training thrash). py-spy put about a third of the policies' time in that loop.

A rule can only apply when its last state matches the conversation's last state, and two parts of
that state decide most of it: the previous action's name and the user's intent. The index maps
those two to the rules that name them (or leave them open), and Rasa's own check then runs on
those candidates only, for every state as before. The rules chosen are exactly Rasa's: a rule the
index leaves out is one Rasa's ``_is_rule_applicable`` rejects at the last state (a rule naming
another previous action or intent, a conversation-start rule in a started conversation, or the
reverse).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Optional

from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET, USER
from rasa.shared.nlu.constants import ACTION_NAME, INTENT

_OPEN = "\x00open"  # the rule leaves this part of the state open: it is checked in full


def _named(value: Any) -> Optional[str]:
    """A value a rule requires to be equal (a name), else None (open, or "should not be set")."""
    return value if isinstance(value, str) and value and value != SHOULD_NOT_BE_SET else None


class RuleIndex:
    """Rule keys of one lookup by (previous action, intent) of their last state."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = set(keys)
        self.starts: set[str] = set()  # rules of a conversation's start (no previous action)
        self.by_state: dict[tuple[str, str], set[str]] = defaultdict(set)
        for key in keys:
            last = json.loads(key)[-1] if key else {}
            previous = last.get(PREVIOUS_ACTION)
            if not previous:
                self.starts.add(key)
                continue
            action = _named(previous.get(ACTION_NAME)) or _OPEN
            intent = _named((last.get(USER) or {}).get(INTENT)) or _OPEN
            self.by_state[(action, intent)].add(key)

    def candidates(self, state: dict[str, Any]) -> set[str]:
        """The rules that may match a conversation whose last state is ``state``."""
        previous = state.get(PREVIOUS_ACTION)
        if not previous:
            return set(self.starts)
        action = previous.get(ACTION_NAME)
        intent = (state.get(USER) or {}).get(INTENT)
        found: set[str] = set()
        for a in (action, _OPEN):
            for i in (intent, _OPEN):
                found |= self.by_state.get((a, i), set())
        return found


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class IndexedRulePolicy(RulePolicy):
    """RulePolicy whose search for applicable rules starts from the index of their last states."""

    def _get_possible_keys(self, lookup: dict[str, str], states: list[dict[str, Any]]) -> set[str]:
        if not states:
            return super()._get_possible_keys(lookup, states)
        possible = self._index(lookup).candidates(states[-1])
        for i, state in enumerate(reversed(states)):
            possible = {key for key in possible if self._is_rule_applicable(key, i, state)}
        return possible

    def _index(self, lookup: dict[str, str]) -> RuleIndex:
        """The lookup's index, rebuilt when the lookup changed (training fills lookups as it goes)."""
        cache: dict[int, RuleIndex] = self.__dict__.setdefault("_rule_indexes", {})
        index = cache.get(id(lookup))
        if index is None or index.keys != lookup.keys():
            index = cache[id(lookup)] = RuleIndex(list(lookup))
        return index
