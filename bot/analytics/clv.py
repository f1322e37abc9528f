"""Customer value: expected purchases and spend over the next 12 months (BG/NBD + Gamma-Gamma).

BG/NBD (Fader, Hardie and Lee 2005) models each customer's purchase rate and the chance they
have silently left, from three numbers per customer: repeat purchases, age at the last one and
age now. Gamma-Gamma models the spend per purchase. Both come from the maintained ``lifetimes``
package; the fitted parameters (a handful of floats) are saved as JSON + ``.npz`` and scoring
uses the same package's closed forms. :func:`random_forest` is the articles' regressor, used
beside it by ``bench/clv.py``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from bot.analytics.config import CONFIG, SEED
from bot.ml.base import BaseModel, ModelError, load_npz, save_npz

BGNBD_PARAMS = ("r", "alpha", "a", "b")
GG_PARAMS = ("p", "q", "v")


def rfm_summary(transactions: pd.DataFrame, end: datetime | pd.Timestamp, freq: str = "W",
                customer_col: str = "customer_id", date_col: str = "created_at",
                value_col: str = "total") -> pd.DataFrame:
    """lifetimes' summary (frequency, recency, T, monetary_value) per customer up to ``end``.

    ``freq`` "W": recency and T in weeks at day precision (purchases on one day count once);
    "D": in days.
    """
    from lifetimes.utils import summary_data_from_transaction_data  # heavy: lifetimes, only when fitting

    summary = summary_data_from_transaction_data(
        transactions, customer_col, date_col, monetary_value_col=value_col, observation_period_end=end,
        freq="D",
    )
    if freq == "W":  # weeks at day precision: the optimiser converges on this scale, not on days
        summary["recency"] = summary["recency"] / 7.0
        summary["T"] = summary["T"] / 7.0
    return summary


class ClvModel(BaseModel):
    """BG/NBD purchase model + Gamma-Gamma spend model."""

    kind = "clv"
    format_version = 1

    def __init__(self, penalizer: float = 0.001) -> None:
        self.penalizer = penalizer
        self.bgnbd: dict[str, float] = {}
        self.gg: dict[str, float] = {}
        self.mean_spend = 0.0  # population mean spend per purchase, for customers without repeats

    def fit(self, summary: pd.DataFrame) -> Self:
        """Fit on an :func:`rfm_summary` frame."""
        if len(summary) < 10 or (summary["frequency"] > 0).sum() < 5:
            raise ValueError("need at least 10 customers, 5 of them with repeat purchases")
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        bg = self._fit_bgnbd(summary)
        gg = self._fit_gamma_gamma(repeat)
        self.bgnbd = {k: float(bg.params_[k]) for k in BGNBD_PARAMS}
        self.gg = {k: float(gg.params_[k]) for k in GG_PARAMS}
        self.mean_spend = float(repeat["monetary_value"].mean())
        return self

    def _fit_gamma_gamma(self, repeat: pd.DataFrame):  # noqa: ANN202 - lifetimes fitter
        """Gamma-Gamma spend model, with a stronger penalty when the optimiser does not converge.

        Why: on some seeded shops (dates relative to the moment of seeding) it did not converge with
        the default penalty, and the whole analytics refresh failed (a fresh-clone CI run, 2026-12-06).
        """
        from lifetimes import GammaGammaFitter  # heavy: lifetimes (pandas, autograd), only when fitting
        from lifetimes.utils import ConvergenceError  # heavy: lifetimes

        for pen in [self.penalizer] + [p for p in (0.01, 0.1, 1.0) if p > self.penalizer]:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                try:
                    return GammaGammaFitter(penalizer_coef=pen).fit(repeat["frequency"], repeat["monetary_value"])
                except ConvergenceError:
                    continue
        raise ValueError("Gamma-Gamma did not converge on this data, even with a penalty of 1.0")

    def _fit_bgnbd(self, summary: pd.DataFrame):  # noqa: ANN202 - lifetimes fitter
        """BG/NBD, with a stronger penalty when the likelihood has no interior optimum.

        When customers never seem to leave (the dropout parameters run to zero), the optimiser
        fails to converge; a larger penalty then gives the limiting model (NBD, nobody drops out).
        """
        from lifetimes import BetaGeoFitter  # heavy: lifetimes (pandas, autograd), only when fitting
        from lifetimes.utils import ConvergenceError  # heavy: lifetimes

        penalizers = [self.penalizer] + [p for p in (0.01, 0.1, 1.0) if p > self.penalizer]
        for pen in penalizers:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                try:
                    bg = BetaGeoFitter(penalizer_coef=pen).fit(summary["frequency"], summary["recency"], summary["T"])
                except ConvergenceError:
                    continue
            self.penalizer = pen
            return bg
        raise ValueError("BG/NBD did not converge on this data, even with a penalty of 1.0")

    def _fitters(self):  # noqa: ANN202 - lifetimes objects
        from lifetimes import BetaGeoFitter, GammaGammaFitter  # heavy: lifetimes (pandas, autograd), only when fitting

        if not self.bgnbd:
            raise ModelError("clv model is not fitted")
        bg, gg = BetaGeoFitter(), GammaGammaFitter()
        bg.params_ = pd.Series(self.bgnbd)
        gg.params_ = pd.Series(self.gg)
        return bg, gg

    def expected_purchases(self, summary: pd.DataFrame, horizon: float) -> np.ndarray:
        """Expected purchases in the next ``horizon`` time units (weeks for the shop)."""
        bg, _ = self._fitters()
        with np.errstate(all="ignore"):
            out = bg.conditional_expected_number_of_purchases_up_to_time(
                horizon, summary["frequency"], summary["recency"], summary["T"]
            )
        return np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0, posinf=0.0).clip(min=0.0)

    def expected_repeat_purchases(self, ages: np.ndarray) -> np.ndarray:
        """Expected repeat purchases of a new customer by each age (unconditional: for tracking charts)."""
        bg, _ = self._fitters()
        return np.asarray(bg.expected_number_of_purchases_up_to_time(pd.Series(np.asarray(ages, float))), float)

    def expected_spend(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected spend per purchase (Gamma-Gamma; shrunk to the mean for few purchases)."""
        _, gg = self._fitters()
        freq = summary["frequency"].to_numpy(float)
        money = summary["monetary_value"].to_numpy(float)
        with np.errstate(all="ignore"):
            est = np.asarray(gg.conditional_expected_average_profit(summary["frequency"], summary["monetary_value"]))
        return np.where((freq > 0) & (money > 0) & np.isfinite(est), est, self.mean_spend)

    def expected_value(self, summary: pd.DataFrame, horizon: float) -> np.ndarray:
        """Expected spend over the horizon (undiscounted: one year is short)."""
        return self.expected_purchases(summary, horizon) * self.expected_spend(summary)

    def _meta(self) -> dict[str, Any]:
        return {"bgnbd": self.bgnbd, "gamma_gamma": self.gg, "mean_spend": self.mean_spend,
                "penalizer": self.penalizer}

    def _save_arrays(self, path: Path) -> None:
        save_npz(path / "clv.npz", bgnbd=np.array([self.bgnbd[k] for k in BGNBD_PARAMS]),
                 gamma_gamma=np.array([self.gg[k] for k in GG_PARAMS]))

    @classmethod
    def _from_saved(cls, path: Path, meta: dict[str, Any]) -> Self:
        arrays = load_npz(path / "clv.npz")
        model = cls(float(meta["penalizer"]))
        model.bgnbd = dict(zip(BGNBD_PARAMS, map(float, arrays["bgnbd"]), strict=True))
        model.gg = dict(zip(GG_PARAMS, map(float, arrays["gamma_gamma"]), strict=True))
        if not all(np.isfinite(list(model.bgnbd.values()))) or min(model.bgnbd.values()) <= 0:
            raise ModelError("clv parameters must be positive")
        model.mean_spend = float(meta["mean_spend"])
        return model


@dataclass(frozen=True)
class CustomerValue:
    customer_id: int
    expected_purchases: float
    expected_value: float


def score_shop(model: ClvModel, transactions: pd.DataFrame, now: datetime,
               customer_ids: list[int]) -> dict[int, CustomerValue]:
    """Expected purchases and value over the configured horizon for each customer (0 without orders)."""
    horizon = CONFIG.clv_horizon_days / 7.0  # the summary is in weeks
    out = {cid: CustomerValue(cid, 0.0, 0.0) for cid in customer_ids}
    if not len(transactions):
        return out
    summary = rfm_summary(transactions, now)
    summary = summary[summary.index.isin(customer_ids)]
    n = model.expected_purchases(summary, horizon)
    v = n * model.expected_spend(summary)
    for cid, ni, vi in zip(summary.index, n, v, strict=True):
        out[int(cid)] = CustomerValue(int(cid), float(ni), float(vi))
    return out


def fit_shop(transactions: pd.DataFrame, now: datetime,
             progress: Callable[[str], None] | None = None) -> ClvModel:
    """Fit BG/NBD + Gamma-Gamma on every purchase up to ``now`` (time unit: weeks)."""
    say = progress or (lambda _m: None)
    summary = rfm_summary(transactions, now)
    model = ClvModel().fit(summary)
    say("clv: BG/NBD " + ", ".join(f"{k} {v:.3f}" for k, v in model.bgnbd.items())
        + "; Gamma-Gamma " + ", ".join(f"{k} {v:.3f}" for k, v in model.gg.items()))
    return model


RF_FEATURES = ("frequency", "recency", "T", "monetary_value")


def random_forest(x: np.ndarray, y: np.ndarray, n_trees: int = 300):  # noqa: ANN201 - sklearn estimator
    """The articles' regressor: a random forest from RFM features to future purchases or value."""
    from sklearn.ensemble import RandomForestRegressor  # heavy: sklearn, only when fitting or evaluating

    return RandomForestRegressor(n_estimators=n_trees, min_samples_leaf=5, random_state=SEED, n_jobs=1).fit(x, y)
