"""ORM models: the schema of ARCHITECTURE.md.

Enums are plain strings guarded by CHECK constraints (portable, no Postgres-only types);
money is ``Numeric(10, 2)`` (``Decimal``); datetimes are naive UTC (see ``bot.db.base``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import JSON

from bot.db.base import Base, utcnow

CUSTOMER_TIERS = ("standard", "silver", "gold")
CUSTOMER_STATUSES = ("active", "deleted")
ORDER_STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled", "returned")
SHIPMENT_STATUSES = ("label_created", "in_transit", "out_for_delivery", "delivered", "returned")
PAYMENT_METHODS = ("card", "paypal", "gift_card", "bank_transfer")
PAYMENT_STATUSES = ("pending", "paid", "failed", "refunded")
REFUND_KINDS = ("refund", "return")
REFUND_STATUSES = ("requested", "approved", "rejected", "completed")
TICKET_STATUSES = ("open", "pending", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
INTERACTION_ROLES = ("user", "bot")

Money = Numeric(10, 2)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(_in("tier", CUSTOMER_TIERS), name="tier"),
        CheckConstraint(_in("status", CUSTOMER_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    tier: Mapped[str] = mapped_column(String(20), default="standard")
    newsletter: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    addresses: Mapped[list[Address]] = relationship(back_populates="customer")
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    postcode: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(80), default="United States")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="addresses")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_nonneg"),
        CheckConstraint("stock >= 0", name="stock_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    category: Mapped[str] = mapped_column(String(60), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Money)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    consumable: Mapped[bool] = mapped_column(Boolean, default=False)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint("total >= 0", name="total_nonneg"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(12), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    shipping_address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    total: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    shipping_address: Mapped[Address | None] = relationship()
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", order_by="OrderItem.id")
    shipments: Mapped[list[Shipment]] = relationship(back_populates="order", order_by="Shipment.id")
    payments: Mapped[list[Payment]] = relationship(back_populates="order", order_by="Payment.id")
    refunds: Mapped[list[Refund]] = relationship(back_populates="order", order_by="Refund.id")


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (CheckConstraint(_in("status", SHIPMENT_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    carrier: Mapped[str] = mapped_column(String(60))
    tracking_number: Mapped[str] = mapped_column(String(60), index=True)
    status: Mapped[str] = mapped_column(String(30), default="label_created")
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime)
    eta: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="shipments")
    events: Mapped[list[TrackingEvent]] = relationship(
        back_populates="shipment", order_by="TrackingEvent.occurred_at"
    )


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    __table_args__ = (Index("ix_tracking_events_shipment_time", "shipment_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    location: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(200))

    shipment: Mapped[Shipment] = relationship(back_populates="events")


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount >= 0", name="amount_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="payments")


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(_in("kind", REFUND_KINDS), name="kind"),
        CheckConstraint(_in("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount >= 0", name="amount_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(12), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int | None] = mapped_column(ForeignKey("order_items.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="refund")
    status: Mapped[str] = mapped_column(String(20), default="requested")
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="refunds")
    order_item: Mapped[OrderItem | None] = relationship()


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_nonneg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    order: Mapped[Order] = relationship()


class SupportTicket(Base):
    __tablename__ = "support_tickets"
    __table_args__ = (
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        CheckConstraint(_in("priority", TICKET_PRIORITIES), name="priority"),
        Index("ix_support_tickets_created_category", "created_at", "category"),  # dashboard (0006)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(12), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    sender_id: Mapped[str] = mapped_column(String(128), index=True)  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)
    category: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint(_in("role", INTERACTION_ROLES), name="role"),
        Index("ix_interactions_sender_created", "sender_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128))  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str | None] = mapped_column(String(80), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str | None] = mapped_column(String(80))
    sentiment_label: Mapped[str | None] = mapped_column(String(20))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
        Index("ix_feedback_created_rating", "created_at", "rating"),  # dashboard (0006)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SecurityCounter(Base):
    """Failed verifications and tickets counted per order number, client address, ...

    Kept in the database so that limits hold across conversations, senders and restarts.
    """

    __tablename__ = "security_counters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(128))
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ux_security_counters_kind_key", "kind", "key", unique=True),)


class ChatVerification(Base):
    """A customer proven in chat, bound to the conversation and to the server-issued session."""

    __tablename__ = "chat_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128))  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)
    session_id: Mapped[str] = mapped_column(String(64), default="")
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ux_chat_verifications_sender_session", "sender_id", "session_id", unique=True),
    )


# ---------------------------------------------------------------- CRM record (issue 17, migration 0002)
CONVERSATION_OUTCOMES = ("open", "resolved", "escalated", "abandoned", "fallback")
TURN_ROLES = ("user", "bot", "action", "event")


class Conversation(Base):
    """One Rasa session of one sender, as the CRM ingestor saw it in the event stream."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint(_in("outcome", CONVERSATION_OUTCOMES), name="outcome"),
        CheckConstraint("csat_rating IS NULL OR (csat_rating >= 1 AND csat_rating <= 5)", name="csat_range"),
        Index("ix_conversations_sender_started", "sender_id", "started_at"),
        # dashboard (0006): conversations per day and outcome, all channels or one
        Index("ix_conversations_started_outcome", "started_at", "outcome", "escalated"),
        Index("ix_conversations_channel_started", "channel", "started_at", "outcome", "escalated"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(40))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_event_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(20), default="open", index=True)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    tasks_completed: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    last_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    csat_rating: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(Text)


class Turn(Base):
    """One event of a conversation worth keeping: what the customer said (redacted), what the
    bot answered, which actions ran; ``event_key`` makes a replayed event a no-op."""

    __tablename__ = "turns"
    __table_args__ = (
        CheckConstraint(_in("role", TURN_ROLES), name="role"),
        Index("ix_turns_conversation_event_at", "conversation_id", "event_at"),
        # dashboard (0006): customer messages by time with sentiment, intent and conversation
        Index("ix_turns_role_event", "role", "event_at", "sentiment_label", "intent", "conversation_id"),
        Index("ix_turns_conversation_role_event", "conversation_id", "role", "event_at", "sentiment_label", "intent"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    raw_text: Mapped[str | None] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(80), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    entities: Mapped[list | None] = mapped_column(JSON(none_as_null=True))  # [{entity, value, start, end}]
    sentiment_label: Mapped[str | None] = mapped_column(String(20))
    sentiment_probability: Mapped[float | None] = mapped_column(Float)
    action_name: Mapped[str | None] = mapped_column(String(80))
    event_at: Mapped[datetime] = mapped_column(DateTime)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)


class IngestedEvent(Base):
    """Every event key the ingestor committed, whatever it produced: a replay stores nothing twice."""

    __tablename__ = "crm_ingested_events"

    event_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    event_at: Mapped[datetime] = mapped_column(DateTime)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class IngestOffset(Base):
    """How far the ingestor read a source that has positions (the SQL broker's events table)."""

    __tablename__ = "crm_ingest_offsets"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------- CRM analytics (issue 20, migration 0004)
LIFECYCLE_STAGES = ("new", "active", "at_risk", "lapsed", "won_back")
FEEDBACK_SOURCES = ("ticket", "csat", "turn")


class CustomerAnalytics(Base):
    """The latest analytics of one customer (``make analytics`` replaces them all)."""

    __tablename__ = "customer_analytics"
    __table_args__ = (
        CheckConstraint(_in("lifecycle_stage", LIFECYCLE_STAGES), name="lifecycle_stage"),
        CheckConstraint("churn_risk >= 0 AND churn_risk <= 1", name="churn_risk_range"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(80), index=True)
    segment_index: Mapped[int] = mapped_column(Integer)
    churn_risk: Mapped[float] = mapped_column(Float)
    expected_purchases_12m: Mapped[float] = mapped_column(Float)
    expected_value_12m: Mapped[Decimal] = mapped_column(Money)
    value_percentile: Mapped[float] = mapped_column(Float)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), index=True)
    priority_score: Mapped[float] = mapped_column(Float)
    recency_days: Mapped[float] = mapped_column(Float)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[Decimal] = mapped_column(Money)
    computed_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class FeedbackMention(Base):
    """One aspect a customer complained about (ticket, CSAT comment or negative turn) and its topic."""

    __tablename__ = "feedback_mentions"
    __table_args__ = (
        CheckConstraint(_in("source", FEEDBACK_SOURCES), name="source"),
        Index("ix_feedback_mentions_topic_created", "topic", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    source_id: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)

    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    topic: Mapped[str] = mapped_column(String(80))
    aspect: Mapped[str] = mapped_column(String(120))
    quote: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime)


# ---------------------------------------------------------------- agent console (issue 18, migration 0005)
AGENT_ROLES = ("agent", "supervisor")
HANDOFF_STATUSES = ("open", "assigned", "waiting", "resolved", "handed_back")
HANDOFF_REASONS = ("asked_for_person", "fallbacks", "negative_sentiment", "gold_complaint", "action_failed")
HANDOFF_NOTE_KINDS = ("reply", "note", "event")


class Agent(Base):
    """A person who answers escalations in the console (agent) or also oversees them (supervisor)."""

    __tablename__ = "agents"
    __table_args__ = (CheckConstraint(_in("role", AGENT_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20), default="agent")
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)


class AgentSession(Base):
    """A server-side console session: the cookie holds a random token, the table only its sha256."""

    __tablename__ = "agent_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Handoff(Base):
    """An escalated conversation waiting for, or handled by, a person: its life and its context."""

    __tablename__ = "handoffs"
    __table_args__ = (
        CheckConstraint(_in("status", HANDOFF_STATUSES), name="status"),
        CheckConstraint(_in("reason", HANDOFF_REASONS), name="reason"),
        Index("ix_handoffs_status_created", "status", "created_at"),
        Index("ix_handoffs_created_channel", "created_at", "channel"),  # dashboard (0006)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"), unique=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)  # Rasa's sender string
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )  # the hub: NULL until the CRM ingestor has seen the conversation (it fills the link)
    channel: Mapped[str | None] = mapped_column(String(40))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    reason: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority_score: Mapped[float] = mapped_column(Float, default=0.0)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # wanted, order, refund, slots, sentiment
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)  # the customer-360 at escalation time
    transcript: Mapped[list] = mapped_column(JSON, default=list)  # [{role, text, at}]
    labels: Mapped[list] = mapped_column(JSON, default=list)  # ["refund", "vip"]
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class HandoffNote(Base):
    """What happened on a handoff: an agent's reply to the customer, an internal note, or a status change."""

    __tablename__ = "handoff_notes"
    __table_args__ = (
        CheckConstraint(_in("kind", HANDOFF_NOTE_KINDS), name="kind"),
        Index("ix_handoff_notes_handoff_created", "handoff_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEntry(Base):
    """Who did what in the console, from where (log-ins, claims, replies, resolutions...)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
