"""Per-customer behaviour features at a cutoff instant, shared by segments, churn, value and lifecycle.

Everything is computed from rows created strictly before ``cutoff`` so that a model trained on
an earlier cutoff never sees what happened after it (no leakage). Service features come from
``support_tickets``, ``refunds``, ``feedback`` (CSAT) and the customer's turns: the CRM's
``turns`` table (redacted conversation records) when it exists, else the older ``interactions`` log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, inspect, select, text
from sqlalchemy.orm import Session

from bot.db.models import Customer, Feedback, Interaction, Order, Refund, SupportTicket

# Orders that count as purchases (a cancelled order bought nothing).
PURCHASE_STATUSES = ("pending", "processing", "shipped", "delivered", "returned")
FEATURES = (
    "recency_days",  # days since the last purchase (tenure when there is none)
    "frequency",  # purchases
    "monetary",  # money spent
    "avg_order_value",
    "tenure_days",  # days since sign-up or the first purchase, whichever is earlier
    "orders_90d",  # purchases in the last 90 days
    "gap_ratio",  # recency / mean gap between purchases (>1: later than usual)
    "refunds",
    "refund_rate",  # refunds per purchase
    "cancelled",
    "tickets",
    "complaints",
    "csat_mean",  # mean rating 1-5 (the shop's mean when the customer gave none)
    "csat_count",
    "negative_share",  # share of the customer's turns with negative sentiment
    "sentiment_mean",  # mean sentiment score of the customer's turns (-1..1, 0 when none)
)
RFM = ("recency_days", "frequency", "monetary")


@dataclass(frozen=True)
class FeatureFrame:
    """Features (one row per customer, columns :data:`FEATURES`) plus what they were computed at."""

    cutoff: datetime
    frame: pd.DataFrame  # index customer_id
    tiers: pd.Series  # customer_id -> tier

    def matrix(self, columns: tuple[str, ...] = FEATURES) -> np.ndarray:
        return self.frame.loc[:, list(columns)].to_numpy(dtype=np.float64)


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def purchases(session: Session, before: datetime | None = None) -> pd.DataFrame:
    """(customer_id, created_at, total) of purchase orders, oldest first."""
    q = select(Order.customer_id, Order.created_at, Order.total).where(Order.status.in_(PURCHASE_STATUSES))
    if before is not None:
        q = q.where(Order.created_at < before)
    rows = session.execute(q.order_by(Order.created_at, Order.id)).all()
    df = pd.DataFrame(rows, columns=["customer_id", "created_at", "total"])
    df["total"] = df["total"].astype(float)
    df["created_at"] = pd.to_datetime(df["created_at"])
    return df


CRM_TURN_COLUMNS = {"conversation_id", "customer_id", "role", "text", "sentiment_label", "sentiment_probability",
                    "event_at"}


def crm_records_present(session: Session) -> bool:
    """True when the CRM ingestor's ``conversations``/``turns`` tables exist with the expected columns."""
    insp = inspect(session.get_bind())
    if not (insp.has_table("turns") and insp.has_table("conversations")):
        return False
    return {c["name"] for c in insp.get_columns("turns")} >= CRM_TURN_COLUMNS


def customer_turns(session: Session, before: datetime, since: datetime | None = None,
                   negative_only: bool = False) -> pd.DataFrame:
    """What customers said: (customer_id, sender_id, conversation_id, text, label, score, at).

    The CRM's redacted ``turns`` when present; the older ``interactions`` log for conversations
    the CRM has not recorded (the seeded history, or a shop running without the ingestor).
    ``score`` is signed: negative sentiment below zero.
    """
    since = since or datetime(1970, 1, 1)
    cols = ["customer_id", "sender_id", "conversation_id", "text", "label", "score", "at"]
    frames = []
    crm = crm_records_present(session)
    if crm:
        neg = "AND t.sentiment_label = 'negative' " if negative_only else ""
        rows = session.execute(
            text(
                "SELECT COALESCE(t.customer_id, c.customer_id), c.sender_id, c.id, t.text, t.sentiment_label, "
                "CASE t.sentiment_label WHEN 'negative' THEN -COALESCE(t.sentiment_probability, 1) "
                "WHEN 'positive' THEN COALESCE(t.sentiment_probability, 1) ELSE 0 END, t.event_at "
                "FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                "WHERE t.role = 'user' AND t.event_at < :before AND t.event_at >= :since " + neg
            ),
            {"before": before, "since": since},
        ).all()
        frames.append(pd.DataFrame(rows, columns=cols))
    q = select(
        Interaction.customer_id, Interaction.sender_id, Interaction.text, Interaction.sentiment_label,
        Interaction.sentiment_score, Interaction.created_at,
    ).where(Interaction.role == "user", Interaction.created_at < before, Interaction.created_at >= since)
    if negative_only:
        q = q.where(Interaction.sentiment_label == "negative")
    if crm:
        q = q.where(text("interactions.sender_id NOT IN (SELECT sender_id FROM conversations)"))
    old = pd.DataFrame(session.execute(q).all(), columns=[c for c in cols if c != "conversation_id"])
    old["conversation_id"] = None
    frames.append(old[cols])
    out = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else old[cols]
    out["score"] = pd.to_numeric(out["score"], errors="coerce").fillna(0.0)
    out["at"] = pd.to_datetime(out["at"])
    return out


def ratings(session: Session, before: datetime) -> pd.DataFrame:
    """CSAT (customer_id, rating): the ``feedback`` table plus CRM conversations rated elsewhere."""
    rows = session.execute(
        select(Feedback.customer_id, Feedback.rating).where(
            Feedback.customer_id.is_not(None), Feedback.rating.is_not(None), Feedback.created_at < before
        )
    ).all()
    if crm_records_present(session):
        rows += session.execute(
            text(
                "SELECT customer_id, csat_rating FROM conversations WHERE csat_rating IS NOT NULL "
                "AND customer_id IS NOT NULL AND last_event_at < :before "
                "AND sender_id NOT IN (SELECT sender_id FROM feedback)"
            ),
            {"before": before},
        ).all()
    return pd.DataFrame(rows, columns=["customer_id", "rating"])


def compute(session: Session, cutoff: datetime, customer_ids: list[int] | None = None) -> FeatureFrame:
    """Features of every active customer (or ``customer_ids``) from what happened before ``cutoff``."""
    q = select(Customer.id, Customer.created_at, Customer.tier).where(Customer.status == "active")
    if customer_ids is not None:
        q = q.where(Customer.id.in_(customer_ids))
    cust = pd.DataFrame(session.execute(q.order_by(Customer.id)).all(), columns=["customer_id", "created_at", "tier"])
    cust = cust.set_index("customer_id")
    cut = pd.Timestamp(cutoff)
    idx = cust.index
    f = pd.DataFrame(index=idx, columns=list(FEATURES), dtype=float).fillna(0.0)

    orders = purchases(session, before=cutoff)
    orders = orders[orders["customer_id"].isin(idx)]
    g = orders.groupby("customer_id")
    first = g["created_at"].min().reindex(idx)
    last = g["created_at"].max().reindex(idx)
    count = g.size().reindex(idx).fillna(0)
    signup = pd.to_datetime(cust["created_at"]).where(lambda s: s < cut, cut)
    start = pd.concat([signup, first], axis=1).min(axis=1)
    f["tenure_days"] = _days(cut - start).clip(lower=0)
    f["recency_days"] = _days(cut - last).fillna(f["tenure_days"])
    f["frequency"] = count
    f["monetary"] = g["total"].sum().reindex(idx).fillna(0.0)
    f["avg_order_value"] = (f["monetary"] / count.where(count > 0)).fillna(0.0)
    recent = orders[orders["created_at"] >= cut - pd.Timedelta(days=90)]
    f["orders_90d"] = recent.groupby("customer_id").size().reindex(idx).fillna(0)
    span = _days(last - first)
    mean_gap = (span / (count - 1).where(count > 1)).clip(lower=1.0)
    f["gap_ratio"] = (f["recency_days"] / mean_gap).fillna(0.0).clip(upper=50.0)

    refunds = session.execute(
        select(Order.customer_id, func.count(Refund.id))
        .join(Refund, Refund.order_id == Order.id)
        .where(Refund.created_at < cutoff)
        .group_by(Order.customer_id)
    ).all()
    f["refunds"] = pd.Series(dict(refunds), dtype=float).reindex(idx).fillna(0)
    f["refund_rate"] = (f["refunds"] / count.where(count > 0)).fillna(0.0)
    cancelled = session.execute(
        select(Order.customer_id, func.count())
        .where(and_(Order.status == "cancelled", Order.created_at < cutoff))
        .group_by(Order.customer_id)
    ).all()
    f["cancelled"] = pd.Series(dict(cancelled), dtype=float).reindex(idx).fillna(0)

    tickets = session.execute(
        select(
            SupportTicket.customer_id,
            func.count(),
            func.sum(case((SupportTicket.category == "complaint", 1), else_=0)),
        )
        .where(SupportTicket.customer_id.is_not(None), SupportTicket.created_at < cutoff)
        .group_by(SupportTicket.customer_id)
    ).all()
    tk = pd.DataFrame(tickets, columns=["customer_id", "n", "complaints"]).set_index("customer_id")
    f["tickets"] = tk["n"].reindex(idx).fillna(0).astype(float)
    f["complaints"] = tk["complaints"].reindex(idx).fillna(0).astype(float)

    rated = ratings(session, cutoff)
    shop_mean = float(rated["rating"].mean()) if len(rated) else 4.0
    rg = rated.groupby("customer_id")["rating"]
    f["csat_mean"] = rg.mean().reindex(idx).fillna(shop_mean)
    f["csat_count"] = rg.size().reindex(idx).fillna(0)

    turns = customer_turns(session, cutoff)
    turns = turns[turns["customer_id"].notna()]
    if len(turns):
        turns["neg"] = (turns["label"] == "negative").astype(float)
        turns["score"] = pd.to_numeric(turns["score"], errors="coerce").fillna(0.0)
        tg = turns.groupby("customer_id")
        f["negative_share"] = tg["neg"].mean().reindex(idx).fillna(0.0)
        f["sentiment_mean"] = tg["score"].mean().reindex(idx).fillna(0.0)
    return FeatureFrame(cutoff=cutoff, frame=f.astype(float), tiers=cust["tier"])


def order_after(session: Session, cutoff: datetime, days: int) -> pd.Series:
    """customer_id -> 1 when the customer placed a purchase in [cutoff, cutoff + days)."""
    rows = session.execute(
        select(Order.customer_id)
        .where(
            Order.status.in_(PURCHASE_STATUSES),
            Order.created_at >= cutoff,
            Order.created_at < cutoff + timedelta(days=days),
        )
        .distinct()
    ).all()
    return pd.Series(1, index=pd.Index([r[0] for r in rows], name="customer_id"), dtype=int)


