"""ChineseSentimentClassifier: calibrated sentiment for Chinese messages from the e5 vector."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.e5_featurizer import E5SentenceFeaturizer
from concierge_rasa.nlu.sentiment import SENTIMENT
from concierge_rasa.nlu.sentiment_zh import CharNgrams, ChineseSentimentClassifier, e5_vector

ROWS = {
    "negative": ["气死我了，东西是坏的", "太坑了，再也不买了", "等了十天还没到，无语", "客服不回，差评", "质量太差了"],
    "neutral": ["我的订单到哪了", "190003", "怎么申请退货", "发票怎么开", "支持哪些付款方式"],
    "positive": ["谢谢亲，很满意", "东西很好，好评", "物流超快，赞", "客服态度真好", "太感谢了，解决了"],
}


def write(path, rows) -> None:  # noqa: ANN001
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["text", "label"])
        for label, texts in rows.items():
            out.writerows([t, label] for t in texts)


def trained(tmp_path) -> tuple[ChineseSentimentClassifier, LocalModelStorage, Resource]:  # noqa: ANN001
    write(tmp_path / "train.csv", ROWS)
    write(tmp_path / "val.csv", {k: v[:2] for k, v in ROWS.items()})
    config = {"training_files": [str(tmp_path / "train.csv")], "validation_file": str(tmp_path / "val.csv")}
    (tmp_path / "model").mkdir()
    storage = LocalModelStorage(tmp_path / "model")
    context = ExecutionContext(graph_schema=None, node_name="zh_sentiment")  # type: ignore[arg-type]
    component = ChineseSentimentClassifier.create(config, storage, Resource("zh_sentiment"), context)
    resource = component.train(TrainingData())
    return ChineseSentimentClassifier.load(config, storage, resource, context), storage, resource


def test_chinese_messages_get_a_calibrated_sentiment_and_english_ones_none(tmp_path) -> None:
    component, _, _ = trained(tmp_path)
    assert component.head is not None and component.head.temperature > 0
    angry, happy, english = component.process(
        [Message({TEXT: "垃圾东西，气死了"}), Message({TEXT: "收到了，很喜欢，谢谢"}), Message({TEXT: "this is awful"})]
    )
    assert angry.get(SENTIMENT)["label"] == "negative"
    assert happy.get(SENTIMENT)["label"] == "positive"
    probs = angry.get(SENTIMENT)["probabilities"]
    assert set(probs) == {"negative", "neutral", "positive"} and abs(sum(probs.values()) - 1) < 1e-3
    assert english.get(SENTIMENT) is None  # the English head's job


def test_reads_the_vector_the_featurizer_left(tmp_path) -> None:
    context = ExecutionContext(graph_schema=None, node_name="run_E5SentenceFeaturizer3")  # type: ignore[arg-type]
    config = {**E5SentenceFeaturizer.get_default_config(), "han_only": True}
    featurizer = E5SentenceFeaturizer.create(config, LocalModelStorage(tmp_path), Resource("e5"), context)
    chinese, english = featurizer.process([Message({TEXT: "我的订单到哪了"}), Message({TEXT: "where is it"})])
    vector = e5_vector(chinese)
    assert vector is not None and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3)
    assert np.allclose(vector, featurizer.encoder.encode_one("我的订单到哪了"), atol=1e-4)
    assert e5_vector(english) is None


def test_without_a_trained_head_nothing_is_added(tmp_path) -> None:
    context = ExecutionContext(graph_schema=None, node_name="zh_sentiment")  # type: ignore[arg-type]
    loaded = ChineseSentimentClassifier.load({}, LocalModelStorage(tmp_path), Resource("missing"), context)
    assert loaded.head is None
    [message] = loaded.process([Message({TEXT: "气死了"})])
    assert message.get(SENTIMENT) is None


def test_character_ngrams_are_sklearns_tfidf() -> None:
    """The head's n-grams equal scikit-learn's char 1-3 gram TF-IDF (min_df 2, sublinear tf), which
    bench-zh measured; kept in the model as JSON, not a pickle."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [t for rows in ROWS.values() for t in rows] + ["Bluetooth耳机 坏了  太差", "AirPods到了吗"]
    ours = CharNgrams.fit(texts)
    sk = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True).fit(texts)
    assert ours.vocabulary == sk.vocabulary_
    probe = ["质量太差了，气死", "很满意 thanks", "没见过的字"]
    assert np.allclose(ours.transform(probe), sk.transform(probe).toarray(), atol=1e-5)


def test_the_ngrams_travel_with_the_head_and_can_be_left_out(tmp_path) -> None:
    component, storage, resource = trained(tmp_path)
    assert component.ngrams is not None and len(component.ngrams.vocabulary) > 10
    with storage.read_from(resource) as folder:
        assert (Path(folder) / "char_ngrams.json").is_file()
    assert component.head.weights.shape[0] == 384 + len(component.ngrams.vocabulary)

    plain = tmp_path / "plain"
    plain.mkdir()
    write(plain / "train.csv", ROWS)
    config = {"training_files": [str(plain / "train.csv")], "validation_file": "", "char_ngrams": False}
    context = ExecutionContext(graph_schema=None, node_name="zh_sentiment")  # type: ignore[arg-type]
    (plain / "model").mkdir()
    storage = LocalModelStorage(plain / "model")
    e5_only = ChineseSentimentClassifier.create(config, storage, Resource("zh"), context)
    loaded = ChineseSentimentClassifier.load(config, storage, e5_only.train(TrainingData()), context)
    assert loaded.ngrams is None and loaded.head.weights.shape[0] == 384
    [angry] = loaded.process([Message({TEXT: "垃圾东西，气死了"})])
    assert angry.get(SENTIMENT)["label"] == "negative"
