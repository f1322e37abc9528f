"""Customer 360: everything an agent needs about one customer, in one call.

Why one service: the agent console (and the escalation summary) shows the customer's profile,
tier, orders, refunds, tickets, past conversations with their outcomes, CSAT history, sentiment
trend and spend side by side; gathering it here keeps those screens to one query each and the
definitions (what counts as spend, as an outcome) in one place. Returns plain dataclasses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.db import customer360 as repo
from bot.db import customers as customers_repo
from bot.db import orders as orders_repo
from bot.services._convert import format_address, money, order_summary, refund_info
from bot.services.errors import NotFound
from bot.services.types import OrderSummary, RefundInfo

RECENT = 10
SENTIMENT_MESSAGES = 200
SENTIMENT_DAYS = 30


@dataclass(frozen=True)
class CustomerProfile:
    id: int
    name: str
    email: str
    phone: str | None
    tier: str
    status: str
    newsletter: bool
    created_at: datetime
    default_address: str


@dataclass(frozen=True)
class TicketSummary:
    number: str
    category: str
    subject: str
    status: str
    priority: str
    created_at: datetime
    sender_id: str


@dataclass(frozen=True)
class ConversationSummary:
    """One past conversation: ``outcome`` is resolved, escalated, abandoned, fallback, open or unknown."""

    sender_id: str
    channel: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    turns: int
    csat_rating: int | None = None
    csat_comment: str | None = None
    source: str = "crm"  # "crm" (ingestor's record) or "log" (grouped from the interactions log)


@dataclass(frozen=True)
class CsatEntry:
    rating: int
    comment: str
    created_at: datetime
    sender_id: str


@dataclass(frozen=True)
class SentimentPoint:
    """Mean signed sentiment of the customer's messages on one day (-1 negative .. +1 positive)."""

    day: date
    mean: float
    messages: int


@dataclass(frozen=True)
class Customer360:
    profile: CustomerProfile
    order_count: int
    orders_by_status: dict[str, int]
    recent_orders: list[OrderSummary]
    refunds: list[RefundInfo]
    tickets: list[TicketSummary]
    ticket_count: int
    open_ticket_count: int
    conversations: list[ConversationSummary]
    csat: list[CsatEntry]
    csat_average: float | None
    sentiment: list[SentimentPoint] = field(default_factory=list)
    sentiment_direction: str = "unknown"  # improving, worsening, steady or unknown
    spend_to_date: Decimal = Decimal("0.00")  # charged, before refunds
    refunded_to_date: Decimal = Decimal("0.00")

    @property
    def tier(self) -> str:
        return self.profile.tier

    @property
    def net_spend(self) -> Decimal:
        return money(self.spend_to_date - self.refunded_to_date)


def customer_360(session: Session, customer_id: int, recent: int = RECENT) -> Customer360:
    """The 360 view of one customer; NotFound for an unknown id. Lists are newest first."""
    customer = customers_repo.get(session, customer_id) if isinstance(customer_id, int) else None
    if customer is None:
        raise NotFound("customer_not_found", "I couldn't find that customer.")
    recent = max(1, min(int(recent), 100))
    profile = CustomerProfile(
        id=customer.id,
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        tier=customer.tier,
        status=customer.status,
        newsletter=bool(customer.newsletter),
        created_at=customer.created_at,
        default_address=format_address(customers_repo.default_address(session, customer.id)),
    )
    by_status = repo.orders_by_status(session, customer.id)
    tickets = repo.tickets_for_customer(session, customer.id, recent)
    ticket_total, ticket_open = repo.ticket_counts(session, customer.id)
    crm = repo.crm_conversations_present(session)
    csat = ratings(session, customer.id, recent, crm)
    points = repo.sentiment_points(session, customer.id, SENTIMENT_MESSAGES, crm)
    return Customer360(
        profile=profile,
        order_count=sum(by_status.values()),
        orders_by_status=by_status,
        recent_orders=[order_summary(o) for o in orders_repo.recent_for_customer(session, customer.id, recent)],
        refunds=[refund_info(r) for r in repo.refunds_for_customer(session, customer.id, recent)],
        tickets=[
            TicketSummary(t.number, t.category, t.subject, t.status, t.priority, t.created_at, t.sender_id)
            for t in tickets
        ],
        ticket_count=ticket_total,
        open_ticket_count=ticket_open,
        conversations=conversations(session, customer.id, recent, crm),
        csat=csat,
        csat_average=round(sum(c.rating for c in csat) / len(csat), 2) if csat else None,
        sentiment=daily_sentiment(points)[-SENTIMENT_DAYS:],
        sentiment_direction=direction(points),
        spend_to_date=money(repo.charged_total(session, customer.id)),
        refunded_to_date=money(repo.refunded_total(session, customer.id)),
    )


def conversations(session: Session, customer_id: int, limit: int, crm: bool) -> list[ConversationSummary]:
    """The CRM's records, plus conversations only the interactions log knows; newest first."""
    out: list[ConversationSummary] = []
    if crm:
        out += [
            ConversationSummary(
                sender_id=c.sender_id,
                channel=c.channel,
                started_at=c.started_at,
                ended_at=c.ended_at,
                outcome=c.outcome,
                turns=c.turn_count,
                csat_rating=c.csat_rating,
                csat_comment=c.csat_comment,
            )
            for c in repo.crm_conversations(session, customer_id, limit)
        ]
    logged = repo.logged_conversations(session, customer_id, limit, exclude_crm=crm)
    ids = [cid for cid, *_ in logged]
    escalated = repo.conversations_with_tickets(session, ids)
    rated = repo.ratings_by_conversation(session, ids)
    for cid, start, end, turns in logged:
        rating, comment = rated.get(cid, (None, None))
        out.append(
            ConversationSummary(
                sender_id=cid,
                channel=None,
                started_at=start,
                ended_at=end,
                outcome=log_outcome(cid in escalated, rating),
                turns=turns,
                csat_rating=rating,
                csat_comment=comment,
                source="log",
            )
        )
    out.sort(key=lambda c: c.started_at, reverse=True)
    return out[:limit]


def log_outcome(had_ticket: bool, rating: int | None) -> str:
    """The log has no outcome column: a ticket means escalated, a rating means the bot resolved it."""
    if had_ticket:
        return "escalated"
    return "resolved" if rating is not None else "unknown"


def ratings(session: Session, customer_id: int, limit: int, crm: bool) -> list[CsatEntry]:
    """Ratings stored by the bot (``feedback``) plus CSAT the CRM has on conversations without one."""
    out = [
        CsatEntry(int(f.rating), f.comment or "", f.created_at, f.sender_id)
        for f in repo.ratings_for_customer(session, customer_id, limit)
    ]
    if crm:
        out += [
            CsatEntry(int(c.csat_rating), c.csat_comment or "", c.ended_at or c.last_event_at, c.sender_id)
            for c in repo.crm_ratings_without_feedback(session, customer_id, limit)
        ]
    out.sort(key=lambda c: c.created_at, reverse=True)
    return out[:limit]


def daily_sentiment(points: list[tuple[datetime, float]]) -> list[SentimentPoint]:
    """Per-day means of signed sentiment, oldest day first."""
    days: dict[date, list[float]] = defaultdict(list)
    for at, score in points:
        days[at.date()].append(score)
    return [SentimentPoint(d, round(sum(v) / len(v), 3), len(v)) for d, v in sorted(days.items())]


def direction(points: list[tuple[datetime, float]], min_messages: int = 4, margin: float = 0.15) -> str:
    """Newer half of the messages against the older half: improving, worsening or steady."""
    if len(points) < min_messages:
        return "unknown"
    ordered = [score for _, score in sorted(points, key=lambda p: p[0])]
    half = len(ordered) // 2
    older, newer = ordered[:half], ordered[half:]
    delta = sum(newer) / len(newer) - sum(older) / len(older)
    if delta > margin:
        return "improving"
    if delta < -margin:
        return "worsening"
    return "steady"
