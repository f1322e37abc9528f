"""Customer segments: K-means on RFM plus service features, k chosen by the elbow and the silhouette.

Features are log-compressed where multiplicative and standardised, so a customer with 500
orders does not dominate the distances. k: the elbow of the inertia curve (the point farthest
from the chord between the first and last k) proposes a region; the silhouette picks within
elbow +/- 1 (within the configured range). Each segment is named from its centroid relative
to the average customer ("loyal big spenders", "at-risk regulars", ...). Fixed seeds make the
assignment deterministic for the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from bot.analytics import features as feats
from bot.analytics.config import CONFIG, SEED
from bot.ml.base import BaseModel, ModelError, load_npz, save_npz

SEGMENT_FEATURES = (
    "recency_days", "frequency", "monetary", "avg_order_value",
    "refund_rate", "complaints", "csat_mean", "negative_share",
)
LOGGED = {"recency_days", "frequency", "monetary", "avg_order_value", "complaints"}


@dataclass(frozen=True)
class KChoice:
    ks: list[int]
    inertia: list[float]
    silhouette: list[float]
    elbow: int
    chosen: int


def elbow_point(ks: list[int], inertia: list[float]) -> int:
    """The k farthest from the straight line joining the first and last points (normalised axes)."""
    x = (np.asarray(ks, float) - ks[0]) / max(ks[-1] - ks[0], 1)
    span = max(inertia[0] - inertia[-1], 1e-12)
    y = (np.asarray(inertia, float) - inertia[-1]) / span
    # chord from (0, 1) to (1, 0): distance is proportional to |x + y - 1|
    return int(ks[int(np.argmax(np.abs(x + y - 1)))])


def _name(z: dict[str, float], raw: dict[str, float]) -> str:
    """A short name from a centroid's z-scores (0 = the average customer) and raw means."""
    service = np.mean([z["complaints"], z["negative_share"], -z["csat_mean"], z["refund_rate"]])
    if raw["frequency"] < 0.5:
        noun = "prospects"
    elif raw["frequency"] < 1.5:
        noun = "one-time buyers"
    elif z["monetary"] > 0.8:
        noun = "big spenders"
    elif z["frequency"] > 0.3:
        noun = "regulars"
    else:
        noun = "occasional buyers"
    if z["recency_days"] > 1.0:
        lead = "lapsed"
    elif z["recency_days"] > 0.35:
        lead = "at-risk"
    elif z["frequency"] > 0.5 or z["monetary"] > 0.8:
        lead = "loyal"
    else:
        lead = "active"
    name = f"{lead} {noun}"
    if service > 0.6:
        name = f"unhappy {name}"
    return name


class SegmentModel(BaseModel):
    """Scaler + K-means centroids + names; ``predict`` assigns the nearest centroid."""

    kind = "segments"
    format_version = 1

    def __init__(self) -> None:
        self.names: list[str] = []
        self.k_choice: KChoice | None = None
        self.mean = self.scale = self.centroids = np.zeros(0)

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        mask = np.array([f in LOGGED for f in SEGMENT_FEATURES])
        x = np.where(mask, np.log1p(np.clip(x, 0, None)), x)
        return (x - self.mean) / self.scale

    def fit(self, x: np.ndarray, progress: Callable[[str], None] | None = None) -> Self:
        """Choose k and fit on ``x`` (rows = customers, columns = :data:`SEGMENT_FEATURES`)."""
        from sklearn.cluster import KMeans  # heavy: sklearn, only when fitting or evaluating
        from sklearn.metrics import silhouette_score  # heavy: sklearn, only when fitting or evaluating

        say = progress or (lambda _m: None)
        cfg = CONFIG.segments
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(SEGMENT_FEATURES):
            raise ValueError(f"x must be (n, {len(SEGMENT_FEATURES)})")
        k_max = min(cfg.k_max, len(x) - 1)
        if k_max < cfg.k_min:
            raise ValueError(f"need more than {cfg.k_min} customers to segment")
        mask = np.array([f in LOGGED for f in SEGMENT_FEATURES])
        xl = np.where(mask, np.log1p(np.clip(x, 0, None)), x)
        self.mean, self.scale = xl.mean(axis=0), xl.std(axis=0)
        self.scale[self.scale < 1e-9] = 1.0
        z = (xl - self.mean) / self.scale
        ks = list(range(2, k_max + 1))
        inertia, sil, fitted = [], [], {}
        sample = min(len(z), cfg.silhouette_sample)
        for k in ks:
            km = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit(z)
            fitted[k] = km
            inertia.append(float(km.inertia_))
            sil.append(float(silhouette_score(z, km.labels_, sample_size=sample, random_state=SEED)))
            say(f"segments: k={k} inertia {inertia[-1]:.0f} silhouette {sil[-1]:.3f}")
        elbow = elbow_point(ks, inertia)
        window = [k for k in ks if abs(k - elbow) <= 1 and cfg.k_min <= k] or [
            k for k in ks if k >= cfg.k_min
        ]
        chosen = max(window, key=lambda k: sil[ks.index(k)])
        self.k_choice = KChoice(ks, inertia, sil, elbow, chosen)
        say(f"segments: elbow at k={elbow}, chosen k={chosen} (best silhouette near the elbow)")
        centroids = fitted[chosen].cluster_centers_
        # stable order: by mean monetary z-score, biggest first
        order = np.argsort(-centroids[:, SEGMENT_FEATURES.index("monetary")], kind="stable")
        self.centroids = centroids[order]
        self.names = self._names(x, self.predict_scaled(z))
        return self

    def _names(self, x: np.ndarray, labels: np.ndarray) -> list[str]:
        names: list[str] = []
        for i, c in enumerate(self.centroids):
            zc = dict(zip(SEGMENT_FEATURES, c, strict=True))
            members = x[labels == i]
            raw = dict(zip(SEGMENT_FEATURES, members.mean(axis=0) if len(members) else x.mean(axis=0), strict=True))
            name = _name(zc, raw)
            if name in names:  # two similar centroids: tell them apart by value
                name = f"{name} ({'higher' if zc['monetary'] > 0 else 'lower'} value)"
            while name in names:
                name = f"{name}'"
            names.append(name)
        return names

    def predict_scaled(self, z: np.ndarray) -> np.ndarray:
        d = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Segment index (into :attr:`names`) per row."""
        if not len(self.centroids):
            raise ModelError("segment model is not fitted")
        if not len(x):
            return np.zeros(0, dtype=int)
        return self.predict_scaled(self.transform(x))

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"names": self.names, "features": list(SEGMENT_FEATURES)}
        if self.k_choice is not None:
            kc = self.k_choice
            meta["k_choice"] = {"ks": kc.ks, "inertia": kc.inertia, "silhouette": kc.silhouette,
                                "elbow": kc.elbow, "chosen": kc.chosen}
        return meta

    def _save_arrays(self, path: Path) -> None:
        save_npz(path / "segments.npz", mean=self.mean, scale=self.scale, centroids=self.centroids)

    @classmethod
    def _from_saved(cls, path: Path, meta: dict[str, Any]) -> Self:
        if meta.get("features") != list(SEGMENT_FEATURES):
            raise ModelError("segment model was trained on other features")
        arrays = load_npz(path / "segments.npz")
        model = cls()
        model.mean, model.scale, model.centroids = arrays["mean"], arrays["scale"], arrays["centroids"]
        model.names = list(meta["names"])
        if len(model.names) != len(model.centroids):
            raise ModelError("segment names do not match the centroids")
        if "k_choice" in meta:
            model.k_choice = KChoice(**meta["k_choice"])
        return model


def segment_matrix(frame: feats.FeatureFrame) -> np.ndarray:
    return frame.matrix(SEGMENT_FEATURES)


def projection(model: SegmentModel, x: np.ndarray) -> np.ndarray:
    """2-D PCA of the scaled features (for the segment plot)."""
    z = model.transform(x)
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T
