"""Real Rasa components on real messages: ONNX featurizer, softmax intent classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.onnx_featurizer import OnnxSentenceFeaturizer
from concierge_rasa.nlu.onnx_runtime import EncoderMissingError, align_to_tokens, get_encoder
from concierge_rasa.nlu.softmax_classifier import SoftmaxIntentClassifier


def _featurizer(context, **config) -> OnnxSentenceFeaturizer:
    return OnnxSentenceFeaturizer({**OnnxSentenceFeaturizer.get_default_config(), **config}, context)


def _messages(tokenizer, texts: list[str]) -> list[Message]:
    messages = [Message(data={TEXT: t}) for t in texts]
    tokenizer.process(messages)
    return messages


def test_featurizer_shapes_and_unit_norm(encoder_dir, context, tokenizer):
    texts = ["where is my order #104233 ?", "I want my money back", "hello there"]
    messages = _featurizer(context).process(_messages(tokenizer, texts))
    sentences = []
    for message in messages:
        seq, sent = message.get_dense_features(TEXT)
        assert sent.features.shape == (1, 384)
        assert seq.features.shape == (len(message.get("text_tokens")), 384)
        assert np.linalg.norm(sent.features) == pytest.approx(1.0, abs=1e-4)
        assert np.all(np.linalg.norm(seq.features, axis=1) > 0)
        sentences.append(sent.features[0])
    # meaning, not spelling: a paraphrase is closer than an unrelated sentence
    para = _featurizer(context).process(_messages(tokenizer, ["I would like a refund please"]))[0]
    p = para.get_dense_features(TEXT)[1].features[0]
    assert p @ sentences[1] > p @ sentences[0] + 0.1
    assert p @ sentences[1] > p @ sentences[2] + 0.1


def test_batched_training_equals_single_inference(encoder_dir, context, tokenizer):
    texts = ["cancel order 104233", "a much longer message about a parcel that never arrived at my house", "hi"]
    batch = TrainingData(_messages(tokenizer, texts))
    _featurizer(context, batch_size=2).process_training_data(batch)
    for text, trained in zip(texts, batch.training_examples, strict=True):
        single = _featurizer(context).process(_messages(tokenizer, [text]))[0]
        a = trained.get_dense_features(TEXT)[1].features
        b = single.get_dense_features(TEXT)[1].features
        np.testing.assert_allclose(a, b, atol=1e-5)  # training features == parse-time features


def test_featurizer_robust_to_odd_text(encoder_dir, context, tokenizer):
    texts = ["", "   ", "😀🔥🙏", "x" * 10_000, "word " * 3_000, "Wo ist meine Bestellung?", "'; DROP TABLE orders;--"]
    messages = _featurizer(context).process(_messages(tokenizer, texts))
    for message, text in zip(messages, texts, strict=True):
        seq, sent = message.get_dense_features(TEXT)
        if not text.strip():
            assert sent is None  # nothing to featurize, nothing added
            continue
        assert sent.features.shape == (1, 384)
        assert np.isfinite(sent.features).all()
        assert seq.features.shape[0] == len(message.get("text_tokens"))


def test_sentence_layers_concatenate_unit_layer_means(encoder_dir, context, tokenizer):
    texts = ["where is my order #104233 ?", "my top-up is still pending", "hello there"]
    default = _featurizer(context).process(_messages(tokenizer, texts))
    last = _featurizer(context, sentence_layers=[6]).process(_messages(tokenizer, texts))
    multi = _featurizer(context, sentence_layers=[4, 5, 6]).process(_messages(tokenizer, texts))
    for d, one, three in zip(default, last, multi, strict=True):
        plain = d.get_dense_features(TEXT)[1].features
        # the last layer's mean alone is the sentence embedding
        np.testing.assert_allclose(one.get_dense_features(TEXT)[1].features, plain, atol=1e-4)
        seq, sent = three.get_dense_features(TEXT)
        assert sent.features.shape == (1, 3 * 384)
        assert np.linalg.norm(sent.features) == pytest.approx(1.0, abs=1e-4)
        blocks = sent.features[0].reshape(3, 384)
        # every layer weighs the same; the last block is the sentence embedding again
        np.testing.assert_allclose(np.linalg.norm(blocks, axis=1), 1 / np.sqrt(3), atol=1e-4)
        np.testing.assert_allclose(blocks[2] * np.sqrt(3), plain[0], atol=1e-4)
        # lower layers are not copies of the last one
        assert float(blocks[0] @ blocks[2]) * 3 < 0.99
        assert seq.features.shape == (len(three.get("text_tokens")), 384)  # sequence features unchanged


def test_sentence_layers_batched_training_equals_single_inference(encoder_dir, context, tokenizer):
    texts = ["cancel order 104233", "a much longer message about a parcel that never arrived at my house", "hi"]
    batch = TrainingData(_messages(tokenizer, texts))
    _featurizer(context, batch_size=2, sentence_layers=[2, 6]).process_training_data(batch)
    for text, trained in zip(texts, batch.training_examples, strict=True):
        single = _featurizer(context, sentence_layers=[2, 6]).process(_messages(tokenizer, [text]))[0]
        a = trained.get_dense_features(TEXT)[1].features
        b = single.get_dense_features(TEXT)[1].features
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("layers", [[], [-1], ["4"], 4, [1.5]])
def test_sentence_layers_config_is_checked(layers):
    with pytest.raises(InvalidConfigException, match="sentence_layers"):
        OnnxSentenceFeaturizer.validate_config(
            {**OnnxSentenceFeaturizer.get_default_config(), "sentence_layers": layers}
        )


def test_sentence_layers_beyond_the_encoder_give_a_clear_error(encoder_dir, context, tokenizer):
    featurizer = _featurizer(context, sentence_layers=[5, 7])
    with pytest.raises(InvalidConfigException, match=r"\[7\] out of range: this encoder has layers 0..6"):
        featurizer.process(_messages(tokenizer, ["hello"]))


def test_old_export_without_layer_means_asks_for_a_new_export(encoder_dir, tmp_path, context, tokenizer):
    old = tmp_path / "old-export"
    old.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (old / name).symlink_to(encoder_dir / name)
    config = json.loads((encoder_dir / "concierge_onnx.json").read_text())
    config["outputs"] = ["token_embeddings", "sentence_embedding"]
    config.pop("num_layers", None)
    (old / "concierge_onnx.json").write_text(json.dumps(config))
    # the plain sentence embedding still works from an old export ...
    plain = _featurizer(context, model_path=str(old)).process(_messages(tokenizer, ["hello"]))[0]
    assert plain.get_dense_features(TEXT)[1].features.shape == (1, 384)
    # ... layer means need the new one, and the error says how to get it
    with pytest.raises(EncoderMissingError, match="export_onnx.py --force"):
        _featurizer(context, model_path=str(old), sentence_layers=[4, 6]).process(_messages(tokenizer, ["hello"]))


def test_missing_model_gives_clear_error(tmp_path):
    with pytest.raises(EncoderMissingError, match="export_onnx.py"):
        get_encoder(tmp_path / "nowhere")


def test_align_to_tokens_averages_overlapping_pieces():
    vectors = np.array([[0, 0], [1, 1], [3, 3], [5, 5], [0, 0]], dtype=np.float32)  # [CLS] a ##b c [SEP]
    offsets = [(0, 0), (0, 1), (1, 2), (3, 4), (0, 0)]
    out = align_to_tokens(vectors, offsets, [(0, 2), (3, 4), (10, 12)])
    np.testing.assert_allclose(out, [[2, 2], [5, 5], [0, 0]])


def _planted(tokenizer) -> TrainingData:
    """Intent = which fruit is named; the other words are noise."""
    rng = np.random.default_rng(0)
    noise = ["please", "now", "today", "maybe", "hey", "thanks", "ok", "so"]
    examples = []
    for intent, word in [("order_apple", "apple"), ("order_pear", "pear"), ("order_plum", "plum")]:
        for _ in range(15):
            words = list(rng.choice(noise, 3)) + [word]
            rng.shuffle(words)
            examples.append(Message(data={TEXT: " ".join(words), "intent": intent}))
    data = TrainingData(examples)
    tokenizer.process_training_data(data)
    return data


def _count_vectors(model_storage, context) -> CountVectorsFeaturizer:
    return CountVectorsFeaturizer.create(
        CountVectorsFeaturizer.get_default_config(), model_storage, Resource("cvf"), context
    )


def test_classifier_learns_planted_pattern_and_round_trips(model_storage, context, tokenizer):
    data = _planted(tokenizer)
    cvf = _count_vectors(model_storage, context)
    cvf.train(data)
    cvf.process_training_data(data)
    config = {
        **SoftmaxIntentClassifier.get_default_config(),
        "epochs": 60,
        "min_steps": 0,
        "batch_size": 8,
        "learning_rate": 0.01,
    }
    resource = Resource("softmax")
    clf = SoftmaxIntentClassifier.create(config, model_storage, resource, context)
    clf.train(data)

    test = _messages(tokenizer, ["ok pear please", "apple now", "hey so plum"])
    cvf.process(test)
    clf.process(test)
    assert [m.get("intent")["name"] for m in test] == ["order_pear", "order_apple", "order_plum"]
    assert all(m.get("intent")["confidence"] > 0.5 for m in test)
    ranking = test[0].get("intent_ranking")
    assert len(ranking) == 3 and ranking[0]["name"] == "order_pear"
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)

    loaded = SoftmaxIntentClassifier.load(config, model_storage, resource, context)
    again = _messages(tokenizer, ["ok pear please", "apple now", "hey so plum"])
    cvf.process(again)
    loaded.process(again)
    for a, b in zip(test, again, strict=True):
        assert a.get("intent")["name"] == b.get("intent")["name"]
        assert a.get("intent")["confidence"] == pytest.approx(b.get("intent")["confidence"], abs=1e-6)
    files = {p.name for p in (model_storage._storage_path / resource.name).iterdir()}  # noqa: SLF001
    assert files == {"weights.npz", "meta.json"}


def test_classifier_on_dense_and_sparse_features_handles_odd_input(encoder_dir, model_storage, context, tokenizer):
    data = _planted(tokenizer)
    featurizer = _featurizer(context)
    cvf = _count_vectors(model_storage, context)
    cvf.train(data)
    cvf.process_training_data(data)
    featurizer.process_training_data(data)
    config = {
        **SoftmaxIntentClassifier.get_default_config(),
        "epochs": 30,
        "min_steps": 0,
        "batch_size": 8,
        "learning_rate": 0.01,
    }
    clf = SoftmaxIntentClassifier.create(config, model_storage, Resource("softmax2"), context)
    clf.train(data)
    assert set(clf.meta["layout"]["dense"].values()) == {384}
    # the featurizer's per-word vectors feed the attention pool
    assert list(clf.meta["layout"]["sequence"].values()) == [384] and clf.model.uses_sequences
    plain = SoftmaxIntentClassifier.create(
        {**config, "attention_pooling": False}, model_storage, Resource("softmax3"), context
    )
    plain.train(data)
    assert plain.meta["layout"]["sequence"] == {} and not plain.model.uses_sequences

    odd = _messages(tokenizer, ["", "😀🔥", "x" * 10_000, "I'd like a pear"])
    cvf.process(odd)
    featurizer.process(odd)
    clf.process(odd)
    assert odd[0].get("intent") == {"name": None, "confidence": 0.0}
    for message in odd[1:]:
        assert message.get("intent")["name"] in {"order_apple", "order_pear", "order_plum"}
        assert 0.0 <= message.get("intent")["confidence"] <= 1.0
    assert odd[3].get("intent")["name"] == "order_pear"

    # the kNN memory travels in weights.npz and gives the same answers after loading
    assert clf.knn is not None and clf.knn.keys.shape == (len(data.intent_examples), 384)
    loaded = SoftmaxIntentClassifier.load(config, model_storage, Resource("softmax2"), context)
    assert loaded.knn is not None
    again = _messages(tokenizer, ["😀🔥", "I'd like a pear"])
    cvf.process(again)
    featurizer.process(again)
    loaded.process(again)
    for a, b in zip(odd[1::2], again, strict=True):
        assert a.get("intent")["name"] == b.get("intent")["name"]
        assert a.get("intent")["confidence"] == pytest.approx(b.get("intent")["confidence"], abs=1e-3)


def test_untrained_classifier_loads_and_predicts_nothing(model_storage, context, tokenizer):
    clf = SoftmaxIntentClassifier.load(
        SoftmaxIntentClassifier.get_default_config(), model_storage, Resource("never-trained"), context
    )
    messages = clf.process(_messages(tokenizer, ["hello"]))
    assert messages[0].get("intent") == {"name": None, "confidence": 0.0}


def test_knn_tuning_mirrors_the_classifier_defaults_and_config():
    """bench/knn_tuning.py runs in the other runtime (no Rasa): its copies must agree."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("knn_tuning", root / "bench" / "knn_tuning.py")
    knn_tuning = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(knn_tuning)
    defaults = SoftmaxIntentClassifier.get_default_config()
    assert {k: defaults[k] for k in knn_tuning.KNN_DEFAULTS} == knn_tuning.KNN_DEFAULTS

    settings = knn_tuning.pipeline_settings(root / "config.yml")
    from rasa.shared.utils.io import read_yaml_file

    pipeline = read_yaml_file(root / "config.yml")["pipeline"]
    featurizer = next(c for c in pipeline if c["name"].endswith("OnnxSentenceFeaturizer"))
    assert settings["sentence_layers"] == featurizer.get("sentence_layers")
    counts = [c for c in pipeline if c["name"].split(".")[-1] in knn_tuning.COUNT_FEATURIZERS]
    assert len(counts) == 2
    assert len(settings["counts"]) == len(counts)
    assert [a for a, _, _ in settings["counts"]] == [c.get("analyzer", "word") for c in counts]
