"""Churn risk: who will not buy again within the horizon (the articles' logistic regression, plus trees).

The model blends a logistic regression on scaled, log-compressed features with a small
gradient-boosted tree ensemble (sklearn fits both; the weight of each is chosen on validation
data). Both are exported to plain arrays and scored with numpy, so the saved model is ``.npz`` +
JSON (no pickle) and gives the same numbers after loading.

On the shop: label = no purchase in the ``horizon_days`` after a cutoff, features from before it
(:mod:`bot.analytics.features`). Training stacks several earlier cutoffs; the evaluation uses the
latest complete one (labels up to today), which training never saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
from sqlalchemy.orm import Session

from bot.analytics import features as feats
from bot.analytics import plots
from bot.analytics.config import CONFIG, SEED
from bot.ml.base import BaseModel, ModelError, load_npz, save_npz

log = logging.getLogger(__name__)

# Features whose scale is multiplicative (counts, money, days): log1p before scaling.
LOG_FEATURES = {
    "recency_days", "frequency", "monetary", "avg_order_value", "tenure_days", "orders_90d", "gap_ratio",
    "refunds", "cancelled", "tickets", "complaints", "csat_count",
}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


class ChurnModel(BaseModel):
    """Logistic regression + gradient boosting blend with numpy inference."""

    kind = "churn"
    format_version = 1

    def __init__(self, feature_names: list[str] | tuple[str, ...], log_features: set[str] | None = None,
                 c: float = 0.3, n_trees: int = 150, learning_rate: float = 0.05, max_depth: int = 3,
                 blend: float = 0.5) -> None:
        self.feature_names = list(feature_names)
        logs = LOG_FEATURES if log_features is None else log_features
        self.log_mask = np.array([n in logs for n in self.feature_names])
        self.c, self.n_trees, self.learning_rate, self.max_depth = c, n_trees, learning_rate, max_depth
        self.blend = blend  # weight of the logistic regression; 1 - blend for the trees
        self._arrays: dict[str, np.ndarray] = {}

    # -- features ------------------------------------------------------------------------
    def _linear_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        x = np.where(self.log_mask, np.sign(x) * np.log1p(np.abs(x)), x)
        return (x - self._arrays["mean"]) / self._arrays["scale"]

    # -- training ------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        """Fit both parts on ``x`` (n, features) and 0/1 labels ``y``."""
        from sklearn.ensemble import GradientBoostingClassifier  # heavy: sklearn, only when fitting or evaluating
        from sklearn.linear_model import LogisticRegression  # heavy: sklearn, only when fitting or evaluating

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names) or len(x) != len(y):
            raise ValueError(f"x must be (n, {len(self.feature_names)}) with one label per row")
        if len(set(y.tolist())) < 2:
            raise ValueError("churn labels need both classes")
        xl = np.where(self.log_mask, np.sign(x) * np.log1p(np.abs(x)), x)
        mean, scale = xl.mean(axis=0), xl.std(axis=0)
        scale[scale < 1e-9] = 1.0
        self._arrays = {"mean": mean, "scale": scale}
        lr = LogisticRegression(C=self.c, max_iter=5000).fit((xl - mean) / scale, y)
        self._arrays["coef"] = lr.coef_[0].astype(np.float64)
        self._arrays["intercept"] = np.array([lr.intercept_[0]])
        gb = GradientBoostingClassifier(
            n_estimators=self.n_trees, learning_rate=self.learning_rate, max_depth=self.max_depth,
            subsample=0.8, random_state=SEED,
        ).fit(x, y)
        self._export_trees(gb, x[:1])
        return self

    def _export_trees(self, gb: Any, x0: np.ndarray) -> None:  # noqa: ANN401 - sklearn estimator
        trees = [est[0].tree_ for est in gb.estimators_]
        width = max(t.node_count for t in trees)
        shape = (len(trees), width)
        feature = np.zeros(shape, dtype=np.int32)
        threshold = np.zeros(shape)
        left = np.full(shape, -1, dtype=np.int32)
        right = np.full(shape, -1, dtype=np.int32)
        value = np.zeros(shape)
        for i, t in enumerate(trees):
            n = t.node_count
            feature[i, :n] = np.maximum(t.feature, 0)
            threshold[i, :n] = t.threshold
            left[i, :n] = t.children_left
            right[i, :n] = t.children_right
            value[i, :n] = t.value[:, 0, 0]
        self._arrays.update(t_feature=feature, t_threshold=threshold, t_left=left, t_right=right, t_value=value)
        leaves = sum(float(np.ravel(t.predict(x0.astype(np.float32)))[0]) for t in trees)
        init = float(np.ravel(gb.decision_function(x0))[0] - self.learning_rate * leaves)
        self._arrays["gb_init"] = np.array([init])

    # -- scoring -------------------------------------------------------------------------
    def _tree_margin(self, x: np.ndarray) -> np.ndarray:
        a = self._arrays
        x = np.asarray(x, dtype=np.float32).astype(np.float64)  # sklearn compares in float32
        rows = np.arange(len(x))
        total = np.full(len(x), a["gb_init"][0])
        for i in range(a["t_feature"].shape[0]):
            node = np.zeros(len(x), dtype=np.int64)
            for _ in range(self.max_depth + 1):
                left = a["t_left"][i, node]
                leaf = left < 0
                if leaf.all():
                    break
                go_left = x[rows, a["t_feature"][i, node]] <= a["t_threshold"][i, node]
                node = np.where(leaf, node, np.where(go_left, left, a["t_right"][i, node]))
            total += self.learning_rate * a["t_value"][i, node]
        return total

    def predict_parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logistic regression probability, gradient boosting probability)."""
        if not self._arrays:
            raise ModelError("churn model is not fitted")
        p_lr = _sigmoid(self._linear_input(x) @ self._arrays["coef"] + self._arrays["intercept"][0])
        return p_lr, _sigmoid(self._tree_margin(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Churn probability per row."""
        p_lr, p_gb = self.predict_parts(x)
        return self.blend * p_lr + (1 - self.blend) * p_gb

    def choose_blend(self, x_val: np.ndarray, y_val: np.ndarray) -> float:
        """Pick the blend weight with the best validation ROC AUC (never the test set)."""
        from sklearn.metrics import roc_auc_score  # heavy: sklearn, only when fitting or evaluating

        p_lr, p_gb = self.predict_parts(x_val)
        grid = np.linspace(0, 1, 11)
        aucs = [roc_auc_score(y_val, w * p_lr + (1 - w) * p_gb) for w in grid]
        self.blend = float(grid[int(np.argmax(aucs))])
        return self.blend

    # -- persistence ---------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "feature_names": self.feature_names,
            "log_mask": self.log_mask.tolist(),
            "c": self.c, "n_trees": self.n_trees, "learning_rate": self.learning_rate,
            "max_depth": self.max_depth, "blend": self.blend,
        }

    def _save_arrays(self, path: Path) -> None:
        save_npz(path / "churn.npz", **self._arrays)

    @classmethod
    def _from_saved(cls, path: Path, meta: dict[str, Any]) -> Self:
        names = meta["feature_names"]
        model = cls(names, {n for n, m in zip(names, meta["log_mask"], strict=True) if m}, meta["c"],
                    meta["n_trees"], meta["learning_rate"], meta["max_depth"], meta["blend"])
        model._arrays = load_npz(path / "churn.npz")
        if model._arrays["coef"].shape != (len(names),):
            raise ModelError("churn coefficients do not match the feature names")
        return model


# -- the shop -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChurnEvaluation:
    """How the shop model did on the latest complete cutoff (unseen in training)."""

    cutoff: datetime
    customers: int
    churn_rate: float
    auc: float
    auc_recency_baseline: float  # ranking by recency alone
    auc_logistic_only: float
    brier: float
    calibration_png: str | None


def _snapshot(session: Session, cutoff: datetime, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, customer ids) for customers with at least one purchase before ``cutoff``."""
    ff = feats.compute(session, cutoff)
    f = ff.frame[ff.frame["frequency"] > 0]
    bought = feats.order_after(session, cutoff, horizon)
    y = (~f.index.isin(bought.index)).astype(int)
    return f.loc[:, list(feats.FEATURES)].to_numpy(float), y, f.index.to_numpy()


def _stack(session: Session, cutoffs: list[datetime], horizon: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [_snapshot(session, c, horizon) for c in cutoffs]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train_shop_model(session: Session, now: datetime, plot_dir: Path | None = None,
                     progress: Callable[[str], None] | None = None) -> tuple[ChurnModel, ChurnEvaluation]:
    """Fit and evaluate on the shop, then refit on the latest data for scoring today.

    Evaluation: trained on cutoffs now-2h, now-3h, ... ; tested at now-h (labels = the last h days).
    Scoring model: the same recipe moved one horizon later (cutoffs now-h, now-2h, ...).
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score  # heavy: sklearn, only when fitting or evaluating

    say = progress or (lambda _m: None)
    cfg = CONFIG.churn
    h = timedelta(days=cfg.horizon_days)
    eval_cut = now - h
    train_cuts = [now - h * (k + 2) for k in range(cfg.train_cutoffs)]
    say(f"churn: training on cutoffs {', '.join(c.date().isoformat() for c in train_cuts)}")
    x_tr, y_tr = _stack(session, train_cuts, cfg.horizon_days)
    x_te, y_te, _ = _snapshot(session, eval_cut, cfg.horizon_days)
    model = ChurnModel(feats.FEATURES).fit(x_tr, y_tr)
    if len(set(y_te.tolist())) < 2:
        raise ValueError("the evaluation cutoff has a single class; the shop needs more history")
    prob = model.predict_proba(x_te)
    p_lr, _ = model.predict_parts(x_te)
    recency = x_te[:, feats.FEATURES.index("recency_days")]
    png = None
    if plot_dir is not None:
        png = str(plots.calibration(prob, y_te, plot_dir / "churn_calibration.png",
                                    f"Shop churn, cutoff {eval_cut.date()} ({cfg.horizon_days}-day horizon)",
                                    extra={"logistic regression": p_lr}))
    ev = ChurnEvaluation(
        cutoff=eval_cut, customers=len(y_te), churn_rate=float(y_te.mean()),
        auc=float(roc_auc_score(y_te, prob)), auc_recency_baseline=float(roc_auc_score(y_te, recency)),
        auc_logistic_only=float(roc_auc_score(y_te, p_lr)), brier=float(brier_score_loss(y_te, prob)),
        calibration_png=png,
    )
    say(f"churn: ROC AUC {ev.auc:.3f} at {eval_cut.date()} (recency alone {ev.auc_recency_baseline:.3f}, "
        f"logistic regression alone {ev.auc_logistic_only:.3f}; churn rate {ev.churn_rate:.1%})")
    x_fin, y_fin = _stack(session, [now - h * (k + 1) for k in range(cfg.train_cutoffs)], cfg.horizon_days)
    final = ChurnModel(feats.FEATURES, blend=model.blend).fit(x_fin, y_fin)
    return final, ev


def score(model: ChurnModel, frame: feats.FeatureFrame) -> dict[int, float]:
    """customer_id -> churn probability over the next horizon, from features at the frame's cutoff."""
    if not len(frame.frame):
        return {}
    prob = model.predict_proba(frame.matrix(tuple(model.feature_names)))
    return {int(cid): float(p) for cid, p in zip(frame.frame.index, prob, strict=True)}
