"""BatchedCountVectorsFeaturizer gives exactly Rasa's CountVectorsFeaturizer features."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.count_vectors import BatchedCountVectorsFeaturizer
from concierge_rasa.nlu.features import HashedFeatures

TRAIN = [
    ("where is my order 104233", "track_order"),
    ("my parcel has not arrived yet", "track_order"),
    ("I want my money back for the blender", "request_refund"),
    ("refund please, the mug was broken", "request_refund"),
    ("hello there", "greet"),
    ("hi!", "greet"),
]
# unseen words, emoji, repeated words, punctuation only, a huge message, empty text
PARSE = [
    "where is my blender refund",
    "zzqx unseen wörds 🙂🙂",
    "order order order",
    "?!",
    "refund " * 2000,
    "",
]


def _data(tokenizer, examples: list[tuple[str, str]]) -> TrainingData:
    data = TrainingData([Message(data={TEXT: t, "intent": i}) for t, i in examples])
    tokenizer.process_training_data(data)
    return data


def _messages(tokenizer, texts: list[str]) -> list[Message]:
    messages = [Message(data={TEXT: t}) for t in texts]
    tokenizer.process(messages)
    return messages


def _features(message: Message) -> list[tuple[str, str, tuple, np.ndarray]]:
    return [(f.type, f.attribute, f.features.shape, f.features.toarray()) for f in message.features]


@pytest.mark.parametrize(
    "config",
    [{}, {"max_ngram": 2}, {"analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4}],
    ids=["words", "word-bigrams", "char-ngrams"],
)
def test_same_features_as_rasa(model_storage, context, tokenizer, config):
    ours = BatchedCountVectorsFeaturizer.create(
        {**BatchedCountVectorsFeaturizer.get_default_config(), **config}, model_storage, Resource("ours"), context
    )
    rasa = CountVectorsFeaturizer.create(
        {**CountVectorsFeaturizer.get_default_config(), **config}, model_storage, Resource("rasa"), context
    )
    data_ours, data_rasa = _data(tokenizer, TRAIN), _data(tokenizer, TRAIN)
    ours.train(data_ours)
    rasa.train(data_rasa)
    ours.process_training_data(data_ours)
    rasa.process_training_data(data_rasa)
    batch_ours, batch_rasa = _messages(tokenizer, PARSE), _messages(tokenizer, PARSE)
    ours.process(batch_ours)
    rasa.process(batch_rasa)
    pairs = [
        *zip(data_ours.training_examples, data_rasa.training_examples, strict=True),
        *zip(batch_ours, batch_rasa, strict=True),
    ]
    assert any(m.features for m, _ in pairs)
    for a, b in pairs:
        fa, fb = _features(a), _features(b)
        assert [x[:3] for x in fa] == [x[:3] for x in fb]
        for x, y in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(x[3], y[3])
    # the intent labels are featurized too (the intent attribute), as Rasa does
    assert {f.attribute for f in data_ours.training_examples[0].features} == {
        f.attribute for f in data_rasa.training_examples[0].features
    }
    assert all(isinstance(f, HashedFeatures) for f in data_ours.training_examples[0].features)
    # one message at a time (parse time) equals the batch
    for text, batched in zip(PARSE, batch_ours, strict=True):
        single = ours.process(_messages(tokenizer, [text]))[0]
        assert [x[:3] for x in _features(single)] == [x[:3] for x in _features(batched)]
        for x, y in zip(_features(single), _features(batched), strict=True):
            np.testing.assert_array_equal(x[3], y[3])
