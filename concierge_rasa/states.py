"""A tracker's past states built once per prediction, not once per policy.

Why (issue 24): every policy of the ensemble (rules, memoization, TED) asks the tracker for its
past states, and Rasa builds them each time by replaying the whole conversation into a fresh copy
of the tracker for every event (``Domain.states_for_tracker_history``): about half of the policies'
CPU in ``make bench-latency``. The states depend only on the domain, the tracker's events and the
call's arguments, so the first call of a prediction builds them and the others get a copy.

Correctness: the cached states are kept on the tracker object itself, with the last event object
and the number of events they were built from; any new event (or one dropped by a bounded history)
makes them stale, and they are built again. Callers get their own copy of every state (Rasa's
memoization removes keys from the states it is given), so nothing a policy does to its states
reaches another policy. ``install()`` runs when the Rasa server imports ``concierge_rasa``.
"""

from __future__ import annotations

from typing import Any, Optional

_ATTRIBUTE = "_concierge_past_states"
_installed = False


def _key(domain: Any, omit_unset_slots: bool, ignore_rule_only_turns: bool,
         rule_only_data: Optional[dict[str, Any]]) -> tuple[Any, ...]:
    rules = None if not rule_only_data else repr(sorted(rule_only_data.items()))
    return (id(domain), bool(omit_unset_slots), bool(ignore_rule_only_turns), rules)


def _copy(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each state and each of its parts (user, previous action, loop, slots) copied; values are
    strings and tuples, which nobody changes."""
    return [{part: dict(values) for part, values in state.items()} for state in states]


def cached_past_states(original: Any, tracker_class: type) -> Any:
    """``tracker_class.past_states`` with the per-prediction cache described above."""

    def past_states(
        self: Any,
        domain: Any,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: Optional[dict[str, Any]] = None,
    ) -> list[dict[str, Any]]:
        events = self.events
        if not events or type(self) is not tracker_class:  # training's trackers cache their own states
            return original(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        last, count = events[-1], len(events)
        cache = self.__dict__.get(_ATTRIBUTE)
        if cache is None or cache[0] is not last or cache[1] != count or cache[2] is not domain:
            cache = (last, count, domain, {})  # the domain kept too: its id in the key stays its own
            self.__dict__[_ATTRIBUTE] = cache
        key = _key(domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        states = cache[3].get(key)
        if states is None:
            states = original(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
            cache[3][key] = _copy(states)
            return states
        return _copy(states)

    past_states.__wrapped__ = original  # type: ignore[attr-defined]
    return past_states


def install() -> bool:
    """Puts the cache in front of Rasa's ``past_states``; False where Rasa is not installed."""
    global _installed
    if _installed:
        return True
    try:
        from rasa.shared.core.trackers import DialogueStateTracker
    except ImportError:
        return False
    DialogueStateTracker.past_states = cached_past_states(  # type: ignore[method-assign]
        DialogueStateTracker.past_states, DialogueStateTracker)
    _installed = True
    return True
