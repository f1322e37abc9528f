"""Account changes of the verified customer (email, newsletter, addresses)."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.services._convert import format_address
from bot.services.errors import InvalidInput, NotAllowed, NotFound
from bot.services.identity import get_customer
from bot.services.orders import parse_address
from bot.services.types import CustomerInfo

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9._%+\-']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}$"
)


def _customer(session: Session, customer_id: int):  # noqa: ANN202 - ORM object stays inside
    customer = customers_repo.get_active(session, customer_id) if isinstance(customer_id, int) else None
    if customer is None:
        raise NotFound("customer_not_found", "I couldn't find your account.")
    return customer


def normalize_email(text: object) -> str | None:
    """Lower-cased email when plausible, else None."""
    if not isinstance(text, str) or len(text) > 254:
        return None
    email = text.strip().lower()
    return email if EMAIL_RE.match(email) else None


def change_email(session: Session, customer_id: int, new_email: str) -> CustomerInfo:
    """Change the login email; InvalidInput for bad format, NotAllowed('email_in_use') if taken."""
    customer = _customer(session, customer_id)
    email = normalize_email(new_email)
    if email is None:
        raise InvalidInput(
            "invalid_email", "That doesn't look like a valid email address, e.g. name@example.com."
        )
    if email != customer.email.lower() and customers_repo.email_taken(session, email, exclude_id=customer.id):
        raise NotAllowed("email_in_use", "That email address is already used by another account.")
    customer.email = email
    session.flush()
    return get_customer(session, customer.id)


def set_newsletter(session: Session, customer_id: int, subscribed: bool) -> CustomerInfo:
    customer = _customer(session, customer_id)
    customer.newsletter = bool(subscribed)
    session.flush()
    return get_customer(session, customer.id)


def add_address(session: Session, customer_id: int, address_text: str, make_default: bool = True) -> str:
    """Parse and store a new address; returns it formatted for confirmation."""
    customer = _customer(session, customer_id)
    parts = parse_address(address_text)
    address = customers_repo.add_address(session, customer.id, make_default=make_default, **parts)
    return format_address(address)
