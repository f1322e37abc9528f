"""Customer-value benchmark on CDNOW (read from the installed ``lifetimes`` package, never copied):
BG/NBD beside the articles' random forest and the naive baseline, in one run.

Calibration = the first 39 weeks (1997-01-01 .. 1997-09-30), holdout = the next 39 weeks (to
1998-06-30), time in weeks at day precision, the standard set-up of Fader, Hardie and Lee (2005). Figures:
per-customer MAE of holdout repeat purchases and the error of the holdout total, for
- BG/NBD (Concierge's model: fitted on calibration data only),
- naive baseline: each customer's calibration repeat rate x 39 weeks,
- random forest (calibration RFM -> holdout purchases). A regressor needs labelled holdouts to
  learn from, so customers are split 50/50 (seed fixed): it learns on one half and every method
  is scored on the other half ("test half"); BG/NBD and the baseline are also scored on all.
Also the Gamma-Gamma spend model: the error of the total holdout spend of repeat buyers.

    .venv/bin/python bench/clv.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import ROOT, emit, limit_threads, say

CAL_END = "1997-09-30"
OBS_END = "1998-06-30"
HOLDOUT_WEEKS = 39.0
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def load():  # noqa: ANN201 - pandas frame
    import importlib.resources

    import pandas as pd

    # lifetimes.datasets.load_dataset needs pkg_resources, which setuptools >= 81 no longer ships:
    # read the same file from the installed package with importlib.resources instead
    path = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt"
    df = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str})
    df.columns = [c.strip().lower() for c in df.columns]
    df["date"] = pd.to_datetime(df["date"].astype(str), format="%Y%m%d")
    return df


def cal_holdout(tx, value_col: str):  # noqa: ANN001, ANN201 - pandas frames
    """Calibration/holdout summary; days -> weeks at day precision (as in the paper)."""
    from lifetimes.utils import calibration_and_holdout_data

    data = calibration_and_holdout_data(
        tx, "customer_id", "date", calibration_period_end=CAL_END, observation_period_end=OBS_END, freq="D",
        monetary_value_col=value_col,
    )
    for col in ("recency_cal", "T_cal", "duration_holdout"):
        data[col] = data[col] / 7.0
    return data.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T",
                                "monetary_value_cal": "monetary_value"})


def paper_sample_check() -> dict:
    """The paper's 1/10 sample (CDNOW_sample.txt, 2,357 customers) through the same code: its
    parameters must match the published ones, which shows the fitting is right."""
    import importlib.resources

    import pandas as pd

    from bot.analytics.clv import ClvModel

    path = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    tx = pd.read_csv(path, sep=r"\s+", header=None, names=["master_id", "customer_id", "date", "cds", "value"])
    tx["date"] = pd.to_datetime(tx["date"].astype(str), format="%Y%m%d")
    cal = cal_holdout(tx, "value")
    model = ClvModel(penalizer=0.0).fit(cal)
    pred = model.expected_purchases(cal, float(cal["duration_holdout"].iloc[0]))
    actual = cal["frequency_holdout"].to_numpy(float)
    return {
        "customers": len(cal),
        "bgnbd_params": {k: round(v, 3) for k, v in model.bgnbd.items()},
        "predicted_total": round(float(pred.sum()), 1),
        "actual_total": round(float(actual.sum()), 1),
        "total_error_pct": round(float(100 * (pred.sum() - actual.sum()) / actual.sum()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args(argv)
    limit_threads()
    import numpy as np

    from bot.analytics import plots
    from bot.analytics.clv import RF_FEATURES, ClvModel, random_forest
    from bot.analytics.config import SEED

    started = time.perf_counter()
    tx = load()
    say(f"CDNOW: {len(tx)} transactions, {tx['customer_id'].nunique()} customers, "
        f"{tx['date'].min().date()} .. {tx['date'].max().date()}")
    cal = cal_holdout(tx, "dollar_value")
    data = cal
    actual = data["frequency_holdout"].to_numpy(float)
    duration = float(data["duration_holdout"].iloc[0])
    say(f"calibration to {CAL_END}, holdout {duration:.0f} weeks to {OBS_END}; "
        f"{len(data)} customers, {actual.sum():.0f} holdout repeat purchases")

    model = ClvModel(penalizer=0.0).fit(cal)
    say("BG/NBD: " + ", ".join(f"{k} {v:.3f}" for k, v in model.bgnbd.items())
        + f" (published for the paper's 1/10 sample: {PUBLISHED_BGNBD}; checked below)")
    art = model.save(args.out / "cdnow_clv_model")
    model = ClvModel.load(art)  # score with the saved parameters
    pred_bg = model.expected_purchases(cal, duration)
    rate = cal["frequency"].to_numpy(float) / cal["T"].to_numpy(float).clip(min=1.0)
    pred_naive = rate * duration

    rng = np.random.default_rng(SEED)
    test = rng.random(len(cal)) < 0.5
    x = cal.loc[:, list(RF_FEATURES)].to_numpy(float)
    rf = random_forest(x[~test], actual[~test])
    pred_rf = rf.predict(x[test])

    def figures(pred: np.ndarray, act: np.ndarray) -> dict[str, float]:
        return {
            "mae": round(float(np.abs(pred - act).mean()), 4),
            "predicted_total": round(float(pred.sum()), 1),
            "actual_total": round(float(act.sum()), 1),
            "total_error_pct": round(float(100 * (pred.sum() - act.sum()) / act.sum()), 2),
        }

    results = {
        "all customers": {"bg_nbd": figures(pred_bg, actual), "naive_baseline": figures(pred_naive, actual)},
        "test half": {
            "bg_nbd": figures(pred_bg[test], actual[test]),
            "naive_baseline": figures(pred_naive[test], actual[test]),
            "random_forest": figures(pred_rf, actual[test]),
        },
    }
    # spend: Gamma-Gamma expected spend per purchase x actual holdout purchases vs actual spend
    holdout_spend = data["monetary_value_holdout"].to_numpy(float) * actual
    repeaters = (cal["frequency"] > 0).to_numpy()
    exp_value = model.expected_value(cal, duration)
    spend = {
        "predicted_total": round(float(exp_value[repeaters].sum()), 0),
        "actual_total": round(float(holdout_spend[repeaters].sum()), 0),
    }
    spend["total_error_pct"] = round(100 * (spend["predicted_total"] - spend["actual_total"])
                                     / spend["actual_total"], 2)

    # cumulative weekly repeat purchases: actual vs BG/NBD (the model's classic chart)
    weeks = np.arange(1, 79)
    start = tx["date"].min()
    first = tx.groupby("customer_id")["date"].min()
    days = tx.drop_duplicates(["customer_id", "date"])
    repeats = days[days["date"] > days["customer_id"].map(first)]
    rep_week = ((repeats["date"] - start).dt.days / 7.0).to_numpy()
    birth = ((first - start).dt.days / 7.0).to_numpy()
    actual_cum = [int((rep_week < w).sum()) for w in weeks]
    model_cum = [float(model.expected_repeat_purchases(np.clip(w - birth, 0, None)).sum()) for w in weeks]
    png_cum = plots.lines(weeks, {"actual": actual_cum, "BG/NBD": model_cum}, args.out / "clv_cdnow_cumulative.png",
                          "CDNOW cumulative repeat purchases (calibration ends week 39)", "repeat purchases")
    t = results["test half"]
    png_bars = plots.bars(
        ["MAE per customer", "total error %"],
        {k: [t[k]["mae"], abs(t[k]["total_error_pct"]) / 100] for k in ("bg_nbd", "random_forest", "naive_baseline")},
        args.out / "clv_cdnow_errors.png", "CDNOW holdout (test half): lower is better",
        "MAE (purchases) / |total error| (fraction)",
    )

    print(f"{'':18s} {'method':16s} {'MAE':>8s} {'predicted':>10s} {'actual':>9s} {'total err %':>11s}")
    for part, rows in results.items():
        for name, r in rows.items():
            print(f"{part:18s} {name:16s} {r['mae']:8.4f} {r['predicted_total']:10.1f} {r['actual_total']:9.1f} "
                  f"{r['total_error_pct']:11.2f}")
    print(f"Gamma-Gamma holdout spend of repeat buyers: predicted ${spend['predicted_total']:,.0f} vs actual "
          f"${spend['actual_total']:,.0f} ({spend['total_error_pct']:+.2f}%)")
    paper = paper_sample_check()
    print(f"paper's sample ({paper['customers']} customers), same code: BG/NBD {paper['bgnbd_params']} "
          f"(published {PUBLISHED_BGNBD}); holdout total {paper['predicted_total']:.0f} vs actual "
          f"{paper['actual_total']:.0f} ({paper['total_error_pct']:+.2f}%)")
    print(f"plots: {png_cum} {png_bars}")
    bg_all = results["all customers"]["bg_nbd"]
    emit({
        "benchmark": "clv_cdnow",
        "customers": len(cal), "calibration_end": CAL_END, "observation_end": OBS_END,
        "holdout_weeks": duration,
        "bgnbd_params": {k: round(v, 4) for k, v in model.bgnbd.items()},
        "published_bgnbd_params_paper_sample": PUBLISHED_BGNBD,
        "results": results,
        "gamma_gamma_spend": spend,
        "paper_sample_check": paper,
        "beats_baseline_mae": bg_all["mae"] < results["all customers"]["naive_baseline"]["mae"],
        "total_within_5pct": abs(bg_all["total_error_pct"]) <= 5.0,
        "plots": [str(png_cum), str(png_bars)],
        "seconds": round(time.perf_counter() - started, 1),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
