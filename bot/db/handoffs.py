"""Handoffs, agents, console sessions and the audit log (queries only; callers commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import Agent, AgentSession, AuditEntry, Conversation, Handoff, HandoffNote, SupportTicket, Turn

ACTIVE_STATUSES = ("open", "assigned", "waiting")


# ---------------------------------------------------------------- handoffs
def get(session: Session, handoff_id: int) -> Handoff | None:
    return session.get(Handoff, handoff_id)


def active_for_sender(session: Session, sender_id: str) -> Handoff | None:
    """The conversation's handoff a person is (or will be) handling, if any."""
    return session.scalars(
        select(Handoff)
        .where(Handoff.sender_id == sender_id, Handoff.status.in_(ACTIVE_STATUSES))
        .order_by(Handoff.id.desc())
        .limit(1)
    ).first()


def for_ticket(session: Session, ticket_id: int) -> Handoff | None:
    return session.scalars(select(Handoff).where(Handoff.ticket_id == ticket_id)).first()


def add(session: Session, handoff: Handoff) -> Handoff:
    session.add(handoff)
    session.flush()
    return handoff


def ticket(session: Session, ticket_id: int) -> SupportTicket | None:
    return session.get(SupportTicket, ticket_id)


def ticket_by_number(session: Session, number: str) -> SupportTicket | None:
    return session.scalars(select(SupportTicket).where(SupportTicket.number == number)).first()


def active(session: Session) -> list[tuple[Handoff, SupportTicket]]:
    """Open, assigned and waiting handoffs with their tickets (the service orders them)."""
    rows = session.execute(
        select(Handoff, SupportTicket)
        .join(SupportTicket, SupportTicket.id == Handoff.ticket_id)
        .where(Handoff.status.in_(ACTIVE_STATUSES))
    ).all()
    return [(h, t) for h, t in rows]


def queued_ahead(session: Session, score: float, created_at: datetime) -> int:
    """Unclaimed handoffs served before one with this score and age."""
    return int(
        session.scalar(
            select(func.count(Handoff.id)).where(
                Handoff.status == "open",
                (Handoff.priority_score > score)
                | ((Handoff.priority_score == score) & (Handoff.created_at < created_at)),
            )
        )
        or 0
    )


def notes(session: Session, handoff_id: int) -> list[HandoffNote]:
    return list(
        session.scalars(
            select(HandoffNote).where(HandoffNote.handoff_id == handoff_id).order_by(HandoffNote.id)
        )
    )


def add_note(session: Session, handoff_id: int, agent_id: int | None, kind: str, text: str) -> HandoffNote:
    note = HandoffNote(handoff_id=handoff_id, agent_id=agent_id, kind=kind, text=text)
    session.add(note)
    session.flush()
    return note


# ---------------------------------------------------------------- the CRM record of the conversation
def crm_turns(session: Session, sender_id: str, after_id: int = 0, limit: int = 500) -> list[Turn]:
    """User and bot turns of the sender's CRM conversations, oldest first, with ids above ``after_id``."""
    return list(
        session.scalars(
            select(Turn)
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(Conversation.sender_id == sender_id, Turn.role.in_(("user", "bot")), Turn.id > after_id)
            .order_by(Turn.id)
            .limit(limit)
        )
    )


def last_customer_turn_at(session: Session, sender_id: str) -> datetime | None:
    return session.scalar(
        select(func.max(Turn.event_at))
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(Conversation.sender_id == sender_id, Turn.role == "user")
    )


# ---------------------------------------------------------------- agents and sessions
def agent(session: Session, agent_id: int) -> Agent | None:
    return session.get(Agent, agent_id)


def agent_by_username(session: Session, username: str) -> Agent | None:
    return session.scalars(select(Agent).where(Agent.username == username)).first()


def agents(session: Session) -> list[Agent]:
    return list(session.scalars(select(Agent).order_by(Agent.role.desc(), Agent.username)))


def add_agent(session: Session, agent_row: Agent) -> Agent:
    session.add(agent_row)
    session.flush()
    return agent_row


def online_agents(session: Session, since: datetime) -> int:
    return int(
        session.scalar(select(func.count(Agent.id)).where(Agent.active.is_(True), Agent.last_seen_at >= since)) or 0
    )


def session_row(session: Session, token_hash: str) -> AgentSession | None:
    return session.get(AgentSession, token_hash)


def add_session(session: Session, row: AgentSession) -> None:
    session.add(row)
    session.flush()


def delete_session(session: Session, token_hash: str) -> None:
    row = session.get(AgentSession, token_hash)
    if row is not None:
        session.delete(row)


# ---------------------------------------------------------------- audit
def audit(session: Session, agent_id: int | None, action: str, target: str = "", detail: str = "",
          client: str = "") -> None:
    session.add(AuditEntry(agent_id=agent_id, action=action[:40], target=target[:120], detail=detail[:2000],
                           client=client[:64]))


def audit_entries(session: Session, limit: int = 200) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
