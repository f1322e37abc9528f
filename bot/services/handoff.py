"""Human handoff: when the assistant hands a conversation to a person, and the handoff's life.

Why one service: the triggers (bot/content/handoff.yml), the business hours, the wait estimate,
the summary an agent reads first and the ticket's life (open -> assigned -> waiting -> resolved or
handed back, with first-response and resolution times) are rules; the actions and the console
only call these functions. Functions take a Session and never commit (one transaction per call).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot.analytics.priority import priority_for
from bot.analytics.topics_zh import is_chinese
from bot.db import analytics as analytics_repo
from bot.db import customers as customers_repo
from bot.db import handoffs as repo
from bot.db.base import utcnow
from bot.db.models import HANDOFF_REASONS, TICKET_PRIORITIES, Handoff
from bot.services import customer360
from bot.services.errors import InvalidInput, NotAllowed, NotFound
from bot.settings import get_settings
from concierge_rasa import text as text_cleaner

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_TRANSCRIPT_TURNS = 40
MAX_TURN_TEXT = 1000
MAX_REPLY = 2000
MAX_LABELS = 8
AGENT_MARK = " (support): "  # how an agent's reply starts (bot/services/rasa_api.agent_label)


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Triggers:
    asked_for_person: bool = True
    fallbacks: int = 2
    negative_sentiment: str = "offer"  # offer | escalate | off
    gold_complaint: bool = True
    action_failed: bool = True


@dataclass(frozen=True)
class BusinessHours:
    timezone: str = "UTC"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: time = time(9, 0)
    close: time = time(18, 0)
    holidays: frozenset[date] = frozenset()
    always_open: bool = False

    def describe(self) -> str:
        days = f"{self.days[0].title()}-{self.days[-1].title()}" if self.days else "no days"
        return f"{days} {self.open:%H:%M}-{self.close:%H:%M} ({self.timezone})"


@dataclass(frozen=True)
class HandoffConfig:
    triggers: Triggers = field(default_factory=Triggers)
    hours: BusinessHours = field(default_factory=BusinessHours)
    minutes_per_conversation: float = 6.0
    agent_online_minutes: int = 10


def _time(value: Any, default: time) -> time:
    try:
        hh, mm = str(value).split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError):
        return default


def parse_config(raw: dict[str, Any]) -> HandoffConfig:
    """The configuration from the YAML's mapping; unknown or bad values keep their defaults."""
    t = raw.get("triggers") or {}
    mode = str(t.get("negative_sentiment", "offer")).lower()
    triggers = Triggers(
        asked_for_person=bool(t.get("asked_for_person", True)),
        fallbacks=max(0, int(t.get("fallbacks", 2) or 0)),
        negative_sentiment=mode if mode in ("offer", "escalate", "off") else "offer",
        gold_complaint=bool(t.get("gold_complaint", True)),
        action_failed=bool(t.get("action_failed", True)),
    )
    h = raw.get("business_hours") or {}
    tz = str(h.get("timezone") or "UTC")
    ZoneInfo(tz)  # an unknown zone is a configuration error, raised at start
    holidays = frozenset(date.fromisoformat(str(d)) for d in h.get("holidays") or [])
    days = tuple(d for d in (str(x).lower()[:3] for x in h.get("days") or DAYS[:5]) if d in DAYS)
    hours = BusinessHours(tz, days, _time(h.get("open"), time(9)), _time(h.get("close"), time(18)), holidays,
                          bool(h.get("always_open", False)))
    q = raw.get("queue") or {}
    return HandoffConfig(triggers, hours, float(q.get("minutes_per_conversation", 6) or 6),
                         int(q.get("agent_online_minutes", 10) or 10))


def load_config(path: Path | None = None) -> HandoffConfig:
    """The triggers and hours: ``path``, else settings' handoff_path (CONCIERGE_HANDOFF_CONFIG, default
    bot/content/handoff.yml); each file read once per process."""
    return _read_config(Path(path or get_settings().handoff_path))


@functools.lru_cache(maxsize=4)
def _read_config(path: Path) -> HandoffConfig:
    with open(path, encoding="utf-8") as fh:
        return parse_config(yaml.safe_load(fh) or {})


def is_open(hours: BusinessHours, now_utc: datetime) -> bool:
    """Whether people answer now (naive UTC ``now_utc``) by the configured days, hours and holidays."""
    if hours.always_open:
        return True
    local = now_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(hours.timezone))
    if local.date() in hours.holidays or DAYS[local.weekday()] not in hours.days:
        return False
    return hours.open <= local.time().replace(tzinfo=None) < hours.close


# ---------------------------------------------------------------- escalation
@dataclass(frozen=True)
class EscalationContext:
    """What the action knows of the conversation when it hands over (from the tracker)."""

    sender_id: str
    ticket_number: str
    reason: str
    channel: str | None = None
    customer_id: int | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (role, text), oldest first
    intents: list[str] = field(default_factory=list)  # the customer's intents, oldest first
    sentiments: list[tuple[str, float]] = field(default_factory=list)  # (label, p(negative)), oldest first
    slots: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandoffInfo:
    handoff_id: int
    ticket_number: str
    created: bool
    after_hours: bool
    position: int  # 1 = next to be served
    agents_online: int
    wait_minutes: int | None  # None: nobody is online to estimate from
    message: str


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _plain(value: Any) -> Any:
    """``value`` as JSON types only (dates and decimals as strings), as the JSON columns store it."""
    return json.loads(_json(value))


def summary_of(ctx: EscalationContext) -> dict[str, Any]:
    """What an agent reads first: what the customer wanted, the order/refund, the slots, the mood."""
    wanted = [i for i in ctx.intents if i not in ("greet", "affirm", "deny", "thank", "goodbye", "inform")]
    negatives = [p for label, p in ctx.sentiments if label == "negative"]
    trend = "unknown"
    if len(ctx.sentiments) >= 2:
        first, last = ctx.sentiments[0][1], ctx.sentiments[-1][1]
        trend = "worsening" if last - first > 0.15 else "improving" if first - last > 0.15 else "steady"
    slots = {k: v for k, v in ctx.slots.items() if v not in (None, "", [], False)}
    last_customer = next((t for r, t in reversed(ctx.transcript) if r == "user"), "")
    return {
        "reason": ctx.reason,
        "wanted": Counter(wanted).most_common(1)[0][0] if wanted else None,
        "intents": wanted[-5:],
        "last_message": last_customer[:300],
        "order_number": slots.get("order_number"),
        "refund": {k: slots[k] for k in ("refund_item", "refund_reason") if k in slots} or None,
        "slots": slots,
        "sentiment": {
            "trend": trend,
            "negative_messages": len(negatives),
            "messages": len(ctx.sentiments),
            "recent_p_negative": [round(p, 2) for _, p in ctx.sentiments[-5:]],
        },
    }


def snapshot_of(session: Session, customer_id: int | None) -> dict[str, Any]:
    """The customer-360 at escalation time, with the analytics when ``make analytics`` has run."""
    if customer_id is None:
        return {}
    try:
        with session.begin_nested():
            data = dataclasses.asdict(customer360.customer_360(session, customer_id))
            row = analytics_repo.get(session, customer_id)
    except (NotFound, SQLAlchemyError):
        return {}
    if row is not None:
        data["analytics"] = {
            "segment": row.segment,
            "churn_risk": round(row.churn_risk, 3),
            "expected_value_12m": str(row.expected_value_12m),
            "value_percentile": round(row.value_percentile, 3),
            "lifecycle_stage": row.lifecycle_stage,
        }
    return _plain(data)


def _transcript(ctx: EscalationContext) -> list[dict[str, str]]:
    turns = [{"role": r, "text": str(t)[:MAX_TURN_TEXT]} for r, t in ctx.transcript[-MAX_TRANSCRIPT_TURNS:]]
    return _plain(turns)


def wait_message(
    info_after_hours: bool, ticket: str, position: int, online: int, minutes: int | None, hours: BusinessHours
) -> str:
    """What the customer is told happens next."""
    if info_after_hours:
        return (
            f"I've passed this conversation to our support team (ticket {ticket}). They're offline right now "
            f"(we answer {hours.describe()}), so a colleague will answer your ticket by email. If they come "
            "online while you're still here, they may reply in this chat too."
        )
    if online == 0 or minutes is None:
        return (
            f"I've passed this conversation to our support team (ticket {ticket}). All our colleagues are busy "
            "right now; the first one free will reply here, and if you leave, by email."
        )
    ahead = "you're next" if position <= 1 else f"you're number {position} in the queue"
    return (
        f"I've passed this conversation to our support team (ticket {ticket}); {ahead}. A colleague should "
        f"reply here in about {minutes} minute{'s' if minutes != 1 else ''}. Until then I'll stay quiet so "
        "they have the whole conversation."
    )


def escalate(session: Session, ctx: EscalationContext, cfg: HandoffConfig | None = None,
             now: datetime | None = None) -> HandoffInfo:
    """Open (or reuse) the conversation's handoff for the ticket ``ctx.ticket_number``.

    Stores the summary, the transcript and the customer-360 snapshot; priority from tier, value and
    churn risk (bot/analytics/priority.py) and the ticket's level.
    """
    cfg = cfg or load_config()
    now = now or utcnow()
    if ctx.reason not in HANDOFF_REASONS:
        raise InvalidInput("bad_reason", "Unknown handoff reason.")
    ticket = repo.ticket_by_number(session, ctx.ticket_number)
    if ticket is None:
        raise NotFound("ticket", "That ticket doesn't exist.")
    customer_id = ctx.customer_id
    if customer_id is not None and customers_repo.get(session, customer_id) is None:
        customer_id = None
    existing = repo.active_for_sender(session, ctx.sender_id) or repo.for_ticket(session, ticket.id)
    created = existing is None
    if existing is not None and existing.status not in repo.ACTIVE_STATUSES:  # handed back, now needed again
        existing.status, existing.resolved_at = "open", None
        repo.add_note(session, existing.id, None, "event", f"escalated again: {ctx.reason}")
    if existing is None:
        try:
            with session.begin_nested():
                score = priority_for(session, customer_id).score
        except SQLAlchemyError:
            score = 0.0
        score += TICKET_PRIORITIES.index(ticket.priority) if ticket.priority in TICKET_PRIORITIES else 1
        try:
            with session.begin_nested():
                handoff = repo.add(session, Handoff(
                    ticket_id=ticket.id, sender_id=ctx.sender_id[:128], conversation_id=ticket.conversation_id,
                    channel=(ctx.channel or None) and ctx.channel[:40],
                    customer_id=customer_id, reason=ctx.reason, status="open", priority_score=score,
                    summary=_plain(summary_of(ctx)), snapshot=snapshot_of(session, customer_id),
                    transcript=_transcript(ctx), after_hours=not is_open(cfg.hours, now), created_at=now,
                    updated_at=now,
                ))
        except IntegrityError:
            # another call escalated the same ticket between our look and our insert (two requests of
            # one conversation at once; the fuzz test found it): one ticket, one handoff, theirs
            existing = repo.for_ticket(session, ticket.id)
            if existing is None:
                raise
            created = False
        else:
            repo.add_note(session, handoff.id, None, "event", f"escalated: {ctx.reason}")
    if existing is not None:
        handoff = existing
        if customer_id is not None and handoff.customer_id is None:
            handoff.customer_id = customer_id
            handoff.snapshot = snapshot_of(session, customer_id)
        handoff.transcript = _transcript(ctx)
        handoff.updated_at = now
    after_hours = not is_open(cfg.hours, now)
    position = repo.queued_ahead(session, handoff.priority_score, handoff.created_at) + 1
    online = repo.online_agents(session, now - timedelta(minutes=cfg.agent_online_minutes))
    minutes = math.ceil(position * cfg.minutes_per_conversation / online) if online else None
    if handoff.status != "open":
        minutes, position = 1, 1  # a person already has it
    message = wait_message(after_hours, ticket.number, position, online, minutes, cfg.hours)
    return HandoffInfo(handoff.id, ticket.number, created, after_hours, position, online, minutes, message)


# ---------------------------------------------------------------- the handoff's life (console)
def _active(session: Session, handoff_id: int) -> Handoff:
    handoff = repo.get(session, handoff_id)
    if handoff is None:
        raise NotFound("handoff", "That conversation doesn't exist.")
    if handoff.status not in repo.ACTIVE_STATUSES:
        raise NotAllowed("closed", "That conversation is already closed.")
    return handoff


def claim(session: Session, handoff_id: int, agent_id: int, *, assigned_by: int | None = None) -> Handoff:
    """An agent takes the handoff (or a supervisor assigns it): status assigned, time recorded once."""
    handoff = _active(session, handoff_id)
    if repo.agent(session, agent_id) is None:
        raise NotFound("agent", "No such agent.")
    now = utcnow()
    handoff.agent_id = agent_id
    if handoff.assigned_at is None:
        handoff.assigned_at = now
    if handoff.status == "open":
        handoff.status = "assigned"
    handoff.updated_at = now
    who = f"agent {agent_id}" + (f" by {assigned_by}" if assigned_by and assigned_by != agent_id else "")
    repo.add_note(session, handoff.id, assigned_by or agent_id, "event", f"assigned to {who}")
    return handoff


def clean_text(text: object, limit: int = MAX_REPLY) -> str:
    """A reply or note: control characters dropped, trimmed, at most ``limit`` characters; empty refused.

    Long text is refused, not cut (the agent rewrites it), so the shared cleaner gets no length."""
    value = text_cleaner.clean_text(text or "")
    if not value:
        raise InvalidInput("empty", "Type a message first.")
    if len(value) > limit:
        raise InvalidInput("too_long", f"Keep it under {limit} characters.")
    return value


def record_reply(session: Session, handoff_id: int, agent_id: int, text: str) -> Handoff:
    """The agent answered the customer: first response time set once, status waiting (on the customer)."""
    handoff = _active(session, handoff_id)
    text = clean_text(text)
    now = utcnow()
    if handoff.agent_id is None:
        claim(session, handoff_id, agent_id)
    if handoff.first_response_at is None:
        handoff.first_response_at = now
    handoff.status = "waiting"
    handoff.updated_at = now
    repo.add_note(session, handoff.id, agent_id, "reply", text)
    return handoff


def add_note(session: Session, handoff_id: int, agent_id: int, text: str) -> None:
    """An internal note, never shown to the customer."""
    handoff = repo.get(session, handoff_id)
    if handoff is None:
        raise NotFound("handoff", "That conversation doesn't exist.")
    repo.add_note(session, handoff.id, agent_id, "note", clean_text(text))


def set_labels(session: Session, handoff_id: int, labels: str) -> list[str]:
    """Labels from a comma-separated string: lower case, letters/digits/-/_ only, at most eight."""
    handoff = repo.get(session, handoff_id)
    if handoff is None:
        raise NotFound("handoff", "That conversation doesn't exist.")
    clean: list[str] = []
    for raw in str(labels or "").split(","):
        label = "".join(c for c in raw.strip().lower().replace(" ", "-") if c.isalnum() or c in "-_")[:30]
        if label and label not in clean:
            clean.append(label)
    handoff.labels = clean[:MAX_LABELS]
    return clean[:MAX_LABELS]


def close(session: Session, handoff_id: int, agent_id: int, *, resolved: bool) -> Handoff:
    """Resolve (the bot will ask for CSAT) or hand back to the bot; the ticket is closed when resolved."""
    handoff = _active(session, handoff_id)
    now = utcnow()
    handoff.status = "resolved" if resolved else "handed_back"
    handoff.resolved_at = now
    handoff.updated_at = now
    if handoff.agent_id is None:
        handoff.agent_id = agent_id
    ticket = repo.ticket(session, handoff.ticket_id)
    if ticket is not None:
        ticket.status = "closed" if resolved else "pending"
    repo.add_note(session, handoff.id, agent_id, "event", handoff.status)
    return handoff


def reopen(session: Session, handoff_id: int, status: str) -> None:
    """Undo a close whose Rasa call failed (the customer must not be left with a silent bot)."""
    handoff = repo.get(session, handoff_id)
    if handoff is not None:
        handoff.status, handoff.resolved_at = status, None


# ---------------------------------------------------------------- views for the console
@dataclass(frozen=True)
class InboxItem:
    id: int
    ticket_number: str
    subject: str
    reason: str
    status: str
    priority: str
    score: float
    customer_id: int | None
    customer_name: str | None
    agent_name: str | None
    channel: str | None
    labels: list[str]
    created_at: datetime
    waiting_s: int
    after_hours: bool


def inbox(session: Session, now: datetime | None = None) -> list[InboxItem]:
    """Active handoffs, most urgent first: ticket level, customer score, longest waiting."""
    now = now or utcnow()
    items = []
    for h, t in repo.active(session):
        customer = customers_repo.get(session, h.customer_id) if h.customer_id else None
        agent = repo.agent(session, h.agent_id) if h.agent_id else None
        items.append(InboxItem(
            h.id, t.number, t.subject, h.reason, h.status, t.priority, h.priority_score, h.customer_id,
            customer.name if customer else None, agent.display_name if agent else None, h.channel,
            list(h.labels or []), h.created_at, int((now - h.created_at).total_seconds()),
            h.after_hours,
        ))
    rank = {p: i for i, p in enumerate(TICKET_PRIORITIES)}
    items.sort(key=lambda i: (i.status != "open", -rank.get(i.priority, 1), -i.score, i.created_at))
    return items


@dataclass(frozen=True)
class NoteView:
    id: int
    kind: str
    text: str
    agent_name: str | None
    created_at: datetime


@dataclass(frozen=True)
class TurnView:
    id: int
    role: str
    text: str
    at: datetime
    from_agent: str | None = None  # the agent's name when a person wrote this bot turn
    sentiment: str | None = None
    payload: bool = False  # ``text`` describes an intent payload (widget start, a button), not typed words


MOOD = {"negative": 0, "neutral": 1, "positive": 2}
PAYLOAD = re.compile(r"/([A-Za-z_][\w-]{0,79})(\{.*\})?", re.DOTALL)
PAYLOAD_WORDS = {"greet": "opened the chat", "deny": "clicked a button: no / skip", "affirm": "clicked a button: yes"}


def payload_description(role: str, text: str | None) -> str | None:
    """What a customer's intent payload means ("/greet" is the widget opening), or None for typed text.

    Why: rasa-webchat sends its start message and button payloads as ``/intent`` messages; shown
    as the customer's words they read as if the customer had typed "/greet".
    """
    match = PAYLOAD.fullmatch((text or "").strip()) if role == "user" else None
    if match is None:
        return None
    intent = match.group(1)
    return PAYLOAD_WORDS.get(intent, "clicked a button: " + intent.replace("_", " "))


@dataclass(frozen=True)
class HandoffView:
    item: InboxItem
    sender_id: str
    agent_id: int | None
    summary: dict[str, Any]
    snapshot: dict[str, Any]
    transcript: list[dict[str, str]]
    notes: list[NoteView]
    assigned_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None


def _item(session: Session, h: Handoff, now: datetime) -> InboxItem:
    t = repo.ticket(session, h.ticket_id)
    customer = customers_repo.get(session, h.customer_id) if h.customer_id else None
    agent = repo.agent(session, h.agent_id) if h.agent_id else None
    return InboxItem(
        h.id, t.number if t else "", t.subject if t else "", h.reason, h.status, t.priority if t else "normal",
        h.priority_score, h.customer_id, customer.name if customer else None,
        agent.display_name if agent else None, h.channel, list(h.labels or []), h.created_at,
        int(((h.resolved_at or now) - h.created_at).total_seconds()), h.after_hours,
    )


def view(session: Session, handoff_id: int) -> HandoffView:
    h = repo.get(session, handoff_id)
    if h is None:
        raise NotFound("handoff", "That conversation doesn't exist.")
    names = {a.id: a.display_name for a in repo.agents(session)}
    notes = [NoteView(n.id, n.kind, n.text, names.get(n.agent_id), n.created_at) for n in repo.notes(session, h.id)]
    return HandoffView(
        _item(session, h, utcnow()), h.sender_id, h.agent_id, dict(h.summary or {}),
        dict(h.snapshot or {}), list(h.transcript or []), notes, h.assigned_at,
        h.first_response_at, h.resolved_at,
    )


def turns(session: Session, sender_id: str, after_id: int = 0) -> list[TurnView]:
    """The conversation as the CRM recorded it (the customer's messages keep arriving while paused)."""
    out = []
    for t in repo.crm_turns(session, sender_id, after_id):
        text = t.text or ""
        head, sep, _ = text[:120].partition(AGENT_MARK)
        from_agent = head if t.role == "bot" and sep and head else None  # a person's reply (rasa_api)
        described = payload_description(t.role, text)
        out.append(TurnView(t.id, t.role, described or text, t.event_at, from_agent, t.sentiment_label,
                            described is not None))
    return out


def conversation_language(turns: list[TurnView]) -> str:
    """``zh`` or ``en``: the language the assistant last answered in (it follows the conversation's
    language slot), else the customer's last typed message; what the console's canned replies and
    the closing messages use."""
    for role in ("bot", "user"):
        for t in reversed(turns):
            if t.role == role and not t.from_agent and not t.payload and t.text.strip():
                return "zh" if is_chinese(t.text) else "en"
    return "en"


def live_sentiment(turns: list[TurnView]) -> dict[str, Any]:
    """The customer's mood over the whole conversation so far (CRM turns, also those after the hand-over).

    Why: the summary stored at escalation only saw the messages before it, and its trend needs two;
    one message already has a label to show, and the customer keeps writing while the agent reads.
    """
    labelled = [t.sentiment for t in turns if t.role == "user" and t.sentiment and not t.payload]
    trend = "unknown"
    if len(labelled) >= 2:
        first, last = MOOD.get(labelled[0], 1), MOOD.get(labelled[-1], 1)
        trend = "worsening" if last < first else "improving" if last > first else "steady"
    return {
        "first": labelled[0] if labelled else None,
        "latest": labelled[-1] if labelled else None,
        "trend": trend,
        "negative_messages": sum(1 for label in labelled if label == "negative"),
        "messages": len(labelled),
    }
