"""Churn model: numpy inference equals sklearn's, artifacts round-trip, the shop model is sane."""

import json

import numpy as np
import pytest

from bot.analytics.churn import ChurnModel
from bot.analytics.config import SEED
from bot.ml.base import ModelError


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.exponential(60, n), rng.poisson(5, n), rng.gamma(2, 100, n), rng.normal(0, 1, n)])
    logit = -0.02 * x[:, 0] + 0.3 * x[:, 1] + 0.8 * x[:, 3] - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


NAMES = ["recency_days", "frequency", "monetary", "sentiment_mean"]


def test_numpy_inference_matches_sklearn():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    model = ChurnModel(NAMES, c=0.3, n_trees=40).fit(x, y)
    p_lr, p_gb = model.predict_parts(x)
    gb = GradientBoostingClassifier(n_estimators=40, learning_rate=0.05, max_depth=3, subsample=0.8,
                                    random_state=SEED).fit(x, y)
    np.testing.assert_allclose(p_gb, gb.predict_proba(x)[:, 1], atol=1e-9)
    xl = np.where(model.log_mask, np.log1p(np.abs(x)), x)
    z = (xl - xl.mean(0)) / xl.std(0)
    lr = LogisticRegression(C=0.3, max_iter=5000).fit(z, y)
    np.testing.assert_allclose(p_lr, lr.predict_proba(z)[:, 1], atol=1e-6)


def test_blend_chosen_on_validation_and_round_trip(tmp_path):
    x, y = _data()
    xv, yv = _data(300, seed=1)
    model = ChurnModel(NAMES, n_trees=30).fit(x, y)
    w = model.choose_blend(xv, yv)
    assert 0.0 <= w <= 1.0
    loaded = ChurnModel.load(model.save(tmp_path / "churn"))
    np.testing.assert_array_equal(loaded.predict_proba(xv), model.predict_proba(xv))
    assert {p.name for p in (tmp_path / "churn").iterdir()} == {"meta.json", "churn.npz"}


def test_bad_input_and_bad_artifacts(tmp_path):
    x, y = _data(50)
    with pytest.raises(ValueError):
        ChurnModel(NAMES).fit(x[:, :2], y)
    with pytest.raises(ValueError):
        ChurnModel(NAMES).fit(x, np.zeros(len(x), dtype=int))
    with pytest.raises(ModelError):
        ChurnModel(NAMES).predict_proba(x)
    path = ChurnModel(NAMES, n_trees=5).fit(*_data(100)).save(tmp_path / "c")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "kind": "segments"}))
    with pytest.raises(ModelError):
        ChurnModel.load(path)


def test_shop_model_on_the_seeded_shop(analyzed, analytics_env):
    ev = analyzed.report.churn
    assert 0.0 <= ev["auc"] <= 1.0 and 0.0 <= ev["brier"] <= 1.0
    assert 0.0 < ev["churn_rate"] < 1.0 and ev["customers"] > 20
    assert (analyzed.var_dir / "analytics" / "churn_calibration.png").stat().st_size > 10_000
    from bot.analytics import serving

    model = serving.churn_model()
    assert model is not None and model is serving.churn_model()  # loaded once, cached
