from __future__ import annotations

import logging

import pytest

from bot.ml import serving
from bot.ml.sentiment import SentimentResult


@pytest.fixture
def models_dir(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    from bot.settings import get_settings

    monkeypatch.setenv("CONCIERGE_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    serving.reset_cache()
    yield tmp_path / "models"
    serving.reset_cache()
    get_settings.cache_clear()


@pytest.fixture
def with_sentiment_model(models_dir, head_model):  # noqa: ANN001, ANN201
    head_model.save(models_dir / "sentiment")
    return models_dir


def test_analyze_sentiment_returns_result(with_sentiment_model) -> None:
    res = serving.analyze_sentiment("where is my banana")
    assert isinstance(res, SentimentResult)
    assert res.label == "negative"  # planted pattern of the test model
    assert serving.get_sentiment_model() is serving.get_sentiment_model()  # loaded once, cached


@pytest.mark.parametrize("bad", ["", "   \n\t ", None, 42, 3.5, ["list"], {"a": 1}, b"", "\x00\x01\x02", "!!!?..."])
def test_analyze_sentiment_unusable_input_gives_none(with_sentiment_model, bad) -> None:  # noqa: ANN001
    assert serving.analyze_sentiment(bad) is None


@pytest.mark.parametrize(
    "odd",
    [
        "x" * 1_000_000,
        "banana " * 50_000,
        b"\xff\xfe where is my banana \x00",
        "😡😡😡",
        "umbrella\x00\x07 ok",
        "<script>alert(1)</script> banana",
        "\u202eananab",
    ],
)
def test_analyze_sentiment_odd_input_never_raises(with_sentiment_model, odd) -> None:  # noqa: ANN001
    res = serving.analyze_sentiment(odd)
    assert res is None or isinstance(res, SentimentResult)


def test_binary_input_is_decoded(with_sentiment_model) -> None:
    res = serving.analyze_sentiment(b"where is my banana")
    assert res is not None and res.label == "negative"


def test_missing_model_gives_none_and_logs(models_dir, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.ERROR, logger="bot.ml.serving"):
        assert serving.analyze_sentiment("hello there") is None
        assert serving.get_recommender() is None
    assert "sentiment model unavailable" in caplog.text
    assert "recommender model unavailable" in caplog.text


def test_corrupt_model_gives_none(models_dir) -> None:  # noqa: ANN001
    (models_dir / "sentiment").mkdir(parents=True)
    (models_dir / "sentiment" / "meta.json").write_text('{"kind": "sentiment", "format_version": 1}')
    assert serving.analyze_sentiment("hello") is None


def test_nothing_loads_at_import() -> None:
    import importlib

    mod = importlib.reload(serving)
    assert mod.MODELS.names() == []
