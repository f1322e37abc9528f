"""Who is the customer? Signed website tokens and in-chat order-number + email verification.

Token format (ARCHITECTURE.md, Identity): ``base64url(json payload) + "." + base64url(HMAC-SHA256(secret, payload))``
with payload ``{"cid": <customer id>, "exp": <unix seconds>, "kid": <key id>}``; base64url without padding.
The format lives in ``concierge_rasa.security`` (standard library only) because the Rasa channels
check tokens too, before a message is stored; this module adds the settings and the database.
"""

from __future__ import annotations

import hmac

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import orders as orders_repo
from bot.services.orders import normalize_order_number
from bot.services.types import CustomerInfo
from concierge_rasa import security

MAX_TOKEN_LENGTH = security.MAX_TOKEN_CHARS
MAX_EMAIL_LENGTH = 254


def keyring(secret: str | bytes | None = None) -> security.Keyring:
    """The signing keys: ``secret`` alone when given, else the settings' current and previous secrets."""
    if secret is not None:
        return security.Keyring.of(secret)
    from bot.settings import get_settings

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
        from bot.settings import get_settings

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
