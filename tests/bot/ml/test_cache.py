"""bot.ml.cache.ModelCache: the one shape of the sentiment/recommender and analytics model caches."""

import logging
import threading
from pathlib import Path

import pytest

from bot.analytics import serving as analytics_serving
from bot.ml import serving as ml_serving
from bot.ml.base import ModelError
from bot.ml.cache import ModelCache

log = logging.getLogger("test.cache")


def test_loads_once_and_keeps_the_object(tmp_path):
    calls = []
    cache = ModelCache(log, "%s at %s: %s")

    def load(path: Path) -> object:
        calls.append(path)
        return object()

    first = cache.get("m", lambda: tmp_path / "m", load)
    assert cache.get("m", lambda: tmp_path / "other", load) is first
    assert calls == [tmp_path / "m"] and cache.names() == ["m"]
    cache.clear()
    assert cache.names() == [] and cache.get("m", lambda: tmp_path / "m", load) is not first


def test_a_failed_load_is_logged_once_and_remembered_as_none(tmp_path, caplog):
    cache = ModelCache(log, "model %s unavailable at %s: %s", (ModelError,), logging.WARNING)

    def broken(path: Path) -> object:
        raise ModelError("corrupt")

    with caplog.at_level(logging.WARNING, logger="test.cache"):
        assert cache.get("m", lambda: tmp_path, broken) is None
        assert cache.get("m", lambda: tmp_path, broken) is None
    assert [r.getMessage() for r in caplog.records] == [f"model m unavailable at {tmp_path}: corrupt"]


def test_errors_outside_the_expected_ones_propagate(tmp_path):
    cache = ModelCache(log, "%s %s %s", (ModelError,))

    def bug(path: Path) -> object:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        cache.get("m", lambda: tmp_path, bug)
    assert cache.names() == []  # nothing remembered: the next call tries again


def test_concurrent_first_use_loads_once(tmp_path):
    started, release, calls = threading.Event(), threading.Event(), []

    def slow(path: Path) -> str:
        calls.append(path)
        started.set()
        assert release.wait(10)
        return "model"

    cache = ModelCache(log, "%s %s %s")
    results = []

    def use() -> None:
        results.append(cache.get("m", lambda: tmp_path, slow))

    threads = [threading.Thread(target=use) for _ in range(3)]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert results == ["model"] * 3 and len(calls) == 1


def test_both_model_caches_use_it():
    assert isinstance(ml_serving.MODELS, ModelCache) and isinstance(analytics_serving.MODELS, ModelCache)
