"""The supervisor dashboard's queries: one function per panel, filters in, dataclasses out.

Everything is aggregated in the database (GROUP BY on indexed columns, see migration
0006_dashboard_indexes) so a request stays fast on a long history; Python only reshapes the
grouped rows. Conversations are selected by the day they started and their channel; customer
messages, tickets, handoffs and CSAT by the day they were sent or made (and the channel of
their conversation). Agent timings come from the
console's handoffs (assigned / first response / resolved). The customer analytics (segments,
churn risk, lifecycle, feedback topics) are read from what ``make analytics`` stored
(:mod:`bot.analytics.reports`).

Report metrics are Chatwoot's floor: conversations, average first response time, average
resolution time, resolutions, bot resolution rate, handoff rate and CSAT.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.models import (
    Conversation,
    CustomerAnalytics,
    Feedback,
    FeedbackMention,
    Handoff,
    SupportTicket,
    Turn,
)
from bot.intents import FALLBACK_INTENTS

__all__ = [
    "PANELS", "AgentReport", "Chart", "ConversationReport", "CsatReport", "Filters", "Panel", "TurnReport",
    "agent_report", "analytics_churn", "analytics_lifecycle", "analytics_segments", "analytics_topics",
    "channels", "compute", "conversation_report", "csat_report", "csv_rows", "parse_filters", "topic_mentions",
    "turn_report",
]

MAX_RANGE_DAYS = 731
DEFAULT_RANGE_DAYS = 30
CHANNEL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
MAX_POINTS = 1500  # customers drawn in the segment projection
SENTIMENTS = ("negative", "neutral", "positive")


class FilterError(ValueError):
    """A filter a person typed that we cannot use (the message says why)."""


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    channel: str | None = None

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min)

    def days(self) -> list[str]:
        n = (self.end - self.start).days + 1
        return [(self.start + timedelta(days=i)).isoformat() for i in range(n)]


def parse_filters(start: str | None, end: str | None, channel: str | None, today: date) -> Filters:
    """Filters from query-string values (blank: the last 30 days, all channels); FilterError otherwise."""
    try:
        end_d = date.fromisoformat(end) if end else today
        start_d = date.fromisoformat(start) if start else end_d - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    except (TypeError, ValueError):
        raise FilterError("Dates must look like 2026-01-31.") from None
    if start_d > end_d:
        raise FilterError("The start date must not be after the end date.")
    if (end_d - start_d).days + 1 > MAX_RANGE_DAYS:
        raise FilterError(f"Choose at most {MAX_RANGE_DAYS} days.")
    chan = (channel or "").strip() or None
    if chan is not None and not CHANNEL_RE.match(chan):
        raise FilterError("Unknown channel.")
    return Filters(start_d, end_d, chan)


def _day(value: object) -> str:
    """A GROUP BY date(...) value as 'YYYY-MM-DD' (SQLite gives text, PostgreSQL a date)."""
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _rate(num: int | float, den: int | float) -> float | None:
    return round(num / den, 4) if den else None


def _in_scope(f: Filters):  # noqa: ANN202 - SQLAlchemy clauses
    """The WHERE clause selecting the filtered conversations."""
    clauses = [Conversation.started_at >= f.start_at, Conversation.started_at < f.end_before]
    if f.channel is not None:
        clauses.append(Conversation.channel == f.channel)
    return clauses


def _senders_in_channel(f: Filters):  # noqa: ANN202
    """Sender ids (the Rasa conversation ids tickets and feedback carry) of the channel's conversations."""
    return select(Conversation.sender_id).where(Conversation.channel == f.channel)


def channels(session: Session) -> list[str]:
    """Channels seen in the CRM (the filter's choices)."""
    rows = session.scalars(select(Conversation.channel).where(Conversation.channel.is_not(None)).distinct())
    return sorted(r for r in rows if r)


# ---------------------------------------------------------------- conversations
@dataclass
class ConversationReport:
    conversations: int
    closed: int
    open: int  # still open, with the bot or with a person
    resolved: int  # the bot finished the customer's task (bot resolutions)
    escalated: int  # handed to a person, still open (a live handoff) or closed
    fallback: int  # ended on a message the bot did not understand
    abandoned: int
    bot_resolution_rate: float | None  # resolved / closed
    containment_rate: float | None  # closed without a person / closed
    handoff_rate: float | None  # escalated (open or closed) / conversations
    days: list[str] = field(default_factory=list)
    # bucket -> count per day; the buckets split the total: escalated (open or closed), resolved,
    # fallback, abandoned, open (still open and never handed to a person)
    per_day: dict[str, list[int]] = field(default_factory=dict)


def conversation_report(session: Session, f: Filters) -> ConversationReport:
    """Conversations per day and their outcomes (containment, bot resolutions, handoffs)."""
    day = func.date(Conversation.started_at)
    rows = session.execute(
        select(day, Conversation.outcome, Conversation.escalated, func.count())
        .where(*_in_scope(f))
        .group_by(day, Conversation.outcome, Conversation.escalated)
    ).all()
    days = f.days()
    index = {d: i for i, d in enumerate(days)}
    per_day = {k: [0] * len(days) for k in ("total", "resolved", "escalated", "fallback", "abandoned", "open")}
    totals: Counter[str] = Counter()
    for d, outcome, escalated, n in rows:
        i = index.get(_day(d))
        # A conversation with a person is escalated from the moment it is handed over, not only
        # once it closes: counting only closed ones showed a 0% handoff rate beside the reasons
        # panel's live handoffs.
        handed_over = bool(escalated) or outcome == "escalated"
        bucket = "escalated" if handed_over else outcome
        totals["total"] += n
        totals[bucket] += n
        if outcome == "open":
            totals["all_open"] += n
        elif handed_over:
            totals["escalated_closed"] += n
        if i is not None:
            per_day["total"][i] += n
            per_day.setdefault(bucket, [0] * len(days))[i] += n
    closed = totals["total"] - totals["all_open"]
    return ConversationReport(
        conversations=totals["total"], closed=closed, open=totals["all_open"], resolved=totals["resolved"],
        escalated=totals["escalated"], fallback=totals["fallback"], abandoned=totals["abandoned"],
        bot_resolution_rate=_rate(totals["resolved"], closed),
        containment_rate=_rate(closed - totals["escalated_closed"], closed),
        handoff_rate=_rate(totals["escalated"], totals["total"]),
        days=days, per_day=per_day,
    )


# ---------------------------------------------------------------- customer messages
@dataclass
class TurnReport:
    messages: int  # customer messages
    fallback_messages: int
    fallback_rate: float | None  # customer messages the bot did not understand / customer messages
    days: list[str]
    sentiment_per_day: dict[str, list[int]]  # label -> customer messages per day
    negative_share_per_day: list[float | None]
    fallback_rate_per_day: list[float | None]
    top_intents: list[tuple[str, int]]


def turn_report(session: Session, f: Filters, top: int = 10) -> TurnReport:
    """Customer messages sent in the range (on the channel): sentiment trend, top intents, fallback rate.

    Two range scans of the covering index ix_turns_role_event (role, event_at, sentiment, intent,
    conversation): one grouped by day and sentiment, one by intent. With a channel, the channel's
    conversations lead (ix_conversations_channel_started) into the covering index
    ix_turns_conversation_role_event, so no message of another channel is read.
    """
    day = func.date(Turn.event_at)
    is_fallback = case((Turn.intent.in_(sorted(FALLBACK_INTENTS)), 1), else_=0)
    clauses = [Turn.role == "user", Turn.event_at >= f.start_at, Turn.event_at < f.end_before]

    def scoped(q):  # noqa: ANN001, ANN202 - a Select
        if f.channel is None:
            return q.select_from(Turn).where(*clauses)
        # one channel: from its conversations that overlap the range (the ingestor keeps
        # last_event_at = the latest event) to their customer messages in the range
        return q.select_from(Conversation).join(
            Turn, (Turn.conversation_id == Conversation.id) & and_(*clauses)
        ).where(Conversation.channel == f.channel, Conversation.started_at < f.end_before,
                Conversation.last_event_at >= f.start_at)

    rows = session.execute(
        scoped(select(day, Turn.sentiment_label, func.count(), func.sum(is_fallback)))
        .group_by(day, Turn.sentiment_label)
    ).all()
    intents = session.execute(
        scoped(select(Turn.intent, func.count()))
        .where(Turn.intent.is_not(None))
        .group_by(Turn.intent)
        .order_by(func.count().desc(), Turn.intent)
        .limit(max(1, min(top, 50)))
    ).all()
    days = f.days()
    index = {d: i for i, d in enumerate(days)}
    per_day = {s: [0] * len(days) for s in SENTIMENTS}
    totals_day, fallback_day = [0] * len(days), [0] * len(days)
    messages = fallbacks = 0
    for d, label, n, fb in rows:
        fb = int(fb or 0)
        messages += n
        fallbacks += fb
        i = index.get(_day(d))
        if i is None:
            continue
        totals_day[i] += n
        fallback_day[i] += fb
        if label in per_day:
            per_day[label][i] += n
    labelled = [sum(per_day[s][i] for s in SENTIMENTS) for i in range(len(days))]
    return TurnReport(
        messages=messages, fallback_messages=fallbacks, fallback_rate=_rate(fallbacks, messages), days=days,
        sentiment_per_day=per_day,
        negative_share_per_day=[_rate(per_day["negative"][i], labelled[i]) for i in range(len(days))],
        fallback_rate_per_day=[_rate(fallback_day[i], totals_day[i]) for i in range(len(days))],
        top_intents=[(name, int(n)) for name, n in intents],
    )


# ---------------------------------------------------------------- agents (handoffs)
@dataclass
class AgentReport:
    handoffs: int
    resolutions: int  # resolved by a person
    handed_back: int
    waiting: int  # still open, assigned or waiting
    avg_first_response_s: float | None
    median_first_response_s: float | None
    avg_resolution_s: float | None
    median_resolution_s: float | None
    reasons: list[tuple[str, int]]
    ticket_categories: list[tuple[str, int]]
    days: list[str]
    first_response_per_day: list[float | None]  # average seconds
    resolution_per_day: list[float | None]


def _avg(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def agent_report(session: Session, f: Filters) -> AgentReport:
    """Escalations handled by people: first response and resolution times, reasons (console handoffs)."""
    clauses = [Handoff.created_at >= f.start_at, Handoff.created_at < f.end_before]
    if f.channel is not None:
        clauses.append(Handoff.channel == f.channel)
    rows = session.execute(
        select(Handoff.created_at, Handoff.first_response_at, Handoff.resolved_at, Handoff.status, Handoff.reason)
        .where(*clauses)
    ).all()
    t_clauses = [SupportTicket.created_at >= f.start_at, SupportTicket.created_at < f.end_before]
    if f.channel is not None:
        t_clauses.append(SupportTicket.sender_id.in_(_senders_in_channel(f)))
    categories = session.execute(
        select(SupportTicket.category, func.count()).where(*t_clauses)
        .group_by(SupportTicket.category).order_by(func.count().desc(), SupportTicket.category)
    ).all()
    days = f.days()
    index = {d: i for i, d in enumerate(days)}
    first: list[float] = []
    resolution: list[float] = []
    first_day: dict[int, list[float]] = defaultdict(list)
    res_day: dict[int, list[float]] = defaultdict(list)
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for created, first_at, resolved_at, st, reason in rows:
        status[st] += 1
        reasons[reason] += 1
        i = index.get(created.date().isoformat())
        if first_at is not None and first_at >= created:
            s = (first_at - created).total_seconds()
            first.append(s)
            first_day[i].append(s)
        if resolved_at is not None and st == "resolved" and resolved_at >= created:
            s = (resolved_at - created).total_seconds()
            resolution.append(s)
            res_day[i].append(s)
    return AgentReport(
        handoffs=len(rows), resolutions=status["resolved"], handed_back=status["handed_back"],
        waiting=status["open"] + status["assigned"] + status["waiting"],
        avg_first_response_s=_avg(first),
        median_first_response_s=round(statistics.median(first), 1) if first else None,
        avg_resolution_s=_avg(resolution),
        median_resolution_s=round(statistics.median(resolution), 1) if resolution else None,
        reasons=reasons.most_common(), ticket_categories=[(c, int(n)) for c, n in categories],
        days=days,
        first_response_per_day=[_avg(first_day.get(i, [])) for i in range(len(days))],
        resolution_per_day=[_avg(res_day.get(i, [])) for i in range(len(days))],
    )


# ---------------------------------------------------------------- CSAT
@dataclass
class CsatReport:
    responses: int
    average: float | None
    satisfied_share: float | None  # ratings 4-5 / ratings (Chatwoot's CSAT score)
    distribution: dict[int, int]  # rating 1-5 -> count
    days: list[str]
    average_per_day: list[float | None]
    responses_per_day: list[int]


def csat_report(session: Session, f: Filters) -> CsatReport:
    """CSAT ratings given in the range (feedback table): distribution and daily average."""
    day = func.date(Feedback.created_at)
    clauses = [Feedback.created_at >= f.start_at, Feedback.created_at < f.end_before, Feedback.rating.is_not(None)]
    if f.channel is not None:
        clauses.append(Feedback.sender_id.in_(_senders_in_channel(f)))
    rows = session.execute(
        select(day, Feedback.rating, func.count()).where(*clauses).group_by(day, Feedback.rating)
    ).all()
    days = f.days()
    index = {d: i for i, d in enumerate(days)}
    dist = {r: 0 for r in range(1, 6)}
    sums, counts = [0] * len(days), [0] * len(days)
    for d, rating, n in rows:
        if rating not in dist:
            continue
        dist[rating] += n
        i = index.get(_day(d))
        if i is not None:
            sums[i] += rating * n
            counts[i] += n
    total = sum(dist.values())
    return CsatReport(
        responses=total,
        average=round(sum(r * n for r, n in dist.items()) / total, 2) if total else None,
        satisfied_share=_rate(dist[4] + dist[5], total),
        distribution=dist, days=days,
        average_per_day=[round(sums[i] / counts[i], 2) if counts[i] else None for i in range(len(days))],
        responses_per_day=counts,
    )


# ---------------------------------------------------------------- customer analytics (issue 20)
def analytics_segments(session: Session) -> dict:
    """Segment sizes and means (the figures of ``reports.segment_summary``, grouped in SQL) and a
    2-D PCA projection of the customers, from what the last ``make analytics`` stored.

    The projection is of the stored, standardised recency, frequency, monetary value, churn risk
    and 12-month value; at most MAX_POINTS customers are drawn (every k-th, deterministic).
    """
    total = session.scalar(select(func.count()).select_from(CustomerAnalytics)) or 0
    summary = [
        {"name": name, "customers": int(n), "share": n / total, "mean_expected_value_12m": float(value or 0),
         "mean_churn_risk": float(risk or 0), "mean_recency_days": float(recency or 0),
         "mean_frequency": float(freq or 0)}
        for name, n, value, risk, recency, freq in session.execute(
            select(CustomerAnalytics.segment, func.count(), func.avg(CustomerAnalytics.expected_value_12m),
                   func.avg(CustomerAnalytics.churn_risk), func.avg(CustomerAnalytics.recency_days),
                   func.avg(CustomerAnalytics.frequency))
            .group_by(CustomerAnalytics.segment)
        )
    ]
    summary.sort(key=lambda x: -x["mean_expected_value_12m"])
    rows = session.execute(
        select(
            CustomerAnalytics.customer_id, CustomerAnalytics.segment, CustomerAnalytics.recency_days,
            CustomerAnalytics.frequency, CustomerAnalytics.monetary, CustomerAnalytics.churn_risk,
            CustomerAnalytics.expected_value_12m,
        ).order_by(CustomerAnalytics.customer_id)
    ).all()
    points: list[dict] = []
    if len(rows) >= 3:
        x = np.array([[float(v) for v in r[2:]] for r in rows])
        x[:, 2] = np.log1p(np.maximum(x[:, 2], 0))
        x[:, 4] = np.log1p(np.maximum(x[:, 4], 0))
        sd = x.std(axis=0)
        z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        xy = z @ vt[:2].T
        step = max(1, len(rows) // MAX_POINTS)
        points = [
            {"x": round(float(xy[i, 0]), 3), "y": round(float(xy[i, 1]), 3), "segment": rows[i][1]}
            for i in range(0, len(rows), step)
        ]
    return {"segments": summary, "points": points, "customers": len(rows)}


def analytics_churn(session: Session, bins: int = 10) -> dict:
    """Customers per churn-risk band (tenths) and the mean risk per segment and lifecycle stage."""
    band = cast(CustomerAnalytics.churn_risk * bins, Integer)
    rows = session.execute(select(band, func.count()).group_by(band)).all()
    hist = [0] * bins
    for b, n in rows:
        hist[max(0, min(int(b or 0), bins - 1))] += n
    by_stage = session.execute(
        select(CustomerAnalytics.lifecycle_stage, func.count(), func.avg(CustomerAnalytics.churn_risk))
        .group_by(CustomerAnalytics.lifecycle_stage)
    ).all()
    return {
        "bins": [f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)],
        "customers": hist,
        "high_risk": sum(hist[bins // 2:]),
        "by_stage": [{"stage": s, "customers": int(n), "mean_risk": round(float(r or 0), 4)} for s, n, r in by_stage],
    }


def lifecycle_counts(session: Session, end: datetime, periods: int = 12, step_days: int = 30) -> list[dict]:
    """Customers per lifecycle stage at ``periods`` snapshots ``step_days`` apart, oldest first.

    The same figures as :func:`bot.analytics.lifecycle.stage_counts_over_time` (the stage rules
    are its :func:`~bot.analytics.lifecycle.stage`, tested equal on the seeded shop) with each
    customer's purchase history found by bisecting a sorted list instead of pandas row lookups:
    about 0.1 s instead of 2-4 s on 1,000 customers and 12,000 orders, so it needs no cache.
    """
    from bisect import bisect_left

    from bot.analytics import features as feats
    from bot.analytics.lifecycle import stage
    from bot.db.models import LIFECYCLE_STAGES, Customer, Order

    periods = max(1, min(int(periods), 120))
    step_days = max(1, min(int(step_days), 365))
    bought: dict[int, list[datetime]] = defaultdict(list)
    for cid, at in session.execute(
        select(Order.customer_id, Order.created_at)
        .where(Order.status.in_(feats.PURCHASE_STATUSES), Order.created_at < end)
        .order_by(Order.created_at)
    ):
        bought[cid].append(at)
    signups = session.execute(select(Customer.id, Customer.created_at).where(Customer.status == "active")).all()
    day_s = 86400.0
    out = []
    for k in range(periods - 1, -1, -1):
        at = end - timedelta(days=step_days * k)
        counts = dict.fromkeys(LIFECYCLE_STAGES, 0)
        for cid, signup in signups:
            times = bought.get(cid, [])
            n = bisect_left(times, at)
            if n == 0:
                if signup >= at:
                    continue
                recency = since_first = gap = None
                start = signup
            else:
                last, first = times[n - 1], times[0]
                j = bisect_left(times, last) - 1  # the purchase before the last one (strictly earlier)
                recency = (at - last).total_seconds() / day_s
                since_first = (at - first).total_seconds() / day_s
                gap = (last - times[j]).total_seconds() / day_s if j >= 0 else None
                start = min(signup, first)
            tenure = (at - start).total_seconds() / day_s
            counts[stage(recency, n, since_first, tenure, gap)] += 1
        out.append({"at": at, "counts": counts})
    return out


def analytics_lifecycle(session: Session, periods: int = 12, step_days: int = 30) -> dict:
    """Customers per lifecycle stage over time (monthly snapshots) and today's stored counts."""
    from bot.db import analytics as repo

    history = lifecycle_counts(session, utcnow().replace(microsecond=0), periods, step_days)
    stages = [s for s in history[-1]["counts"] if any(h["counts"][s] for h in history)] if history else []
    return {
        "dates": [h["at"].date().isoformat() for h in history],
        "stages": {s: [h["counts"][s] for h in history] for s in stages},
        "today": repo.stage_counts(session),
    }


def analytics_topics(session: Session, f: Filters, limit: int = 8, examples: int = 3) -> list[dict]:
    """The most mentioned feedback topics in the range with trend, weekly counts and example quotes.

    Same figures as :func:`bot.analytics.topics.top_topics` (trend against the period of the same
    length just before, mentions per week of the range, newest distinct quotes) but counted with
    GROUP BY and reading only the top topics' rows, so a year of mentions stays fast.
    """
    start, end = f.start_at, f.end_before
    span = end - start
    counts = session.execute(
        select(FeedbackMention.topic, func.count())
        .where(FeedbackMention.created_at >= start, FeedbackMention.created_at < end)
        .group_by(FeedbackMention.topic)
        .order_by(func.count().desc(), FeedbackMention.topic)
        .limit(max(1, min(limit, 50)))
    ).all()
    if not counts:
        return []
    names = [t for t, _ in counts]
    previous = dict(session.execute(
        select(FeedbackMention.topic, func.count())
        .where(FeedbackMention.topic.in_(names), FeedbackMention.created_at >= start - span,
               FeedbackMention.created_at < start)
        .group_by(FeedbackMention.topic)
    ).all())
    weeks = max(1, -(-int(span.total_seconds()) // (7 * 86400)))
    weekly = {t: [0] * weeks for t in names}
    for topic, at in session.execute(
        select(FeedbackMention.topic, FeedbackMention.created_at)
        .where(FeedbackMention.topic.in_(names), FeedbackMention.created_at >= start, FeedbackMention.created_at < end)
    ):
        weekly[topic][min(int((at - start).total_seconds() // (7 * 86400)), weeks - 1)] += 1
    out = []
    for topic, n in counts:
        quotes: list[dict] = []
        seen: set[str] = set()
        for quote, sender, conv, source, at in session.execute(
            select(FeedbackMention.quote, FeedbackMention.sender_id, FeedbackMention.conversation_id,
                   FeedbackMention.source, FeedbackMention.created_at)
            .where(FeedbackMention.topic == topic, FeedbackMention.created_at >= start,
                   FeedbackMention.created_at < end)
            .order_by(FeedbackMention.created_at.desc(), FeedbackMention.id)
            .limit(examples * 5)
        ):
            if quote in seen or len(quotes) >= examples:
                continue
            seen.add(quote)
            quotes.append({"quote": quote, "sender_id": sender, "conversation_id": conv, "source": source,
                           "created_at": at.isoformat(timespec="seconds")})
        prev = int(previous.get(topic, 0))
        out.append({
            "topic": topic, "mentions": int(n), "previous": prev,
            "trend_pct": round(100.0 * (n - prev) / prev, 1) if prev else None,
            "weekly": weekly[topic], "examples": quotes,
        })
    return out


def topic_mentions(session: Session, topic: str, f: Filters, limit: int = 200) -> list[dict]:
    """A topic's mentions in the range, newest first, with the conversation each came from."""
    rows = session.execute(
        select(FeedbackMention.quote, FeedbackMention.sender_id, FeedbackMention.conversation_id,
               FeedbackMention.source, FeedbackMention.created_at, FeedbackMention.aspect)
        .where(FeedbackMention.topic == topic[:80], FeedbackMention.created_at >= f.start_at,
               FeedbackMention.created_at < f.end_before)
        .order_by(FeedbackMention.created_at.desc(), FeedbackMention.id)
        .limit(max(1, min(limit, 1000)))
    ).all()
    return [
        {"quote": q, "sender_id": sender, "conversation_id": conv, "source": s,
         "created_at": at.isoformat(timespec="seconds"), "aspect": a}
        for q, sender, conv, s, at, a in rows
    ]


def conversation_turns(session: Session, conversation_id: int, limit: int = 500) -> tuple[Conversation | None, list]:
    """A CRM conversation and its turns (redacted text), oldest first, for the topic links."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        return None, []
    turns = session.execute(
        select(Turn.role, Turn.text, Turn.intent, Turn.sentiment_label, Turn.action_name, Turn.event_at)
        .where(Turn.conversation_id == conversation_id, Turn.role.in_(("user", "bot")))
        .order_by(Turn.event_at, Turn.id).limit(limit)
    ).all()
    return conv, list(turns)


# ---------------------------------------------------------------- CSV
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (customer text is quoted with ')."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _conversations_csv(data: ConversationReport) -> list[list[object]]:
    keys = ["total", "resolved", "escalated", "fallback", "abandoned", "open"]
    return [["day", *keys]] + [[d, *[data.per_day.get(k, [0] * len(data.days))[i] for k in keys]]
                               for i, d in enumerate(data.days)]


def _messages_csv(data: TurnReport) -> list[list[object]]:
    rows: list[list[object]] = [["day", "negative", "neutral", "positive", "negative_share", "fallback_rate"]] + [
        [d, data.sentiment_per_day["negative"][i], data.sentiment_per_day["neutral"][i],
         data.sentiment_per_day["positive"][i], data.negative_share_per_day[i], data.fallback_rate_per_day[i]]
        for i, d in enumerate(data.days)
    ]
    return rows + [[], ["intent", "messages"], *[[n, c] for n, c in data.top_intents]]


def _agents_csv(data: AgentReport) -> list[list[object]]:
    rows: list[list[object]] = [["day", "avg_first_response_s", "avg_resolution_s"]] + [
        [d, data.first_response_per_day[i], data.resolution_per_day[i]] for i, d in enumerate(data.days)
    ]
    return rows + [[], ["handoff_reason", "handoffs"], *[list(r) for r in data.reasons]]


def _csat_csv(data: CsatReport) -> list[list[object]]:
    rows: list[list[object]] = [["day", "responses", "average"]] + [
        [d, data.responses_per_day[i], data.average_per_day[i]] for i, d in enumerate(data.days)
    ]
    return rows + [[], ["rating", "responses"], *[[r, n] for r, n in data.distribution.items()]]


def _segments_csv(data: dict) -> list[list[object]]:
    rows: list[list[object]] = [["segment", "customers", "share", "mean_expected_value_12m", "mean_churn_risk",
                                 "mean_recency_days", "mean_frequency"]]
    return rows + [[s["name"], s["customers"], round(s["share"], 4), round(s["mean_expected_value_12m"], 2),
                    round(s["mean_churn_risk"], 4), round(s["mean_recency_days"], 1), round(s["mean_frequency"], 2)]
                   for s in data["segments"]]


def _churn_csv(data: dict) -> list[list[object]]:
    return [["churn_risk", "customers"], *[[b, n] for b, n in zip(data["bins"], data["customers"], strict=True)]]


def _lifecycle_csv(data: dict) -> list[list[object]]:
    stages = list(data["stages"])
    return [["date", *stages]] + [[d, *[data["stages"][s][i] for s in stages]] for i, d in enumerate(data["dates"])]


def _topics_csv(data: list) -> list[list[object]]:
    rows: list[list[object]] = [["topic", "mentions", "previous_period", "trend_pct", "example"]]
    return rows + [[t["topic"], t["mentions"], t["previous"], t["trend_pct"],
                    t["examples"][0]["quote"] if t["examples"] else ""] for t in data]


# ---------------------------------------------------------------- the panel registry
@dataclass(frozen=True)
class Chart:
    """One canvas of a panel: ``static/dashboard.js`` draws ``chart-<id>`` from the panel's JSON."""

    id: str
    title: str
    wide: bool = False  # spans the grid's full width


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: the query behind its JSON, its CSV table and the charts the page shows.

    Why one record: the JSON route, the CSV export and the page all read :data:`PANELS`, so a new
    chart is one entry here (and its query), not three chains to keep in step.
    """

    name: str
    query: Callable[[Session, Filters], Any]  # a dataclass, dict or list (JSON as asdict(...) or as is)
    csv: Callable[[Any], list[list[object]]]  # header + rows, before formula quoting
    charts: tuple[Chart, ...]
    filtered: bool = True  # False: figures ``make analytics`` stored; the range and channel do not apply


# in page order: the page draws the panels' charts in this order
PANELS: dict[str, Panel] = {p.name: p for p in (
    Panel("conversations", conversation_report, _conversations_csv, (
        Chart("conv-per-day", "Conversations per day and outcome", wide=True),
        Chart("containment", "Bot resolution, containment and handoff rate"))),
    Panel("agents", agent_report, _agents_csv, (
        Chart("handoff-reasons", "Handoff reasons"),
        Chart("agent-times", "Agents: first response and resolution time (avg per day)"))),
    Panel("csat", csat_report, _csat_csv, (
        Chart("csat-trend", "CSAT over time"),
        Chart("csat-dist", "CSAT distribution"))),
    Panel("messages", turn_report, _messages_csv, (
        Chart("sentiment", "Customer sentiment per day", wide=True),
        Chart("intents", "Top intents"),
        Chart("fallback", "Fallback rate (customer messages not understood)"))),
    Panel("segments", lambda session, _f: analytics_segments(session), _segments_csv, (
        Chart("segments", "Segments: size and expected 12-month value"),
        Chart("projection", "Customers in 2-D (PCA of RFM, value, churn risk)")), filtered=False),
    Panel("churn", lambda session, _f: analytics_churn(session), _churn_csv, (
        Chart("churn", "Churn risk distribution"),), filtered=False),
    Panel("lifecycle", lambda session, _f: analytics_lifecycle(session), _lifecycle_csv, (
        Chart("lifecycle", "Lifecycle stages over time"),), filtered=False),
    Panel("topics", analytics_topics, _topics_csv, (
        Chart("topics", "Top feedback topics", wide=True),)),
)}


def compute(session: Session, report: str, f: Filters) -> Any:  # noqa: ANN401 - the panel's own result type
    """One panel's result; KeyError for a name that is not a panel."""
    return PANELS[report].query(session, f)


def csv_rows(report: str, data: object) -> list[list[object]]:
    """Header + rows of one report for the CSV export (``data`` is that report's result)."""
    panel = PANELS.get(report)
    if panel is None:
        raise ValueError(f"no CSV for report {report!r}")
    return [[_cell(v) for v in row] for row in panel.csv(data)]
