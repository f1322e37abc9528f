"""Offers a human when the customer is clearly upset several messages in a row.

Why a policy: the rule reads the calibrated sentiment the NLU puts in each user message's parse
data (``concierge_rasa.nlu.sentiment``), so it belongs to the dialogue, not to the channel
(where it used to wait on an HTTP call to the action server) nor to any one story. Rasa asks
every policy after each user message; this one predicts ``action_offer_human`` when the last
``streak`` user messages each had ``p(negative) >= threshold`` and the one before did not (so
a long rant gets one offer, and a later fresh streak another). The threshold lives in one place,
config.yml::

    - name: concierge_rasa.upset_policy.UpsetPolicy
      threshold: 0.7   # calibrated p(negative): about 7 in 10 such messages are negative
      streak: 2

The offer comes first, then the normal answer: ``action_offer_human`` (actions/upset.py) sends
the offer, notes the escalation, and ends with Rasa's ``ActionReverted`` event, so the other
policies see the conversation as it was right after the customer's message and answer it as
usual (the offer's message and events stay in the tracker and the event stream). The policy
looks at the raw events, so it predicts the offer once per message. A customer who asks for a
person (``skip_intents``) is handed over by the usual rules instead.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

logger = logging.getLogger(__name__)

# actions Rasa runs by itself between a user message and the first prediction
_NOT_A_REPLY = {ACTION_LISTEN_NAME, "action_extract_slots"}


def negative_probability(parse_data: Optional[dict[str, Any]]) -> Optional[float]:
    """p(negative) from a user message's parse data (None when it carries no sentiment)."""
    sentiment = (parse_data or {}).get("sentiment")
    if not isinstance(sentiment, dict):
        return None
    value = (sentiment.get("probabilities") or {}).get("negative")
    return float(value) if isinstance(value, (int, float)) else None


def upset_streak(tracker: DialogueStateTracker, threshold: float, limit: int = 10) -> int:
    """How many of the latest user messages in a row had p(negative) >= threshold."""
    streak = 0
    for event in reversed(tracker.applied_events()):
        if not isinstance(event, UserUttered):
            continue
        p = negative_probability(event.parse_data)
        if p is None or p < threshold:
            break
        streak += 1
        if streak >= limit:
            break
    return streak


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class UpsetPolicy(Policy):
    """Predicts the offer of a human after ``streak`` clearly negative messages in a row."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {
            # calibrated p(negative) from which a message counts as clearly upset
            "threshold": 0.7,
            # consecutive upset messages that trigger the offer (once per streak)
            "streak": 2,
            "offer_action": "action_offer_human",
            # the customer already asked for a person: the normal hand-over answers
            "skip_intents": ["contact_human_agent"],
            # above RulePolicy (4): the offer goes first, then the rules answer the message
            "priority": 5,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any = None,
    ) -> None:
        config = {**self.get_default_config(), **config}
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.threshold = float(config["threshold"])
        self.streak = int(config["streak"])
        self.offer_action = str(config["offer_action"])
        self.skip_intents = set(config.get("skip_intents") or [])

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Readable errors for nonsensical settings."""
        threshold, streak = config.get("threshold", 0.7), config.get("streak", 2)
        if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) <= 1.0:
            raise InvalidConfigException(f"UpsetPolicy: threshold must be in (0, 1], not {threshold!r}.")
        if not isinstance(streak, int) or isinstance(streak, bool) or streak < 1:
            raise InvalidConfigException(f"UpsetPolicy: streak must be a whole number >= 1, not {streak!r}.")

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn: the rule is its configuration."""
        if self.offer_action not in domain.action_names_or_texts:
            raise InvalidConfigException(f"UpsetPolicy: the domain has no action '{self.offer_action}'.")
        return self._resource

    def should_offer(self, tracker: DialogueStateTracker) -> bool:
        """True right after a user message that completes an upset streak (once per message)."""
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, ActionExecuted) and event.action_name not in _NOT_A_REPLY:
                return False  # the bot already acted on this message (the offer included)
        else:
            return False
        latest = tracker.latest_message
        if latest is None or (latest.intent or {}).get("name") in self.skip_intents:
            return False
        return upset_streak(tracker, self.threshold, limit=self.streak + 1) == self.streak

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """The offer with confidence 1, or no opinion (all zeros)."""
        probabilities = self._default_predictions(domain)
        if self.offer_action not in domain.action_names_or_texts or not self.should_offer(tracker):
            return self._prediction(probabilities)
        probabilities[domain.index_for_action(self.offer_action)] = 1.0
        # also wins over a form's happy path, whose predictions do not use the user's message
        return self._prediction(probabilities, is_no_user_prediction=True)
