"""Limits on in-chat verification and tickets, and chat verifications bound to a session.

Why: a lock-out kept in one conversation's slots is lifted by starting a new conversation
(or ``/restart``), and a verified conversation was open to anyone using its sender id. Here the
failures are counted in the database per order number and per client address, whatever the
conversation, with a wait that doubles after each further failure; and a chat verification is
bound to the conversation *and* to the session id the channel issued to that client (a secret
credential only that client holds), ending after ``session_idle_s`` without a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.db import security as security_repo
from bot.db import tickets as tickets_repo
from bot.db.base import utcnow
from bot.services import identity as identity_service
from bot.services.orders import normalize_order_number
from bot.settings import Settings, get_settings

ORDER, CLIENT, TICKET_CLIENT = "verify_order", "verify_client", "ticket_client"


@dataclass(frozen=True)
class Wait:
    """How long before another verification is allowed (0: now)."""

    seconds: int

    @property
    def allowed(self) -> bool:
        return self.seconds <= 0


def wait_message(seconds: int) -> str:
    """The polite answer while verification is paused (says how long, offers other ways)."""
    if seconds < 90:
        span = "a minute"
    elif seconds < 3600:
        span = f"{-(-seconds // 60)} minutes"
    elif seconds < 7200:
        span = "an hour"
    else:
        span = f"{-(-seconds // 3600)} hours"
    return (
        "For your security I've paused checking order numbers and emails after several attempts "
        f"that didn't match. Please try again in {span}. If you're signed in on our website, you can "
        'chat from there right away, or type "human" and our support team will help.'
    )


def _keys(order_number: str | None, client: str | None) -> list[tuple[str, str]]:
    keys = []
    if order_number:
        keys.append((ORDER, str(order_number)[:128]))
    if client:
        keys.append((CLIENT, str(client)[:128]))
    return keys


def _free(kind: str, settings: Settings) -> int:
    return settings.verify_max_failures if kind == ORDER else settings.verify_client_max_failures


def verification_wait(
    session: Session, order_number: str | None, client: str | None, now: datetime | None = None
) -> Wait:
    """Seconds until order ``order_number`` may be checked again from ``client`` (0 = go ahead)."""
    now = now or utcnow()
    wait = 0
    for kind, key in _keys(order_number, client):
        counter = security_repo.get_counter(session, kind, key)
        if counter is not None and counter.locked_until is not None and counter.locked_until > now:
            wait = max(wait, int((counter.locked_until - now).total_seconds()) + 1)
    return Wait(wait)


def record_failure(
    session: Session, order_number: str | None, client: str | None, now: datetime | None = None
) -> Wait:
    """Counts a failed verification; past the free attempts each failure doubles the wait."""
    settings = get_settings()
    now = now or utcnow()
    window = timedelta(seconds=settings.verify_window_s)
    wait = 0
    for kind, key in _keys(order_number, client):
        counter = security_repo.counter_for_update(session, kind, key, now)
        if now - counter.last_at > window:  # quiet long enough: start over
            counter.count, counter.window_start, counter.locked_until = 0, now, None
        counter.count += 1
        counter.last_at = now
        over = counter.count - _free(kind, settings)
        if over >= 0:
            seconds = min(settings.verify_backoff_max_s, settings.verify_backoff_s * (2 ** min(over, 30)))
            counter.locked_until = now + timedelta(seconds=seconds)
            wait = max(wait, seconds)
    session.flush()
    return Wait(wait)


def record_success(session: Session, order_number: str) -> None:
    """The real owner proved it: the order's counter starts over (the client's does not)."""
    security_repo.delete_counter(session, ORDER, str(order_number)[:128])


def bind_chat_verification(
    session: Session, sender_id: str, session_id: str | None, customer_id: int, now: datetime | None = None
) -> None:
    """Records that this conversation, in this client session, proved to be ``customer_id``."""
    security_repo.save_chat_verification(
        session, sender_id[:128], (session_id or "")[:64], customer_id, now or utcnow()
    )


def end_chat_verification(session: Session, sender_id: str) -> int:
    """Forgets every chat verification of the conversation (the customer left the task or restarted)."""
    return security_repo.delete_chat_verifications(session, sender_id[:128])


def ticket_allowed(session: Session, sender_id: str, client: str | None, now: datetime | None = None) -> bool:
    """False once this conversation or this client address opened as many tickets as allowed."""
    settings = get_settings()
    if len(tickets_repo.for_conversation(session, sender_id[:128])) >= settings.tickets_per_conversation:
        return False
    if client:
        counter = security_repo.get_counter(session, TICKET_CLIENT, client[:128])
        now = now or utcnow()
        if (
            counter is not None
            and now - counter.window_start < timedelta(days=1)
            and counter.count >= settings.tickets_per_client_day
        ):
            return False
    return True


def record_ticket(session: Session, client: str | None, now: datetime | None = None) -> None:
    """Counts a ticket opened from ``client`` (a day's window)."""
    if not client:
        return
    now = now or utcnow()
    counter = security_repo.counter_for_update(session, TICKET_CLIENT, client[:128], now)
    if now - counter.window_start >= timedelta(days=1):
        counter.count, counter.window_start = 0, now
    counter.count += 1
    counter.last_at = now
    session.flush()


TICKET_LIMIT_MESSAGE = (
    "I've already passed your request to our support team, and they'll get back to you. "
    "To keep things tidy I can't open more tickets from this chat right now."
)


@dataclass(frozen=True)
class ChatCheck:
    """Outcome of one in-chat verification: the customer, or how long to wait before the next try."""

    customer_id: int | None
    wait_s: int = 0
    checked: bool = True


def verify_in_chat(
    session: Session,
    sender_id: str,
    session_id: str | None,
    client: str | None,
    order_number: str,
    email: str,
) -> ChatCheck:
    """Order number + email check under the limits; on success binds the customer to this session.

    While the order or the client address is paused nothing is checked at all, so a paused
    attacker learns nothing, not even from the right email.
    """
    key = normalize_order_number(order_number) or str(order_number).strip()[:32]
    wait = verification_wait(session, key, client)
    if not wait.allowed:
        return ChatCheck(None, wait.seconds, checked=False)
    customer_id = identity_service.verify_order_email(session, order_number, email)
    if customer_id is None:
        return ChatCheck(None, record_failure(session, key, client).seconds)
    record_success(session, key)
    bind_chat_verification(session, sender_id, session_id, customer_id)
    return ChatCheck(customer_id)
