from __future__ import annotations

import json

import numpy as np
import pytest

from bot.ml.base import ModelError
from bot.ml.sentiment import LABELS, SentimentModel, SentimentResult, load_labelled_csv
from bot.ml.train import SENTIMENT_DATA_DIR


def test_head_recovers_planted_pattern(head_model, planted_sentiment_data) -> None:
    _, _, test_x, test_y = planted_sentiment_data
    pred = [r.label for r in head_model.predict(test_x)]
    acc = np.mean([p == t for p, t in zip(pred, test_y, strict=True)])
    assert acc >= 0.9, (acc, list(zip(test_x, pred, strict=True)))


def test_predict_gives_label_score_and_polarity(head_model) -> None:
    [res] = head_model.predict(["where is my banana"])
    assert isinstance(res, SentimentResult)
    assert res.label in LABELS
    assert 1 / 3 <= res.score <= 1.0
    assert -1.0 <= res.polarity <= 1.0
    one = head_model.predict_one("where is my banana")
    assert one.label == res.label and one.score == pytest.approx(res.score, abs=1e-4)


def test_head_model_save_load_round_trip(head_model, tmp_path) -> None:
    texts = ["the banana arrived", "a scooter please", "umbrella question", "😡 !!"]
    head_model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["kind"] == "sentiment" and meta["fine_tuned"] is False
    assert not (tmp_path / "m" / "encoder").exists()  # frozen encoder is not duplicated
    loaded = SentimentModel.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(texts), head_model.predict_proba(texts), atol=1e-5)


def test_finetune_steps_change_encoder_and_round_trip(planted_sentiment_data, tmp_path) -> None:
    train_x, train_y, test_x, _ = planted_sentiment_data
    model = SentimentModel(mode="finetune", max_length=16)
    before = None

    def grab(m: SentimentModel) -> None:
        nonlocal before
        before = m.predict_proba(test_x)

    model.fit(train_x, train_y, epochs=1, batch_size=16, max_steps=2, head_epochs=2, progress=None, on_head_ready=grab)
    after = model.predict_proba(test_x)
    assert model.fine_tuned
    assert not np.allclose(before, after)  # the encoder itself was trained
    model.save(tmp_path / "ft")
    assert (tmp_path / "ft" / "encoder" / "model.safetensors").is_file()
    assert not list((tmp_path / "ft").rglob("*.bin")) and not list((tmp_path / "ft").rglob("*.pkl"))
    loaded = SentimentModel.load(tmp_path / "ft")
    np.testing.assert_allclose(loaded.predict_proba(test_x), after, atol=1e-4)


def test_load_rejects_missing_and_foreign_artifacts(tmp_path) -> None:
    with pytest.raises(ModelError):
        SentimentModel.load(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text(json.dumps({"kind": "hybrid_recommender", "format_version": 1}))
    with pytest.raises(ModelError):
        SentimentModel.load(tmp_path / "other")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    with pytest.raises(ModelError):
        SentimentModel.load(tmp_path / "bad")


def test_fit_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError):
        SentimentModel(mode="head").fit(["a", "b"], ["negative"], progress=None)
    with pytest.raises(ValueError):
        SentimentModel(mode="turbo")


def test_project_training_data_is_balanced_and_large_enough() -> None:
    texts, labels = load_labelled_csv(sorted(SENTIMENT_DATA_DIR.glob("*.csv")))
    assert len(texts) >= 1500
    counts = {lab: labels.count(lab) for lab in LABELS}
    assert min(counts.values()) >= 0.9 * max(counts.values()), counts
    assert len(set(texts)) == len(texts)
