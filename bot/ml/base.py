"""Small common interface for Concierge models: fit, predict/recommend, save, load.

Artifacts are a directory holding ``meta.json`` (kind, format version, hyper-parameters)
plus arrays in ``.safetensors`` or ``.npz`` (loaded with ``allow_pickle=False``). Pickle is
never used, so a tampered artifact cannot execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

META_FILE = "meta.json"


class ModelError(RuntimeError):
    """A model artifact is missing, corrupt, or of the wrong kind/version."""


class BaseModel(ABC):
    """Base class: subclasses define ``kind``, ``fit``, ``_save_arrays`` and ``_from_saved``."""

    kind: ClassVar[str] = "base"
    format_version: ClassVar[int] = 1

    @abstractmethod
    def fit(self, *args: Any, **kwargs: Any) -> Self:
        """Train in place and return ``self``."""

    @abstractmethod
    def _meta(self) -> dict[str, Any]:
        """JSON-serialisable hyper-parameters/metadata needed to rebuild the model."""

    @abstractmethod
    def _save_arrays(self, path: Path) -> None:
        """Write weights/arrays into the directory ``path``."""

    @classmethod
    @abstractmethod
    def _from_saved(cls, path: Path, meta: dict[str, Any]) -> Self:
        """Rebuild an instance from ``path`` and its metadata."""

    def save(self, path: str | Path) -> Path:
        """Save into directory ``path`` atomically (written to a temp dir, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            os.chmod(tmp, 0o755)  # noqa: S103 - artifacts are world-readable like any build output
            self._save_arrays(tmp)
            meta = {"kind": self.kind, "format_version": self.format_version, **self._meta()}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                _rmtree(old)
                os.replace(path, old)
                os.replace(tmp, path)
                _rmtree(old)
            else:
                os.replace(tmp, path)
        finally:
            _rmtree(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a model saved by :meth:`save`; raises :class:`ModelError` when unusable."""
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise ModelError(f"no {cls.kind} model at {path}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"unreadable model metadata at {meta_path}: {exc}") from exc
        if meta.get("kind") != cls.kind:
            raise ModelError(f"{path} holds a {meta.get('kind')!r} model, expected {cls.kind!r}")
        if meta.get("format_version") != cls.format_version:
            raise ModelError(f"{path}: format version {meta.get('format_version')} != {cls.format_version}")
        try:
            return cls._from_saved(path, meta)
        except ModelError:
            raise
        except Exception as exc:  # corrupt arrays, shape mismatch, ...
            raise ModelError(f"cannot load {cls.kind} model from {path}: {exc}") from exc


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Save plain numeric arrays (no object arrays, so no pickle on load)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; refusing to save (would need pickle)")
    np.savez(path, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load arrays saved by :func:`save_npz`, refusing pickled content."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
