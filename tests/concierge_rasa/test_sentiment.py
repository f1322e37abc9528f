"""The sentiment component (real encoder, real training data) and the upset policy (real Rasa trackers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActionReverted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.onnx_featurizer import OnnxSentenceFeaturizer
from concierge_rasa.nlu.onnx_runtime import FROZEN_ENCODING, get_encoder, resolve_model_dir
from concierge_rasa.nlu.sentiment import SENTIMENT, SentimentClassifier, read_labelled_csv
from concierge_rasa.nlu.sentiment_head import (
    LABELS,
    META_FILE,
    SentimentHead,
    expected_calibration_error,
    fit_temperature,
    label_indices,
    softmax,
)
from concierge_rasa.upset_policy import UpsetPolicy, upset_streak

ROOT = Path(__file__).resolve().parents[2]
NEGATIVE = [
    "this is ridiculous, my parcel is two weeks late and nobody answers my emails",
    "worst service ever, I want my money back",
    "the blender arrived broken and I'm really angry",
]
POSITIVE = [
    "thank you so much, you were super helpful!",
    "the shoes are lovely, really happy with them",
    "great, that sorted it, cheers",
]
NEUTRAL = ["where is my order 104233?", "can I pay by bank transfer", "how do I change my email address"]


def _train(tmp_path_factory, **overrides) -> tuple[SentimentClassifier, LocalModelStorage, Resource]:
    """The component trained as `rasa train` does, on the project's data, then loaded back."""
    storage = LocalModelStorage(tmp_path_factory.mktemp("storage"))
    resource = Resource("sentiment")
    context = ExecutionContext(GraphSchema({}), "test-model")
    config = {**SentimentClassifier.get_default_config(), **overrides}
    SentimentClassifier.validate_config(config)
    SentimentClassifier.create(config, storage, resource, context).train(TrainingData([]))
    loaded = SentimentClassifier.load(config, storage, resource, context)
    return loaded, storage, resource


@pytest.fixture(scope="module", params=["frozen", "tuned"])
def trained(encoder_dir, tmp_path_factory, request) -> tuple[SentimentClassifier, LocalModelStorage, Resource]:
    """Both variants: the default (head on the frozen layers) and two tuned top layers."""
    return _train(tmp_path_factory, **({"tune_top_layers": 2} if request.param == "tuned" else {}))


def _featurized(context, tokenizer, texts: list[str]) -> list[Message]:
    """Tokenized and featurized as config.yml's pipeline does (two tuned top layers: the
    featurizer's encoder pass then includes the states below them, which the sentiment reuses)."""
    messages = [Message(data={TEXT: t}) for t in texts]
    tokenizer.process(messages)
    config = {**OnnxSentenceFeaturizer.get_default_config(), "sentence_layers": [4, 5, 6]}
    tuned = get_encoder(resolve_model_dir(None), num_threads=1).top_layer(2)
    return OnnxSentenceFeaturizer(config, context, tuned=tuned).process(messages)


def _parse_output(message: Message) -> dict:
    """What Rasa's processor puts into the parse data (and so into the tracker and event stream)."""
    return message.as_dict(only_output_properties=True)


def test_parse_data_has_calibrated_sentiment(trained, context, tokenizer) -> None:
    component, _, _ = trained
    messages = component.process(_featurized(context, tokenizer, NEGATIVE + POSITIVE + NEUTRAL))
    for message, expected in zip(messages, ["negative"] * 3 + ["positive"] * 3 + ["neutral"] * 3, strict=True):
        sentiment = _parse_output(message)[SENTIMENT]
        assert sentiment["label"] == expected, (message.get(TEXT), sentiment)
        probs = sentiment["probabilities"]
        assert list(probs) == list(LABELS)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert sentiment["confidence"] == max(probs.values())
        assert FROZEN_ENCODING not in message.data  # the featurizer's hand-over was taken
        json.dumps(_parse_output(message)[SENTIMENT])  # plain JSON for the tracker store and broker
    p_neg = [_parse_output(m)[SENTIMENT]["probabilities"]["negative"] for m in messages]
    assert min(p_neg[:3]) >= 0.7 > max(p_neg[3:])  # the upset threshold separates them


def test_featurizer_encoding_equals_own_encoding(trained, context, tokenizer) -> None:
    """Reusing the featurizer's encoder pass gives what the component computes on its own."""
    component, _, _ = trained
    reused = component.process(_featurized(context, tokenizer, NEGATIVE[:1] + POSITIVE[:1]))
    alone = component.process([Message(data={TEXT: t}) for t in NEGATIVE[:1] + POSITIVE[:1]])
    for a, b in zip(reused, alone, strict=True):
        pa, pb = a.get(SENTIMENT)["probabilities"], b.get(SENTIMENT)["probabilities"]
        for label in LABELS:
            assert pa[label] == pytest.approx(pb[label], abs=2e-3)


@pytest.mark.parametrize("text", ["", "   ", None, "气死我了，东西坏了还没人理"])
def test_no_text_and_chinese_get_no_sentiment(trained, text) -> None:
    component, _, _ = trained
    [message] = component.process([Message(data={TEXT: text} if text is not None else {})])
    assert SENTIMENT not in _parse_output(message)


def test_odd_text_still_gets_sentiment(trained) -> None:
    component, _, _ = trained
    texts = ["😡😡😡", "a" * 20_000, "'; DROP TABLE orders; --", "\x00\x01 binary"]
    for message in component.process([Message(data={TEXT: t}) for t in texts]):
        probs = message.get(SENTIMENT)["probabilities"]
        assert np.isfinite(list(probs.values())).all()


def test_temperature_fitted_on_validation_and_stored(trained) -> None:
    component, storage, resource = trained
    with storage.read_from(resource) as folder:
        meta = json.loads((Path(folder) / META_FILE).read_text())
    assert meta["n_train"] == len(read_labelled_csv([ROOT / "data/sentiment/messages.csv"])[0])
    assert meta["n_validation"] == len(read_labelled_csv([ROOT / "data/sentiment/eval/validation.csv"])[0])
    assert meta["temperature"] == pytest.approx(component.head.temperature, rel=1e-3)
    val_texts, val_labels = read_labelled_csv([ROOT / "data/sentiment/eval/validation.csv"])
    logits = component.head.logits(component.featurize_texts(val_texts))
    # the stored temperature is the one that minimises the validation NLL
    assert meta["temperature"] == pytest.approx(fit_temperature(logits, label_indices(val_labels)), rel=1e-2)
    assert meta["validation_nll_after"] <= meta["validation_nll_before"]
    assert meta["sentence_layers"] == [4, 5, 6]
    depth = int(component.config["tune_top_layers"])
    assert meta["tuned_depth"] == depth
    assert (component.tuned is None) if depth == 0 else (component.tuned.depth == depth)


def test_load_without_training_adds_nothing(context, model_storage) -> None:
    component = SentimentClassifier.load(
        SentimentClassifier.get_default_config(), model_storage, Resource("never-trained"), context
    )
    [message] = component.process([Message(data={TEXT: "I am so angry"})])
    assert SENTIMENT not in message.data


def test_bad_config_is_rejected() -> None:
    for bad in ({"c": 0}, {"sentence_layers": "4"}, {"training_files": ["no/such.csv"]}, {"training_files": []}):
        with pytest.raises(InvalidConfigException):
            SentimentClassifier.validate_config({**SentimentClassifier.get_default_config(), **bad})


def test_temperature_scaling_fixes_overconfidence() -> None:
    """Synthetic: logits 4x too sharp; fitting T recovers about 4 and lowers ECE."""
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 3)) * 1.5
    y = np.array([rng.choice(3, p=p) for p in softmax(true_logits)])
    sharp = true_logits * 4
    t = fit_temperature(sharp, y)
    assert t == pytest.approx(4.0, rel=0.15)
    assert expected_calibration_error(softmax(sharp / t), y) < expected_calibration_error(softmax(sharp), y) / 2


def test_head_round_trip_and_rejects_corrupt(tmp_path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    labels = [LABELS[i % 3] for i in range(60)]
    head = SentimentHead.fit(x, labels)
    head.temperature = 1.7
    head.save(tmp_path / "h")
    loaded, _ = SentimentHead.load(tmp_path / "h")
    np.testing.assert_allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)
    (tmp_path / "h" / META_FILE).write_text(json.dumps({"labels": ["good", "bad"]}))
    with pytest.raises(ValueError):
        SentimentHead.load(tmp_path / "h")


# ---------------------------------------------------------------- the upset policy
DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [complaint, contact_human_agent, greet]
actions: [action_offer_human, action_log_complaint, action_request_human]
responses:
  utter_greet:
    - text: hi
"""
)


def _user(text: str, p_negative: float | None, intent: str = "complaint") -> UserUttered:
    parse = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}
    if p_negative is not None:
        rest = (1.0 - p_negative) / 2
        parse[SENTIMENT] = {
            "label": "negative" if p_negative > rest else "neutral",
            "confidence": max(p_negative, rest),
            "probabilities": {"negative": p_negative, "neutral": rest, "positive": rest},
        }
    return UserUttered(text, parse["intent"], [], parse)


def _policy(**config) -> UpsetPolicy:
    context = ExecutionContext(GraphSchema({}), "test")
    return UpsetPolicy({**UpsetPolicy.get_default_config(), **config}, None, Resource("upset"), context)


def _predicts_offer(policy: UpsetPolicy, events: list) -> bool:
    tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen"), *events], slots=DOMAIN.slots)
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    offer = prediction.probabilities[DOMAIN.index_for_action("action_offer_human")]
    if offer:
        assert prediction.max_confidence == 1.0 and prediction.is_no_user_prediction
    else:
        assert prediction.max_confidence == 0.0 and not prediction.is_no_user_prediction
    return offer == 1.0


def _turn(text: str, p: float | None, intent: str = "complaint") -> list:
    return [_user(text, p, intent), ActionExecuted("action_log_complaint"), ActionExecuted("action_listen")]


def test_policy_offers_after_two_upset_messages_in_a_row() -> None:
    policy = _policy()
    assert not _predicts_offer(policy, [_user("late again", 0.9)])
    assert _predicts_offer(policy, [*_turn("late again", 0.9), _user("worst ever", 0.8)])
    # the threshold is on the calibrated probability: 0.69 is not "clearly" negative
    assert not _predicts_offer(policy, [*_turn("late again", 0.9), _user("hmm", 0.69)])
    # a calm message in between breaks the streak; a missing sentiment (empty message) too
    assert not _predicts_offer(policy, [*_turn("bad", 0.9), *_turn("ok", 0.1), _user("awful", 0.9)])
    assert not _predicts_offer(policy, [*_turn("bad", 0.9), *_turn("", None), _user("awful", 0.9)])


def test_policy_offers_once_per_streak_and_once_per_message() -> None:
    policy = _policy()
    upset_twice = [*_turn("late", 0.9), _user("furious", 0.95)]
    offered = [*upset_twice, ActionExecuted("action_offer_human"), BotUttered("offer"), ActionReverted()]
    assert not _predicts_offer(policy, offered)  # already made for this message, despite the revert
    # a third upset message in a row: no second offer; a fresh streak later: a new one
    third = [*_turn("late", 0.9), *_turn("furious", 0.95), _user("still nothing", 0.9)]
    assert not _predicts_offer(policy, third)
    fresh = [*_turn("late", 0.9), *_turn("ok thanks", 0.05), *_turn("again!", 0.9), _user("awful", 0.9)]
    assert _predicts_offer(policy, fresh)


def test_policy_threshold_streak_and_skip_intents_are_configurable() -> None:
    events = [*_turn("late", 0.6), _user("bad", 0.65)]
    assert not _predicts_offer(_policy(), events)
    assert _predicts_offer(_policy(threshold=0.5), events)
    assert _predicts_offer(_policy(streak=1), [_user("awful", 0.9)])
    asks = [*_turn("late", 0.9), _user("get me a human now", 0.9, intent="contact_human_agent")]
    assert not _predicts_offer(_policy(), asks)  # the hand-over rule answers that


def test_reverted_offer_leaves_the_dialogue_state_as_after_the_message() -> None:
    """What lets the normal answer follow the offer: Rasa's state after the reverted action
    equals the state right after the customer's message."""
    before = [ActionExecuted("action_listen"), *_turn("late", 0.9), _user("furious", 0.95)]
    after = [*before, ActionExecuted("action_offer_human"), BotUttered("offer"), ActionReverted()]
    t_before = DialogueStateTracker.from_events("t", before, slots=DOMAIN.slots)
    t_after = DialogueStateTracker.from_events("t", after, slots=DOMAIN.slots)
    assert t_after.past_states(DOMAIN) == t_before.past_states(DOMAIN)
    assert t_after.latest_action_name == "action_listen"
    assert upset_streak(t_after, 0.7) == 2


def test_policy_config_is_validated() -> None:
    for bad in ({"threshold": 0}, {"threshold": 1.5}, {"streak": 0}, {"streak": "two"}):
        with pytest.raises(InvalidConfigException):
            UpsetPolicy.validate_config({**UpsetPolicy.get_default_config(), **bad})
