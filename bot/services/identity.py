"""Who is the customer? Signed website tokens and in-chat order-number + email verification.

Token format (ARCHITECTURE.md): ``base64url(json payload) + "." + base64url(HMAC-SHA256(secret, payload))``
with payload ``{"cid": <customer id>, "exp": <unix seconds>}``; base64url without padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import orders as orders_repo
from bot.services.orders import normalize_order_number
from bot.services.types import CustomerInfo

MAX_TOKEN_LENGTH = 1024
MAX_EMAIL_LENGTH = 254


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_=" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_bytes(secret: str | bytes | None) -> bytes:
    if secret is None:
        from bot.settings import get_settings

        secret = get_settings().identity_secret
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _now(now: float | int | None) -> int:
    return int(time.time() if now is None else now)


def sign_token(
    customer_id: int,
    ttl_s: int | None = None,
    secret: str | bytes | None = None,
    now: float | int | None = None,
) -> str:
    """Token the shop website passes as ``customer_token`` metadata for a logged-in customer."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise ValueError("customer_id must be a positive integer")
    if ttl_s is None:
        from bot.settings import get_settings

        ttl_s = get_settings().token_ttl_s
    payload = json.dumps(
        {"cid": customer_id, "exp": _now(now) + int(ttl_s)}, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    signature = hmac.new(_secret_bytes(secret), payload, hashlib.sha256).digest()
    return f"{_b64encode(payload)}.{_b64encode(signature)}"


def verify_token(
    token: object, secret: str | bytes | None = None, now: float | int | None = None
) -> int | None:
    """Customer id of a valid, unexpired token; None for anything else (never raises)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.strip().split(".")
    if len(parts) != 2:
        return None
    try:
        payload = _b64decode(parts[0])
        signature = _b64decode(parts[1])
    except (ValueError, binascii.Error):
        return None
    expected = hmac.new(_secret_bytes(secret), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    cid, exp = data.get("cid"), data.get("exp")
    if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    if _now(now) >= exp:
        return None
    return cid


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
