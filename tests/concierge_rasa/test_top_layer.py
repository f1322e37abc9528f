"""The trainable copy of MiniLM's last layer, alone and inside OnnxSentenceFeaturizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.onnx_featurizer import OnnxSentenceFeaturizer
from concierge_rasa.nlu.onnx_runtime import EncoderMissingError, get_encoder
from concierge_rasa.nlu.top_layer import TopLayer, bucketed_batches, erf

REFUND = ["I want my money back", "refund my order please", "can I get a refund", "give me my money back"]
TRACK = ["where is my parcel", "track my order", "my package has not arrived", "when will my order come"]


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _examples(tokenizer, pairs: list[tuple[str, str]]) -> TrainingData:
    messages = [Message(data={TEXT: t, INTENT: i}) for t, i in pairs]
    tokenizer.process(messages)
    return TrainingData(messages)


def _featurizer(context, model_storage, resource=None, **config) -> OnnxSentenceFeaturizer:
    merged = {**OnnxSentenceFeaturizer.get_default_config(), **config}
    return OnnxSentenceFeaturizer.create(merged, model_storage, resource or Resource("onnx"), context)


def _trained_and_parsed(context, model_storage, tokenizer, name: str, config: dict, other: dict, frozen: bool):
    """Trains a featurizer with ``config``, loads it, and featurizes the training pairs; per
    training message: (message with training-time features, the same text parsed by the loaded
    featurizer, and parsed by another featurizer: with ``frozen`` an untrained one with
    ``other``'s config, else the same trained resource loaded with ``other`` over ``config``)."""
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    resource = Resource(name)
    trainer = _featurizer(context, model_storage, resource, **config)
    assert trainer.train(_examples(tokenizer, pairs)) == resource
    merged = {**OnnxSentenceFeaturizer.get_default_config(), **config}
    loaded = OnnxSentenceFeaturizer.load(merged, model_storage, resource, context)
    assert loaded.tuned is not None
    if frozen:
        compared = _featurizer(context, model_storage, **other)
    else:
        compared = OnnxSentenceFeaturizer.load({**merged, **other}, model_storage, resource, context)
    data = _examples(tokenizer, pairs)
    loaded.process_training_data(data)
    rows = []
    for message in data.training_examples:
        parsed = loaded.process(_examples(tokenizer, [(message.get(TEXT), "x")]).training_examples)[0]
        plain = compared.process(_examples(tokenizer, [(message.get(TEXT), "x")]).training_examples)[0]
        rows.append((message, parsed, plain))
    return loaded, rows


def test_numpy_top_layer_reproduces_the_encoders_last_layer(encoder_dir):
    encoder = get_encoder(encoder_dir)
    texts = ["where is my order #104233 ?", "hello", "a much longer message about a parcel that never arrived"]
    out = encoder.encode(texts, with_tokens=False, with_layers=True, with_pre_top=True)
    means = encoder.top_layer().means(out.pre_top)
    cosine = (_unit(means) * _unit(out.layers[:, -1])).sum(axis=1)
    assert cosine.min() > 0.99  # int8 encoder vs float32 layer: close, not equal
    assert [len(p) for p in out.pre_top] == [len(t) for t in encoder.encode(texts).tokens]


def test_fit_pulls_intents_apart_and_round_trips(encoder_dir, tmp_path):
    encoder = get_encoder(encoder_dir)
    texts, labels = REFUND + TRACK, np.array([0] * len(REFUND) + [1] * len(TRACK))
    states = encoder.encode(texts, with_tokens=False, with_pre_top=True).pre_top
    base = encoder.top_layer()

    def separation(layer: TopLayer) -> float:
        m = _unit(layer.means(states))
        sims = m @ m.T
        same = labels[:, None] == labels[None, :]
        off = ~np.eye(len(texts), dtype=bool)
        return float(sims[same & off].mean() - sims[~same].mean())

    tuned = base.fit(states, labels, 2, epochs=30, learning_rate=3e-4, batch_size=4)
    assert separation(tuned) > separation(base) + 0.05
    assert not np.allclose(tuned.weights["q_w"], base.weights["q_w"])
    tuned.save(tmp_path / "top.npz")
    again = TopLayer.load(tmp_path / "top.npz", tuned.num_heads, tuned.eps)
    np.testing.assert_array_equal(again.means(states), tuned.means(states))


def test_top_layer_rejects_incomplete_weights():
    with pytest.raises(ValueError, match="lack"):
        TopLayer({"q_w": np.zeros((4, 4))}, num_heads=2)


def test_featurizer_trains_persists_and_loads_the_tuned_layer(encoder_dir, model_storage, context, tokenizer):
    config = {"sentence_layers": [4, 5, 6], "tune_top_layer_epochs": 2}
    frozen = {"sentence_layers": [4, 5, 6]}
    _, rows = _trained_and_parsed(context, model_storage, tokenizer, "onnx_tuned", config, frozen, frozen=True)
    for message, parsed, plain in rows:
        a = message.get_dense_features(TEXT)[1].features
        b = parsed.get_dense_features(TEXT)[1].features
        c = plain.get_dense_features(TEXT)[1].features
        np.testing.assert_allclose(a, b, atol=1e-5)  # training features == parse-time features
        assert np.linalg.norm(b) == pytest.approx(1.0, abs=1e-4)
        # layers 4 and 5 are the frozen encoder's; only the last block is the tuned layer's
        np.testing.assert_allclose(b[0, :768], c[0, :768], atol=1e-5)
        assert not np.allclose(b[0, 768:], c[0, 768:], atol=1e-3)
        # per-word sequence features stay the frozen encoder's
        np.testing.assert_allclose(
            parsed.get_dense_features(TEXT)[0].features, plain.get_dense_features(TEXT)[0].features, atol=1e-5
        )


def test_training_texts_go_through_the_encoder_once(encoder_dir, model_storage, context, tokenizer, monkeypatch):
    config = {"sentence_layers": [4, 5, 6], "tune_top_layer_epochs": 1}
    merged = {**OnnxSentenceFeaturizer.get_default_config(), **config}
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    resource = Resource("onnx_once")
    trainer = _featurizer(context, model_storage, resource, **config)
    encoder, calls, nested = trainer.encoder, [], []
    original = encoder.encode

    def counting(texts, *args, **kwargs):  # the encoder calls itself once per text: count the outer call
        if not nested:
            calls.append(list(texts))
        nested.append(1)
        try:
            return original(texts, *args, **kwargs)
        finally:
            nested.pop()

    monkeypatch.setattr(encoder, "encode", counting)
    trainer.train(_examples(tokenizer, pairs))
    assert calls == [[t for t, _ in pairs]]
    loaded = OnnxSentenceFeaturizer.load(merged, model_storage, resource, context)
    data = _examples(tokenizer, [*pairs, ("do you ship to Norway", "delivery")])
    loaded.process_training_data(data)
    assert calls[1:] == [["do you ship to Norway"]]  # only what train() did not see
    for message in data.training_examples:
        parsed = loaded.process(_examples(tokenizer, [(message.get(TEXT), "x")]).training_examples)[0]
        for a, b in zip(message.get_dense_features(TEXT), parsed.get_dense_features(TEXT), strict=True):
            np.testing.assert_allclose(a.features, b.features, atol=1e-5)
    # the shared encoding is taken once: a second pass encodes everything itself
    del calls[:]
    loaded.process_training_data(_examples(tokenizer, pairs))
    assert calls == [[t for t, _ in pairs]]


def test_featurizer_without_tuning_stores_nothing(encoder_dir, model_storage, context, tokenizer):
    resource = Resource("onnx_frozen")
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    _featurizer(context, model_storage, resource).train(_examples(tokenizer, pairs))
    loaded = OnnxSentenceFeaturizer.load(OnnxSentenceFeaturizer.get_default_config(), model_storage, resource, context)
    assert loaded.tuned is None
    # one intent: nothing to tell apart, so the layer stays frozen (and training does not fail)
    one = _featurizer(context, model_storage, Resource("one_intent"), tune_top_layer_epochs=2)
    one.train(_examples(tokenizer, [(t, "refund") for t in REFUND]))
    assert one.tuned is None


@pytest.mark.parametrize("epochs", [-1, "3", 1.5, True])
def test_tune_epochs_config_is_checked(epochs):
    with pytest.raises(InvalidConfigException, match="tune_top_layer_epochs"):
        OnnxSentenceFeaturizer.validate_config(
            {**OnnxSentenceFeaturizer.get_default_config(), "tune_top_layer_epochs": epochs}
        )


def test_old_export_without_top_layer_asks_for_a_new_export(encoder_dir, tmp_path, model_storage, context, tokenizer):
    old = tmp_path / "v2-export"
    old.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (old / name).symlink_to(encoder_dir / name)
    config = json.loads((encoder_dir / "concierge_onnx.json").read_text())
    config["outputs"] = ["token_embeddings", "sentence_embedding", "layer_means"]
    config.pop("top_layer", None)
    (old / "concierge_onnx.json").write_text(json.dumps(config))
    featurizer = _featurizer(context, model_storage, model_path=str(old), tune_top_layer_epochs=1)
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    with pytest.raises(EncoderMissingError, match="export_onnx.py --force"):
        featurizer.train(_examples(tokenizer, pairs))


def test_tuned_featurizer_robust_to_odd_text(encoder_dir, model_storage, context, tokenizer):
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    featurizer = _featurizer(
        context, model_storage, Resource("odd"), sentence_layers=[4, 5, 6], tune_top_layer_epochs=1
    )
    featurizer.train(_examples(tokenizer, pairs))
    assert featurizer.tuned is not None
    texts = ["", "😀🔥🙏", "x" * 10_000, "word " * 3_000, "'; DROP TABLE orders;--", "\x00\x01 binary \x7f"]
    messages = [Message(data={TEXT: t}) for t in texts]
    tokenizer.process(messages)
    for message, text in zip(featurizer.process(messages), texts, strict=True):
        sent = message.get_dense_features(TEXT)[1]
        if not text.strip():
            assert sent is None
            continue
        assert sent.features.shape == (1, 3 * 384)
        assert np.isfinite(sent.features).all()
        assert np.linalg.norm(sent.features) == pytest.approx(1.0, abs=1e-4)


def test_tuned_sequence_features_come_from_the_tuned_layer(encoder_dir, model_storage, context, tokenizer):
    config = {"sentence_layers": [4, 5, 6], "tune_top_layer_epochs": 2, "tune_sequence_features": True}
    words_off = {"tune_sequence_features": False}
    _, rows = _trained_and_parsed(
        context, model_storage, tokenizer, "onnx_tuned_words", config, words_off, frozen=False
    )
    for message, parsed, frozen_words in rows:
        seq, sent = parsed.get_dense_features(TEXT)
        # one vector per Rasa token, the same at training and at parse time
        assert seq.features.shape == (len(message.get("text_tokens")), 384)
        np.testing.assert_allclose(message.get_dense_features(TEXT)[0].features, seq.features, atol=1e-5)
        # the sentence feature does not depend on the option; the per-word vectors do
        np.testing.assert_allclose(sent.features, frozen_words.get_dense_features(TEXT)[1].features, atol=1e-5)
        assert not np.allclose(seq.features, frozen_words.get_dense_features(TEXT)[0].features, atol=1e-3)


def test_two_layer_stack_reproduces_the_encoders_last_two_layers(encoder_dir, tmp_path):
    encoder = get_encoder(encoder_dir)
    assert encoder.top_depth == 2
    texts = ["where is my order #104233 ?", "hello", "a much longer message about a parcel that never arrived"]
    out = encoder.encode(texts, with_tokens=False, with_layers=True, with_pre_top=2)
    stack = encoder.top_layer(2)
    assert stack.depth == 2
    means, pieces = stack.outputs(out.pre_top)
    assert means.shape == (3, 2, 384)
    cosine = (_unit(means) * _unit(out.layers[:, -2:])).sum(axis=-1)
    assert cosine.min() > 0.99
    # the top layer alone, on the states below it, is the stack's last layer
    np.testing.assert_array_equal(stack.last(1).weights["q_w"], encoder.top_layer(1).weights["q_w"])
    assert [len(p) for p in pieces] == [len(p) for p in out.pre_top]
    stack.save(tmp_path / "stack.npz")
    again = TopLayer.load(tmp_path / "stack.npz", stack.num_heads, stack.eps)
    assert again.depth == 2
    np.testing.assert_allclose(again.outputs(out.pre_top)[0], means, atol=1e-5)  # numpy vs the graph
    np.testing.assert_array_equal(again.use_graph(encoder.top_layer_graph).outputs(out.pre_top)[0], means)
    with pytest.raises(ValueError, match="no top 3"):
        stack.last(3)


def test_featurizer_tunes_the_last_two_layers(encoder_dir, model_storage, context, tokenizer):
    config = {"sentence_layers": [4, 5, 6], "tune_top_layer_epochs": 2, "tune_top_layers": 2}
    frozen = {"sentence_layers": [4, 5, 6]}
    loaded, rows = _trained_and_parsed(context, model_storage, tokenizer, "onnx_tuned_two", config, frozen, frozen=True)
    assert loaded.tuned.depth == 2
    # the loaded tuned layers run through the export's one-layer graph (onnxruntime)
    graph = get_encoder(encoder_dir).top_layer_graph
    assert graph is not None and loaded.tuned._graph == graph
    assert "single" in loaded.tuned._graph_sessions
    for message, parsed, plain in rows:
        a = message.get_dense_features(TEXT)[1].features
        b = parsed.get_dense_features(TEXT)[1].features
        c = plain.get_dense_features(TEXT)[1].features
        np.testing.assert_allclose(a, b, atol=1e-5)
        # layer 4 is the frozen encoder's; layers 5 and 6 are the tuned copies
        np.testing.assert_allclose(b[0, :384], c[0, :384], atol=1e-5)
        assert not np.allclose(b[0, 384:768], c[0, 384:768], atol=1e-3)
        assert not np.allclose(b[0, 768:], c[0, 768:], atol=1e-3)


def test_more_tuned_layers_than_the_export_gives_is_a_clear_error(encoder_dir, model_storage, context, tokenizer):
    pairs = [(t, "refund") for t in REFUND] + [(t, "track") for t in TRACK]
    featurizer = _featurizer(context, model_storage, Resource("three"), tune_top_layer_epochs=1, tune_top_layers=3)
    with pytest.raises(EncoderMissingError, match="gives 2 top layer"):
        featurizer.train(_examples(tokenizer, pairs))


@pytest.mark.parametrize("depth", [0, -1, "2", 1.5, True])
def test_tune_top_layers_config_is_checked(depth):
    with pytest.raises(InvalidConfigException, match="tune_top_layers"):
        OnnxSentenceFeaturizer.validate_config(
            {**OnnxSentenceFeaturizer.get_default_config(), "tune_top_layers": depth}
        )


def test_bucketed_batches_cover_every_row_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(5, 20, 3000), rng.integers(60, 100, 100)])
    batches = bucketed_batches(lengths, 32, np.random.default_rng(1))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    assert max(len(b) for b in batches) == 32
    padded = sum(lengths[b].max() * len(b) for b in batches)
    order = np.random.default_rng(1).permutation(len(lengths))
    random_padded = sum(lengths[order[i : i + 32]].max() * len(order[i : i + 32]) for i in range(0, len(order), 32))
    assert padded < 0.6 * random_padded
    # a new random order every epoch, the same for the same seed
    again = bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = bucketed_batches(lengths, 32, np.random.default_rng(2))
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(batches, other, strict=False))


def test_float32_erf_matches_float64_erf():
    from scipy.special import erf as erf64

    grid = np.concatenate([np.linspace(-12, 12, 100_000), [0.0, -0.0, 1e-30, -1e-30, 4.0, -4.0, 1e30, -1e30]])
    ours = erf(grid.astype(np.float32).reshape(-1, 8)).reshape(-1)
    assert ours.dtype == np.float32
    assert np.abs(ours - erf64(grid.astype(np.float32).astype(np.float64))).max() < 1e-6
    assert np.isnan(erf(np.array([np.nan], dtype=np.float32)))[0]
    assert erf(np.zeros((0, 3), dtype=np.float32)).shape == (0, 3)


def test_many_sentences_run_in_tensorflow_with_numpys_results(encoder_dir):
    from concierge_rasa.nlu import top_layer

    stack = get_encoder(encoder_dir).top_layer(2)
    rng = np.random.default_rng(3)
    states = [rng.standard_normal((int(n), stack.dim)).astype(np.float32) for n in rng.integers(1, 40, 300)]
    assert len(states) >= top_layer.TF_MIN_SENTENCES
    means, pieces = stack.outputs(states)
    assert stack._tf_forward is not None  # the TensorFlow path ran
    for i in (0, 7, 299):  # one at a time: onnxruntime (the export's layer graph)
        one_means, one_pieces = stack.outputs([states[i]])
        np.testing.assert_allclose(means[i], one_means[0], atol=1e-4)
        np.testing.assert_allclose(pieces[i], one_pieces[0], atol=1e-4)
        assert pieces[i].shape == states[i].shape


def _perturbed(stack: TopLayer, seed: int = 5) -> TopLayer:
    """The stack with every weight moved, as tuning moves it (not the export's own weights)."""
    rng = np.random.default_rng(seed)
    layers = [{n: a + rng.normal(0.0, 0.02, a.shape).astype(np.float32) for n, a in w.items()} for w in stack.layers]
    return TopLayer(layers, stack.num_heads, stack.eps)


def test_tuned_layers_run_through_the_onnx_graph_with_numpys_results(encoder_dir):
    encoder = get_encoder(encoder_dir)
    assert encoder.top_layer_graph is not None and encoder.top_layer_graph.name == "top_layer.onnx"
    assert encoder.top_layer(2)._graph == encoder.top_layer_graph
    texts = ["where is my order #104233 ?", "hello", "a much longer message about a parcel that never arrived"]
    states = encoder.encode(texts, with_tokens=False, with_pre_top=2).pre_top
    tuned = _perturbed(encoder.top_layer(2))
    numpy_means, numpy_pieces = tuned.outputs(states)
    tuned.use_graph(encoder.top_layer_graph)
    for batch in ([states[0]], states, states * 3):  # one message ("single"), padded batches ("batch" above 4)
        means, pieces = tuned.outputs(batch)
        want = np.concatenate([numpy_means] * (len(batch) // 3 or 1))[: len(batch)]
        np.testing.assert_allclose(means, want, atol=1e-4)
        for got, want in zip(pieces, numpy_pieces * 3):  # noqa: B905
            np.testing.assert_allclose(got, want, atol=1e-4)
    assert set(tuned._graph_sessions) == {"single", "batch"}  # the graph served, no fallback
    # the tuned weights, not the graph's own (the export's last layer), were used
    assert not np.allclose(means[:3], encoder.top_layer(2).outputs(states)[0], atol=1e-3)
    tuned.use_graph(None)
    assert tuned._graph is None and tuned._graph_sessions == {}


@pytest.mark.parametrize("graph", ["garbage", "wrong_graph"])
def test_a_graph_that_cannot_serve_falls_back_to_numpy(encoder_dir, tmp_path, caplog, graph):
    encoder = get_encoder(encoder_dir)
    if graph == "garbage":
        path = tmp_path / "top_layer.onnx"
        path.write_bytes(b"\x00not an onnx graph" * 10)
    else:
        path = encoder_dir / "model.onnx"  # a real graph, but not one layer (other inputs)
    states = encoder.encode(["where is my parcel"], with_tokens=False, with_pre_top=2).pre_top
    tuned = _perturbed(encoder.top_layer(2))
    want = tuned.use_graph(None).outputs(states)[0]
    with caplog.at_level("WARNING", logger="concierge_rasa.nlu.top_layer"):
        got = tuned.use_graph(path).outputs(states)[0]
    np.testing.assert_array_equal(got, want)
    assert tuned._graph is None
    assert "using numpy instead" in caplog.text
