"""One shape for the process-wide model caches (bot/ml/serving.py, bot/analytics/serving.py).

Why: models load on first use (never at import), once per process, under one lock so two
threads never load the same model twice; a missing or corrupt artifact is logged once per load
attempt and remembered as ``None``, so callers fall back and the conversation goes on.
``clear()`` forgets everything (after retraining or a refresh, and in tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ModelCache:
    """Loaded models by name; ``None`` for a model that could not be loaded."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        errors: tuple[type[BaseException], ...] = (Exception,),
        level: int = logging.ERROR,
    ) -> None:
        """``message`` is logged with (name, path, error) when loading fails with one of ``errors``."""
        self._log = logger
        self._message = message
        self._errors = errors
        self._level = level
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}

    def get(self, name: str, locate: Callable[[], Path], load: Callable[[Path], Any]) -> Any:
        """The model ``name``: ``load(locate())`` the first time, the same object (or ``None``) after."""
        with self._lock:
            if name not in self._models:
                path = locate()
                try:
                    self._models[name] = load(path)
                except self._errors as exc:
                    self._log.log(self._level, self._message, name, path, exc)
                    self._models[name] = None
            return self._models[name]

    def put(self, name: str, model: Any) -> None:
        """Serve ``model`` as ``name`` from now on (a model built in this process, e.g. by a test)."""
        with self._lock:
            self._models[name] = model

    def names(self) -> list[str]:
        """The names tried so far (loaded or failed): empty right after import."""
        with self._lock:
            return sorted(self._models)

    def clear(self) -> None:
        """Forget every loaded model; the next ``get`` loads again."""
        with self._lock:
            self._models.clear()
