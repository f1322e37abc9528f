"""The analytics models of this process: loaded on first use (never at import), once, then cached.

A missing or corrupt artifact is logged and reported as ``None``: callers fall back to stored
results or to neutral values, so a conversation never fails because analytics were not run.
"""

from __future__ import annotations

import logging
import threading

from bot.analytics.churn import ChurnModel
from bot.analytics.clv import ClvModel
from bot.analytics.segments import SegmentModel
from bot.ml.base import ModelError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[str, object] = {}
_KINDS = {"churn": ChurnModel, "clv": ClvModel, "segments": SegmentModel}


def _get(name: str):  # noqa: ANN202 - one of the model classes
    with _lock:
        if name not in _cache:
            from bot.analytics.refresh import model_dir

            path = model_dir() / name
            try:
                _cache[name] = _KINDS[name].load(path)
            except (ModelError, OSError) as exc:
                log.warning("analytics %s model unavailable at %s: %s (run `make analytics`)", name, path, exc)
                _cache[name] = None
        return _cache[name]


def churn_model() -> ChurnModel | None:
    return _get("churn")


def clv_model() -> ClvModel | None:
    return _get("clv")


def segment_model() -> SegmentModel | None:
    return _get("segments")


def clear() -> None:
    """Forget loaded models (after a refresh, or in tests)."""
    with _lock:
        _cache.clear()
