"""Recompute every customer's analytics and the feedback topics (``python -m bot.analytics``).

One transaction: features -> churn model (trained on earlier cutoffs, evaluated on the latest
complete one) -> BG/NBD + Gamma-Gamma value -> segments -> lifecycle -> queue priority ->
``customer_analytics``; then feedback topics -> ``feedback_mentions``. Models are saved under
``<models_dir>/analytics/`` (.npz + JSON), charts under ``<var_dir>/analytics/``, and the run's
figures in ``<var_dir>/analytics/summary.json`` for the dashboard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from bot.analytics import churn, clv, lifecycle, plots, priority, segments, serving, topics
from bot.analytics import features as feats
from bot.analytics.serving import model_dir
from bot.db import analytics as repo
from bot.db.base import utcnow
from bot.db.session import get_engine, session_scope
from bot.settings import get_settings

CENT = Decimal("0.01")


def output_dir() -> Path:
    """Where the charts and summary.json of the last refresh go."""
    return get_settings().var_dir / "analytics"


@dataclass
class RefreshReport:
    computed_at: datetime
    customers: int = 0
    churn: dict = field(default_factory=dict)
    clv: dict = field(default_factory=dict)
    segments: dict = field(default_factory=dict)
    lifecycle: dict = field(default_factory=dict)
    topics: dict = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    seconds: float = 0.0


def percentiles(values: np.ndarray) -> np.ndarray:
    """Rank of each value among all, 0..1 (ties share the average rank)."""
    from scipy.stats import rankdata  # heavy: scipy.stats, loaded only when a refresh ranks values

    if len(values) <= 1:
        return np.full(len(values), 0.5)
    return (rankdata(values) - 1) / (len(values) - 1)


def refresh_customers(session: Session, now: datetime, say: Callable[[str], None],
                      models_path: Path, out_path: Path) -> RefreshReport:
    """Fit, score and store every customer's analytics (the caller commits)."""
    report = RefreshReport(computed_at=now)
    say("features: computing per-customer features ...")
    frame = feats.compute(session, now)
    ids = [int(c) for c in frame.frame.index]
    report.customers = len(ids)
    if len(ids) < 10:
        raise ValueError(f"only {len(ids)} active customers: too few to analyse")

    churn_model, ev = churn.train_shop_model(session, now, plot_dir=out_path, progress=say)
    churn_model.save(models_path / "churn")
    risk = churn.score(churn_model, frame)
    report.churn = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(ev).items()}
    if ev.calibration_png:
        report.plots.append(ev.calibration_png)

    tx = feats.purchases(session, before=now)
    value_model = clv.fit_shop(tx, now, progress=say)
    value_model.save(models_path / "clv")
    values = clv.score_shop(value_model, tx, now, ids)
    report.clv = {"bgnbd": value_model.bgnbd, "gamma_gamma": value_model.gg,
                  "total_expected_value_12m": round(sum(v.expected_value for v in values.values()), 2),
                  "total_expected_purchases_12m": round(sum(v.expected_purchases for v in values.values()), 1)}
    say(f"clv: expected 12-month value ${report.clv['total_expected_value_12m']:,.0f} from "
        f"{report.clv['total_expected_purchases_12m']:,.0f} purchases")

    x = segments.segment_matrix(frame)
    seg_model = segments.SegmentModel().fit(x, progress=say)
    seg_model.save(models_path / "segments")
    labels = seg_model.predict(x)
    kc = seg_model.k_choice
    assert kc is not None
    report.plots.append(str(plots.k_choice(kc.ks, kc.inertia, kc.silhouette, kc.elbow, kc.chosen,
                                           out_path / "segments_k.png")))
    value_arr = np.array([values[c].expected_value for c in ids])
    sizes = [int((labels == i).sum()) for i in range(len(seg_model.names))]
    seg_values = [float(value_arr[labels == i].mean()) if sizes[i] else 0.0 for i in range(len(sizes))]
    report.plots.append(str(plots.segments(seg_model.names, sizes, seg_values, segments.projection(seg_model, x),
                                           labels, out_path / "segments.png")))
    report.segments = {"k": kc.chosen, "elbow": kc.elbow,
                       "silhouette": round(kc.silhouette[kc.ks.index(kc.chosen)], 4),
                       "sizes": dict(zip(seg_model.names, sizes, strict=True))}
    say("segments: " + ", ".join(f"{n} ({s})" for n, s in zip(seg_model.names, sizes, strict=True)))

    stages = lifecycle.current_stages(session, now, risk)
    pct = dict(zip(ids, percentiles(value_arr), strict=True))
    tiers = frame.tiers
    rows = []
    for i, cid in enumerate(ids):
        r = min(max(risk.get(cid, 0.0), 0.0), 1.0)
        p = float(pct[cid])
        f = frame.frame.loc[cid]
        rows.append({
            "customer_id": cid,
            "segment": seg_model.names[int(labels[i])],
            "segment_index": int(labels[i]),
            "churn_risk": r,
            "expected_purchases_12m": values[cid].expected_purchases,
            "expected_value_12m": Decimal(str(values[cid].expected_value)).quantize(CENT),
            "value_percentile": p,
            "lifecycle_stage": stages.get(cid, "new"),
            "priority_score": priority.score(str(tiers.get(cid, "standard")), p, r),
            "recency_days": float(f["recency_days"]),
            "frequency": int(f["frequency"]),
            "monetary": Decimal(str(f["monetary"])).quantize(CENT),
            "computed_at": now,
        })
    repo.replace_all(session, rows)
    report.lifecycle = {s: sum(1 for r in rows if r["lifecycle_stage"] == s) for s in lifecycle.STAGE_LABELS}
    say("lifecycle: " + ", ".join(f"{lifecycle.STAGE_LABELS[s]} {n}" for s, n in report.lifecycle.items()))
    history = lifecycle.stage_counts_over_time(session, now, periods=12)
    series = {label: [h.counts[s] for h in history] for s, label in lifecycle.STAGE_LABELS.items()}
    report.plots.append(str(plots.lines([h.at for h in history], series, out_path / "lifecycle.png",
                                        "Customers per lifecycle stage (monthly)", "customers")))
    return report


def refresh(url: str | None = None, progress: Callable[[str], None] | None = print, with_topics: bool = True,
            embed: Callable | None = None, now: datetime | None = None) -> RefreshReport:
    """Recompute and store everything; returns the figures (also written to summary.json)."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    now = (now or utcnow()).replace(microsecond=0)
    check_schema(url)
    models_path, out_path = model_dir(), output_dir()
    out_path.mkdir(parents=True, exist_ok=True)
    with session_scope(url) as session:
        report = refresh_customers(session, now, say, models_path, out_path)
        if with_topics:
            say("topics: extracting aspects from complaints, CSAT comments and negative turns ...")
            result = topics.refresh(session, now, progress=say, embed=embed)
            top = sorted(result.topics.items(), key=lambda kv: -kv[1])[:10]
            report.topics = {"texts": result.texts, "mentions": len(result.mentions), "top": dict(top)}
            say("topics: " + ", ".join(f"{t} ({n})" for t, n in top[:6]))
            if top:
                report.plots.append(str(plots.bars([t for t, _ in top[:8]], {"mentions": [n for _, n in top[:8]]},
                                                   out_path / "topics.png", "Top feedback topics", "mentions")))
    report.seconds = round(time.perf_counter() - started, 1)
    summary = asdict(report)
    summary["computed_at"] = now.isoformat()
    (out_path / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    serving.clear()  # this process serves the new models from now on
    say(f"analytics refreshed for {report.customers} customers in {report.seconds:.1f}s; "
        f"charts in {out_path}")
    return report


def is_missing(url: str | None = None) -> bool:
    """True when no analytics were stored yet or a model file is missing (``--if-missing``)."""
    check_schema(url)
    paths = [model_dir() / name / "meta.json" for name in ("churn", "clv", "segments")]
    if not all(p.is_file() for p in paths):
        return True
    with session_scope(url) as session:
        return repo.count(session) == 0


def check_schema(url: str | None = None) -> None:
    """Raise ValueError (a clear message, no stack trace) when the analytics tables are missing."""
    names = set(inspect(get_engine(url)).get_table_names())
    missing = {"customers", "orders", "customer_analytics", "feedback_mentions"} - names
    if missing:
        raise ValueError(
            f"the database lacks {', '.join(sorted(missing))}: run `make migrate`; a database migrated while "
            "revision 0004 was an empty placeholder must be re-created (remove var/concierge.db, then `make db`)"
        )
