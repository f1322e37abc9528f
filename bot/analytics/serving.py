"""The analytics models of this process: loaded on first use (never at import), once, then cached.

A missing or corrupt artifact is logged and reported as ``None``: callers fall back to stored
results or to neutral values, so a conversation never fails because analytics were not run.
The cache has the shape of bot/ml/serving.py's (bot.ml.cache.ModelCache).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bot.analytics.churn import ChurnModel
from bot.analytics.clv import ClvModel
from bot.analytics.segments import SegmentModel
from bot.ml.base import ModelError
from bot.ml.cache import ModelCache
from bot.settings import get_settings

log = logging.getLogger(__name__)

MODELS = ModelCache(
    log, "analytics %s model unavailable at %s: %s (run `make analytics`)", (ModelError, OSError), logging.WARNING
)
_KINDS = {"churn": ChurnModel, "clv": ClvModel, "segments": SegmentModel}


def model_dir() -> Path:
    """Where `make analytics` saves the models and this module loads them from."""
    return get_settings().models_dir / "analytics"


def _get(name: str):  # noqa: ANN202 - one of the model classes
    return MODELS.get(name, lambda: model_dir() / name, _KINDS[name].load)


def churn_model() -> ChurnModel | None:
    return _get("churn")


def clv_model() -> ClvModel | None:
    return _get("clv")


def segment_model() -> SegmentModel | None:
    return _get("segments")


def clear() -> None:
    """Forget loaded models (after a refresh, or in tests)."""
    MODELS.clear()
