"""A calibrated softmax head for sentiment on the frozen MiniLM features, in numpy.

Why numpy and not the old torch model: the Rasa runtime has no torch, and the encoder the
NLU pipeline already runs (ONNX, ``onnx_runtime``) gives the features; what sentiment needs on
top is one matrix product. Training is scikit-learn's multinomial logistic regression (seconds),
then **temperature scaling** (Guo et al. 2017): one scalar T fitted on a validation set by
minimising the negative log-likelihood of ``softmax(logits / T)``. T changes how sure the
model says it is, never which label wins, so thresholds on the probabilities (the upset rule)
mean what they say. ``expected_calibration_error`` measures it (10 equal-width confidence bins).

Artifacts: ``.npz`` (weights, bias, temperature; loaded without pickle) and a JSON of metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
WEIGHTS_FILE = "sentiment_head.npz"
META_FILE = "sentiment_head.json"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def label_indices(labels: Sequence[str]) -> np.ndarray:
    """Label names -> indices into :data:`LABELS` (raises on an unknown label)."""
    index = {name: i for i, name in enumerate(LABELS)}
    unknown = sorted({lab for lab in labels if lab not in index})
    if unknown:
        raise ValueError(f"unknown sentiment labels {unknown}; expected {list(LABELS)}")
    return np.array([index[lab] for lab in labels], dtype=np.int64)


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL of the true labels under ``softmax(logits / temperature)``."""
    z = logits / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the validation NLL (searched on log T in [1/20, 20])."""
    from scipy.optimize import minimize_scalar  # heavy: scipy.optimize, only when calibrating

    if len(y) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, y, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: the gap between confidence (top probability) and accuracy, averaged over equal-width
    confidence bins weighted by how many predictions fall in each."""
    if len(y) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def reliability(probabilities: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (for reliability diagrams)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(inside.sum()),
                "confidence": float(confidence[inside].mean()) if inside.any() else 0.0,
                "accuracy": float(correct[inside].mean()) if inside.any() else 0.0,
            }
        )
    return out


@dataclass
class SentimentHead:
    """Linear softmax over sentence features, with a calibration temperature."""

    weights: np.ndarray  # [dim, 3]
    bias: np.ndarray  # [3]
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, features: np.ndarray, labels: Sequence[str], c: float = 1.0, max_iter: int = 3000, seed: int = 42
    ) -> SentimentHead:
        """Multinomial logistic regression (L2, strength 1/c) on ``features``; temperature 1."""
        from sklearn.linear_model import LogisticRegression  # heavy: sklearn, only when training

        y = label_indices(labels)
        if len(set(y.tolist())) < len(LABELS):
            raise ValueError("sentiment training data needs examples of all three labels")
        model = LogisticRegression(C=float(c), max_iter=int(max_iter), random_state=seed)
        model.fit(np.asarray(features, dtype=np.float64), y)
        return cls(
            weights=model.coef_.T.astype(np.float32).copy(),
            bias=model.intercept_.astype(np.float32).copy(),
            info={"n_train": int(len(y)), "c": float(c)},
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw scores [n, 3] (before temperature)."""
        return np.asarray(features, dtype=np.float32) @ self.weights + self.bias

    def probabilities(self, features: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Class probabilities [n, 3] in the order of :data:`LABELS`."""
        logits = self.logits(features)
        return softmax(logits / (self.temperature if calibrated else 1.0))

    def calibrate(self, features: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
        """Fits the temperature on a validation set; returns NLL and ECE before and after."""
        y = label_indices(labels)
        logits = self.logits(features)
        before = softmax(logits)
        self.temperature = fit_temperature(logits, y)
        after = softmax(logits / self.temperature)
        report = {
            "n_validation": int(len(y)),
            "temperature": round(self.temperature, 4),
            "validation_accuracy": round(float((after.argmax(1) == y).mean()), 4) if len(y) else 0.0,
            "validation_nll_before": round(negative_log_likelihood(logits, y), 4),
            "validation_nll_after": round(negative_log_likelihood(logits, y, self.temperature), 4),
            "validation_ece_before": round(expected_calibration_error(before, y), 4),
            "validation_ece_after": round(expected_calibration_error(after, y), 4),
        }
        self.info.update(report)
        return report

    def save(self, folder: Path, extra: Optional[dict[str, Any]] = None) -> None:
        """Weights as ``.npz`` (no pickle) and metadata as JSON in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / WEIGHTS_FILE,
            weights=self.weights,
            bias=self.bias,
            temperature=np.array([self.temperature], dtype=np.float64),
        )
        meta = {"labels": list(LABELS), **self.info, **(extra or {})}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> tuple[SentimentHead, dict[str, Any]]:
        """The head and its metadata (raises ``ValueError``/``OSError`` when unusable)."""
        meta = json.loads((folder / META_FILE).read_text())
        if tuple(meta.get("labels", ())) != LABELS:
            raise ValueError(f"unexpected sentiment labels {meta.get('labels')}")
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:
            weights, bias = data["weights"].astype(np.float32), data["bias"].astype(np.float32)
            temperature = float(data["temperature"][0])
        if weights.ndim != 2 or weights.shape[1] != len(LABELS) or bias.shape != (len(LABELS),):
            raise ValueError(f"sentiment head has shape {weights.shape}/{bias.shape}")
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"bad temperature {temperature}")
        return cls(weights, bias, temperature, meta), meta
