"""Rasa's TEDPolicy with its predictions memoised by the states it reads (issue 24: CPU per turn).

Why: after the rule index (``rule_policy.py``), TED was about 80% of the policies' time, most of it
TensorFlow's eager calls, and it runs on every prediction of every turn (two or three a turn).
TED's prediction is a function of the dialogue states its featurizer reads and nothing else: the
last ``max_history`` states (intent, entities, featurised slots, active loop, previous action, and
the user's text where TED was trained on text), featurised from the NLU's precomputed features,
then a transformer with fixed weights. Customers' conversations reach the same few hundred state
windows again and again (the same question, the same slot set, the same form step), so the
prediction for a window is kept and reused: exactly what TED would compute again, at the cost of
building the states, which TED builds anyway.

The key is the states themselves (every part TED featurises), so two conversations share a
prediction only when TED could not tell them apart. The cache is bounded (least recently used out)
and per process; ``memo_size: 0`` turns it off.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from typing import Any, Optional

from rasa.core.featurizers.precomputation import MessageContainerForCoreFeaturization
from rasa.core.policies.policy import PolicyPrediction, SupportedData
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import TEXT

MEMO_SIZE = "memo_size"


def states_key(batch: list[list[dict[str, Any]]]) -> str:
    """A canonical text of the state windows (sub-states are dicts of strings and tuples)."""
    return json.dumps(batch, sort_keys=True, default=list, ensure_ascii=False)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class MemoTEDPolicy(TEDPolicy):
    """TEDPolicy that reuses its prediction for a state window it has already seen."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """TED's defaults plus the size of the memo (state windows kept)."""
        return {**TEDPolicy.get_default_config(), MEMO_SIZE: 4096}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memo: OrderedDict[str, PolicyPrediction] = OrderedDict()
        self._states: Optional[list[list[dict[str, Any]]]] = None
        self.memo_hits = 0
        self.memo_misses = 0

    def _state_batch(self, tracker: DialogueStateTracker, domain: Domain,
                     rule_only_data: Optional[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The state windows TED featurises for this prediction (``_featurize_tracker``'s batch)."""
        ml_only = self.supported_data() == SupportedData.ML_DATA

        def window(use_text: bool) -> list[dict[str, Any]]:
            return self.featurizer.prediction_states(
                [tracker], domain, use_text_for_last_user_input=use_text, ignore_rule_only_turns=ml_only,
                rule_only_data=rule_only_data, ignore_action_unlikely_intent=ml_only)[0]

        batch = [window(self.only_e2e)]
        if tracker.latest_action_name == ACTION_LISTEN_NAME and TEXT in self.fake_features and not self.only_e2e:
            batch.append(window(True))
        return batch

    def _featurize_tracker(self, tracker: DialogueStateTracker, domain: Domain,
                           precomputations: Optional[MessageContainerForCoreFeaturization],
                           rule_only_data: Optional[dict[str, Any]]) -> list[list[dict[str, list[Any]]]]:
        """Featurises the windows already built for the key instead of building them again."""
        if self._states is None:
            return super()._featurize_tracker(tracker, domain, precomputations, rule_only_data)
        features: list[list[dict[str, list[Any]]]] = []
        for states in self._states:
            features += self.featurizer._featurize_states([states], precomputations)
        return features

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[dict[str, Any]] = None,
        precomputations: Optional[MessageContainerForCoreFeaturization] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """TED's prediction, computed once per distinct state window."""
        size = int(self.config.get(MEMO_SIZE) or 0)
        if self.model is None or size <= 0:
            return super().predict_action_probabilities(tracker, domain, rule_only_data, precomputations, **kwargs)
        batch = self._state_batch(tracker, domain, rule_only_data)
        key = states_key(batch)
        known = self._memo.get(key)
        if known is not None:
            self._memo.move_to_end(key)
            self.memo_hits += 1
            return copy.deepcopy(known)
        self.memo_misses += 1
        self._states = batch
        try:
            prediction = super().predict_action_probabilities(tracker, domain, rule_only_data, precomputations,
                                                              **kwargs)
        finally:
            self._states = None
        if prediction.optional_events:
            return prediction  # entities TED read from this message's text: not reused for another message
        self._memo[key] = copy.deepcopy(prediction)
        while len(self._memo) > size:
            self._memo.popitem(last=False)
        return prediction
