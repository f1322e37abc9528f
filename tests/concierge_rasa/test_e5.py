"""The multilingual e5 encoder and its Rasa featurizer (Chinese NLU, issue 27)."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.e5 import DIM, E5Encoder
from concierge_rasa.nlu.e5_featurizer import E5SentenceFeaturizer


def test_a_chinese_order_question_is_closer_to_tracking_than_to_small_talk():
    enc = E5Encoder()
    where, track, weather = enc.encode(["我的订单到哪了", "帮我查一下快递物流", "明天天气怎么样"])
    assert where.shape == (DIM,) and np.isclose(np.linalg.norm(where), 1.0, atol=1e-3)
    assert where @ track > where @ weather
    assert np.allclose(enc.encode_one("我的订单到哪了"), where, atol=1e-4)


def test_cache_returns_the_same_vectors_and_notices_other_texts(tmp_path):
    texts = ["退货", "换货", "发票"]
    first = E5Encoder(cache_dir=tmp_path).encode(texts)
    assert len(list(tmp_path.glob("e5q-*.npy"))) == 1
    again = E5Encoder(cache_dir=tmp_path).encode(texts)
    assert np.array_equal(first, again)
    other = E5Encoder(cache_dir=tmp_path).encode(["退货", "换货", "地址"])
    assert len(list(tmp_path.glob("e5q-*.npy"))) == 2
    assert not np.allclose(other[2], first[2])


def _featurizer(tmp_path, **config):  # noqa: ANN001, ANN202
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(graph_schema=None, node_name="e5")  # type: ignore[arg-type]
    full = {**E5SentenceFeaturizer.get_default_config(), **config}
    E5SentenceFeaturizer.validate_config(full)
    return E5SentenceFeaturizer.create(full, storage, Resource("e5"), context)


def test_featurizer_adds_one_sentence_vector_at_training_and_parse_time(tmp_path):
    featurizer = _featurizer(tmp_path)
    data = TrainingData([Message(data={TEXT: "我要退款", INTENT: "refund"}), Message(data={TEXT: "where is my order"})])
    featurizer.process_training_data(data)
    parsed = featurizer.process([Message(data={TEXT: "我要退款"})])[0]
    seq, sent = data.training_examples[0].get_dense_features(TEXT, [])
    assert seq is None and sent.features.shape == (1, DIM)
    assert np.allclose(parsed.get_dense_features(TEXT, [])[1].features, sent.features, atol=1e-4)


def test_featurizer_rejects_zero_threads(tmp_path):
    with pytest.raises(InvalidConfigException):
        _featurizer(tmp_path, num_threads=0)
