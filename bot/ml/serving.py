"""Process-wide, lazily loaded model instances and never-raising entry points for actions.

Models load on first use (never at import time) and are cached; a missing or corrupt
artifact is logged once per load attempt and reported as ``None`` so the conversation goes on.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.ml.cache import ModelCache
from bot.ml.recommender import HybridRecommender
from bot.ml.sentiment import SentimentModel, SentimentResult
from bot.ml.train import recommender_model_dir, sentiment_model_dir
from bot.settings import get_settings
from concierge_rasa import text as text_cleaner

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SENTIMENT_CHARS = 2000  # the encoder sees 64 tokens anyway; never tokenize megabytes

MODELS = ModelCache(log, "%s model unavailable at %s: %s (run `python -m bot.ml.train`)")
_PATHS = {"sentiment": sentiment_model_dir, "recommender": recommender_model_dir}


def _threads() -> None:
    try:
        import torch  # heavy: torch, loaded with the first model

        # one short message per call: a single thread is fastest and degrades least when the
        # machine is busy (measured: p50 14 ms with 1 thread vs 52 ms with 2 under load 6.7 on 2 cores)
        torch.set_num_threads(max(1, get_settings().inference_threads))
    except Exception as exc:  # noqa: BLE001 - thread tuning is best effort
        log.debug("could not set torch threads: %s", exc)


def _load(name: str, loader: Callable[[Path], T]) -> T | None:
    def load(path: Path) -> T:
        _threads()
        return loader(path)

    return MODELS.get(name, _PATHS[name], load)


def get_sentiment_model() -> SentimentModel | None:
    """The shipped sentiment model, loaded once; ``None`` when it cannot be loaded."""
    return _load("sentiment", SentimentModel.load)


def get_recommender() -> HybridRecommender | None:
    """The shop recommender, loaded once; ``None`` when it cannot be loaded."""
    return _load("recommender", HybridRecommender.load)


def reset_cache() -> None:
    """Forget loaded models (after retraining, or in tests)."""
    MODELS.clear()


def clean_text(text: object) -> str | None:
    """Printable text for the model, or ``None`` for input that cannot carry sentiment."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return None
    # the shared cleaner, read word by word: invisible characters and U+FFFD (undecodable bytes) are spaces
    text = text_cleaner.clean_text(
        text[: MAX_SENTIMENT_CHARS * 2].replace("\ufffd", " "),
        MAX_SENTIMENT_CHARS,
        drop=text_cleaner.INVISIBLE,
        fold_whitespace=True,
    )
    if not any(ch.isalnum() or unicodedata.category(ch) == "So" for ch in text):
        return None
    return text


def analyze_sentiment(text: object) -> SentimentResult | None:
    """Sentiment of one user message; ``None`` for empty/unusable input or when the model is
    unavailable. Never raises."""
    try:
        cleaned = clean_text(text)
        if cleaned is None:
            return None
        model = get_sentiment_model()
        if model is None:
            return None
        return model.predict_one(cleaned)
    except Exception:  # noqa: BLE001 - sentiment must never break a conversation
        log.exception("sentiment analysis failed")
        return None
