"""Who is the customer? The one place that decides it, plus signed website tokens and in-chat checks.

An action hands :func:`resolve` what it knows (an :class:`IdentityRequest`: the conversation's
sender id and the latest message's metadata, i.e. the channel's signed claims and maybe a token)
once per action run and gets a :class:`CustomerIdentity` back: a website token checked by the
channel (or on the message) wins, then a chat verification bound to this conversation and to the
session the channel issued to this client. Actions never check claims, tokens or verifications
themselves (tests/test_layers.py holds them to it).

Token format (ARCHITECTURE.md, Identity): ``base64url(json payload) + "." + base64url(HMAC-SHA256(secret, payload))``
with payload ``{"cid": <customer id>, "exp": <unix seconds>, "kid": <key id>}``; base64url without padding.
The format lives in ``concierge_rasa.security`` (standard library only) because the Rasa channels
check tokens too, before a message is stored; this module adds the settings and the database.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import orders as orders_repo
from bot.db import security as security_repo
from bot.db.base import utcnow
from bot.services.orders import normalize_order_number
from bot.services.types import CustomerInfo
from bot.settings import get_settings
from concierge_rasa import security

MAX_TOKEN_LENGTH = security.MAX_TOKEN_CHARS
MAX_EMAIL_LENGTH = 254
TOUCH_EVERY = timedelta(seconds=30)  # a chat verification's last_seen_at is written at most this often


@dataclass(frozen=True)
class IdentityRequest:
    """What an action knows about who is writing, as it came in: nothing here is trusted yet.

    ``metadata`` is the latest user message's metadata as Rasa stored it: the channel's signed
    claims under ``concierge`` and, on channels that leave it in place (rasa shell, tests), a
    ``customer_token``.
    """

    sender_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerIdentity:
    """Who the customer is for this action run, and what the channel vouched for."""

    customer_id: int | None
    by: str | None = None  # "token" | "chat" | None
    claims: Mapping[str, Any] = field(default_factory=dict)  # the channel's genuine claims; {} when none

    @property
    def session_id(self) -> str:
        """The session the channel issued to this client ("" without genuine claims)."""
        value = self.claims.get("session")
        return value if isinstance(value, str) else ""

    @property
    def client(self) -> str | None:
        """The client's one-way address key, when the channel gave one."""
        value = self.claims.get("client")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class UserMessage:
    """One customer message of the conversation, as an action reads it from the tracker."""

    text: str
    timestamp: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def keyring(secret: str | bytes | None = None) -> security.Keyring:
    """The signing keys: ``secret`` alone when given, else the settings' current and previous secrets."""
    if secret is not None:
        return security.Keyring.of(secret)
    settings = get_settings()
    return security.Keyring.of(settings.identity_secret, settings.identity_secret_previous)


def sign_token(
    customer_id: int,
    ttl_s: int | None = None,
    secret: str | bytes | None = None,
    now: float | int | None = None,
) -> str:
    """Token the shop website passes as ``customer_token`` metadata for a logged-in customer.

    Signed with the current secret (its key id inside); lasts ``ttl_s`` seconds, by default
    the settings' ``token_ttl_s`` (one hour).
    """
    if ttl_s is None:
        ttl_s = get_settings().token_ttl_s
    return security.sign_token(customer_id, int(ttl_s), keyring(secret).current, now=now)


def verify_token(
    token: object, secret: str | bytes | None = None, now: float | int | None = None
) -> int | None:
    """Customer id of a valid, unexpired token (current or previous key); None otherwise (never raises).

    The signature only: whether the customer still exists is :func:`customer_from_token`'s job.
    """
    checked = security.verify_token(token, keyring(secret), now=now)
    return checked[0] if checked else None


def customer_from_token(session: Session, token: object, now: float | int | None = None) -> int | None:
    """Customer id of a valid token whose customer is still active (deleted customers are refused)."""
    customer_id = verify_token(token, now=now)
    return active_customer_id(session, customer_id)


def active_customer_id(session: Session, customer_id: object) -> int | None:
    """``customer_id`` when it names an active customer, else None."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        return None
    return customer_id if customers_repo.get_active(session, customer_id) is not None else None


def verify_order_email(session: Session, order_number: object, email: object) -> int | None:
    """Customer id when the order exists and ``email`` is its customer's (case-insensitive)."""
    if not isinstance(order_number, str) or not isinstance(email, str):
        return None
    number = normalize_order_number(order_number)
    cleaned = email.strip().lower()
    if number is None or not cleaned or len(cleaned) > MAX_EMAIL_LENGTH:
        return None
    order = orders_repo.get_by_number(session, number)
    if order is None:
        return None
    customer = customers_repo.get_active(session, order.customer_id)
    if customer is None:
        return None
    if not hmac.compare_digest(customer.email.strip().lower().encode(), cleaned.encode()):
        return None
    return customer.id


def get_customer(session: Session, customer_id: int | None) -> CustomerInfo | None:
    """Active customer as a dataclass; None when unknown or deleted."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        return None
    customer = customers_repo.get_active(session, customer_id)
    if customer is None:
        return None
    return CustomerInfo(
        id=customer.id,
        name=customer.name,
        email=customer.email,
        tier=customer.tier,
        newsletter=bool(customer.newsletter),
    )


# ---------------------------------------------------------------- the one decision
def server_claims(metadata: object) -> dict[str, Any]:
    """The channel's signed claims in ``metadata``; empty when absent or not genuine."""
    return security.verify_claims(metadata, keyring()) or {}


def resolve(session: Session, request: IdentityRequest, now: float | None = None) -> CustomerIdentity:
    """Who is writing: a token checked by the channel (claims) or left on the message, else a chat
    verification of this conversation in this client session, else nobody.

    A sender id alone, or a slot, never names a customer: the claims are signed by the channel,
    tokens by the website, and chat verifications live in the database.
    """
    claims = server_claims(request.metadata)
    clock = time.time() if now is None else now
    cid, exp = claims.get("cid"), claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and clock < exp:
        customer_id = active_customer_id(session, cid)
        if customer_id is not None:
            return CustomerIdentity(customer_id, "token", claims)
    token = request.metadata.get("customer_token")
    if token:  # channels that leave the token in place (rasa shell, tests): same check
        customer_id = customer_from_token(session, token, now=now)
        if customer_id is not None:
            return CustomerIdentity(customer_id, "token", claims)
    session_id = claims.get("session") if isinstance(claims.get("session"), str) else ""
    customer_id = chat_verified_customer(session, request.sender_id, session_id)
    if customer_id is not None:
        return CustomerIdentity(customer_id, "chat", claims)
    return CustomerIdentity(None, None, claims)


def chat_verified_customer(
    session: Session, sender_id: str, session_id: str | None, now: datetime | None = None
) -> int | None:
    """The customer this conversation proved to be in this session, unless idle too long or deleted.

    The binding is written by ``bot.services.verification.verify_in_chat``; reading it is part of
    deciding who the customer is, so it lives here.
    """
    now = now or utcnow()
    row = security_repo.get_chat_verification(session, sender_id[:128], (session_id or "")[:64])
    if row is None:
        return None
    if now - row.last_seen_at > timedelta(seconds=get_settings().session_idle_s):
        session.delete(row)
        session.flush()
        return None
    customer_id = active_customer_id(session, row.customer_id)
    if customer_id is None:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return customer_id


def typed_in_session(
    messages: Sequence[UserMessage], email: object, session_id: str, now: float | None = None
) -> bool:
    """True when the client of session ``session_id`` typed ``email`` itself (in any of its messages).

    An email remembered in the conversation (a slot, prefilled again when a form starts) is proof
    of ownership only for the client session that typed it: someone continuing the conversation
    from another session must type it again, and a message older than a lapse of ``session_idle_s``
    proves nothing now. Without a session (no claims) nothing can be told apart: True.
    """
    if not session_id:
        return True
    wanted = str(email or "").strip().lower()
    if not wanted:
        return False
    keys = keyring()
    since = (time.time() if now is None else now) - get_settings().session_idle_s
    for message in messages:
        if wanted not in message.text.lower():
            continue
        stamp = message.timestamp
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp < since:
            continue
        claims = security.verify_claims(message.metadata or {}, keys) or {}
        if claims.get("session") == session_id:
            return True
    return False


def customer_of_message(metadata: object, token: str | None, sent_at: float) -> int | None:
    """The customer a stored message came from (the CRM ingestor): the channel's signed claims
    (the website token it checked), else a token left on the message; judged at the time it was
    sent, since the ingestor may read it later (after an outage). No database: the CRM records
    what the message said."""
    claims = server_claims(metadata)
    if claims:
        cid, exp = claims.get("cid"), claims.get("exp")
        if isinstance(cid, int) and not isinstance(cid, bool) and isinstance(exp, (int, float)) and exp >= sent_at:
            return cid
    return verify_token(token, now=sent_at) if token else None
