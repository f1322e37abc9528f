"""Customer lifecycle: new, active, at risk, lapsed, won back. All rules live in :func:`stage`.

A stage depends on recency and frequency of purchases (and, for today, on the churn model:
a recent customer the model expects to leave is already "at risk"). Past snapshots use the
same rules without churn risk, which only exists for today; the dashboard's counts over time
come from :func:`stage_counts_over_time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics import features as feats
from bot.analytics.config import CONFIG
from bot.db.models import LIFECYCLE_STAGES, Customer

STAGE_LABELS = {"new": "new", "active": "active", "at_risk": "at risk", "lapsed": "lapsed", "won_back": "won back"}


def stage(recency_days: float | None, frequency: int, days_since_first: float | None, tenure_days: float,
          gap_before_last_days: float | None, churn_risk: float | None = None) -> str:
    """The lifecycle stage from a customer's purchase history (the one place for these rules).

    ``recency_days``: since the last purchase; ``days_since_first``: since the first;
    ``gap_before_last_days``: between the last purchase and the one before it.
    """
    c = CONFIG.lifecycle
    if frequency <= 0 or recency_days is None:
        return "new" if tenure_days <= c.new_days else "lapsed"
    if recency_days >= c.lapsed_days:
        return "lapsed"
    if days_since_first is not None and days_since_first <= c.new_days:
        return "new"
    came_back = gap_before_last_days is not None and gap_before_last_days >= c.won_back_gap_days
    if recency_days < c.active_days and came_back:
        return "won_back"
    if recency_days >= c.active_days or (churn_risk is not None and churn_risk >= CONFIG.churn.high_risk):
        return "at_risk"
    return "active"


def _history(orders: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Per customer: last, previous and first purchase before ``at``, and the count."""
    o = orders[orders["created_at"] < at]
    if not len(o):
        return pd.DataFrame(columns=["first", "last", "prev", "n"])
    g = o.groupby("customer_id")["created_at"]
    last = g.max()
    prev = o[o["created_at"] < o["customer_id"].map(last)].groupby("customer_id")["created_at"].max()
    return pd.DataFrame({"first": g.min(), "last": last, "prev": prev.reindex(last.index), "n": g.size()})


def stages_at(orders: pd.DataFrame, signups: pd.Series, at: datetime,
              churn: dict[int, float] | None = None) -> dict[int, str]:
    """customer_id -> stage at instant ``at`` for customers signed up before it."""
    ts = pd.Timestamp(at)
    hist = _history(orders, ts)
    out: dict[int, str] = {}
    for cid, signup in signups.items():
        signup = pd.Timestamp(signup)
        if signup >= ts and cid not in hist.index:
            continue
        if cid in hist.index:
            h = hist.loc[cid]
            recency = (ts - h["last"]).total_seconds() / 86400
            since_first = (ts - h["first"]).total_seconds() / 86400
            gap = (h["last"] - h["prev"]).total_seconds() / 86400 if pd.notna(h["prev"]) else None
            n = int(h["n"])
            start = min(signup, h["first"])
        else:
            recency = since_first = gap = None
            n = 0
            start = signup
        tenure = (ts - start).total_seconds() / 86400
        out[int(cid)] = stage(recency, n, since_first, tenure, gap, (churn or {}).get(int(cid)))
    return out


def _signups(session: Session) -> pd.Series:
    rows = session.execute(select(Customer.id, Customer.created_at).where(Customer.status == "active")).all()
    return pd.Series({cid: created for cid, created in rows}, dtype="datetime64[ns]")


def current_stages(session: Session, now: datetime, churn: dict[int, float] | None = None) -> dict[int, str]:
    """Today's stage of every active customer, churn risk included."""
    return stages_at(feats.purchases(session, before=now), _signups(session), now, churn)


@dataclass(frozen=True)
class StageCounts:
    at: datetime
    counts: dict[str, int]  # every stage present, zero when empty


def stage_counts_over_time(
    session: Session, end: datetime, periods: int = 12, step_days: int = 30
) -> list[StageCounts]:
    """Customers per stage at ``periods`` snapshots ``step_days`` apart, oldest first (dashboard chart).

    Recomputed from orders with the same rules (without churn risk, which exists only for today).
    """
    periods = max(1, min(int(periods), 120))
    step_days = max(1, min(int(step_days), 365))
    orders = feats.purchases(session, before=end)
    signups = _signups(session)
    out = []
    for k in range(periods - 1, -1, -1):
        at = end - timedelta(days=step_days * k)
        st = stages_at(orders, signups, at)
        counts = dict.fromkeys(LIFECYCLE_STAGES, 0)
        for s in st.values():
            counts[s] += 1
        out.append(StageCounts(at, counts))
    return out
