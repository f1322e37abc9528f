"""Order tracking, cancellation and shipping-address changes for the verified customer only."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from bot.analytics.topics_zh import is_chinese
from bot.db import customers as customers_repo
from bot.db import orders as orders_repo
from bot.db import refunds as refunds_repo
from bot.db.base import utcnow
from bot.db.models import Order
from bot.services import address_zh
from bot.services._convert import money, order_summary, refund_info
from bot.services.errors import InvalidInput, NotAllowed, order_not_found
from bot.services.types import CancellationResult, OrderSummary

MAX_ORDER_TEXT = 64
MAX_ADDRESS_TEXT = 300
_ORDER_RE = re.compile(
    r"^(?:(?:order|bestellung)(?:\s*(?:number|no\.?|nr\.?|num(?:ber)?|id))?\s*[:#]?\s*)?#?\s*(\d{6})$",
    re.IGNORECASE,
)
CHANGEABLE = ("pending", "processing")
_REFUSALS = {
    "shipped": ("already_shipped", "Order #{n} has already shipped, so it can no longer be {verb}."),
    "delivered": ("already_delivered", "Order #{n} has already been delivered, so it can't be {verb}."),
    "cancelled": ("already_cancelled", "Order #{n} is already cancelled."),
    "returned": ("returned", "Order #{n} has been returned, so it can't be {verb}."),
}


def normalize_order_number(text: object) -> str | None:
    """'#104233', ' 104233 ', 'order 104233' -> '104233'; None for anything malformed."""
    if not isinstance(text, str) or len(text) > MAX_ORDER_TEXT:
        return None
    match = _ORDER_RE.match(text.strip())
    if not match:
        return None
    number = match.group(1)
    return number if int(number) >= 100001 else None


def _require_number(order_number: object) -> str:
    number = normalize_order_number(order_number)
    if number is None:
        raise InvalidInput(
            "invalid_order_number", "Order numbers have 6 digits, like #104233. Could you check it?"
        )
    return number


def load_order(session: Session, customer_id: int, order_number: object) -> Order:
    """The customer's order or the one NotFound used for missing *and* foreign orders."""
    number = _require_number(order_number)
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise order_not_found()
    order = orders_repo.get_for_customer(session, customer_id, number)
    if order is None:
        raise order_not_found()
    return order


def get_order(session: Session, customer_id: int, order_number: str) -> OrderSummary:
    """Status, items, shipment and address of one of the customer's orders."""
    return order_summary(load_order(session, customer_id, order_number))


def recent_orders(session: Session, customer_id: int, limit: int = 3) -> list[OrderSummary]:
    """The customer's latest orders, newest first."""
    limit = max(0, min(int(limit), 50))
    return [order_summary(o) for o in orders_repo.recent_for_customer(session, customer_id, limit)]


def _check_changeable(order: Order, verb: str) -> None:
    if order.status in CHANGEABLE:
        return
    code, template = _REFUSALS.get(order.status, ("not_allowed", "Order #{n} can't be {verb}."))
    raise NotAllowed(code, template.format(n=order.number, verb=verb))


def check_cancellable(session: Session, customer_id: int, order_number: str) -> OrderSummary:
    """The order when it can still be cancelled (pending/processing); NotAllowed otherwise."""
    order = load_order(session, customer_id, order_number)
    _check_changeable(order, "cancelled")
    return order_summary(order)


def cancel_order(
    session: Session, customer_id: int, order_number: str, now: datetime | None = None
) -> CancellationResult:
    """Cancel, restock, and refund the payment in full when it was already paid."""
    now = now or utcnow()
    order = load_order(session, customer_id, order_number)
    _check_changeable(order, "cancelled")
    order.status = "cancelled"
    order.updated_at = now
    for item in order.items:
        item.product.stock += item.quantity
    paid = money(sum((p.amount for p in order.payments if p.status == "paid"), start=money(0)))
    for payment in order.payments:
        if payment.status == "paid":
            payment.status = "refunded"
        elif payment.status == "pending":
            payment.status = "failed"
    refund = None
    if paid > 0:
        row = refunds_repo.create(
            session,
            order_id=order.id,
            amount=paid,
            kind="refund",
            status="approved",
            reason="Order cancelled by customer",
            now=now,
        )
        session.expire(order, ["refunds"])
        session.refresh(row)
        refund = refund_info(row)
    session.flush()
    return CancellationResult(order=order_summary(order), refund=refund)


def check_address_changeable(session: Session, customer_id: int, order_number: str) -> OrderSummary:
    """The order when its shipping address can still change (pending/processing)."""
    order = load_order(session, customer_id, order_number)
    _check_changeable(order, "changed")
    return order_summary(order)


def change_shipping_address(
    session: Session, customer_id: int, order_number: str, address_text: str
) -> OrderSummary:
    """Create a new address row for the customer and point the order at it."""
    order = load_order(session, customer_id, order_number)
    _check_changeable(order, "changed")
    parts = parse_address(address_text)
    address = customers_repo.add_address(session, customer_id, make_default=False, **parts)
    order.shipping_address_id = address.id
    order.shipping_address = address
    order.updated_at = utcnow()
    session.flush()
    return order_summary(order)


# --- address parsing -------------------------------------------------------------------------

_POSTCODE_RE = re.compile(
    r"\b(\d{5}-\d{4}|\d{4,6}|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b", re.IGNORECASE
)
_NAME_RE = re.compile(r"^[^\W\d_][^\W\d_ .'\-]*(?:[ .'\-]+[^\W\d_]+)*\.?$")
_LINE2_RE = re.compile(r"^(apt|apartment|suite|ste|unit|floor|fl|flat|room|building|bldg|c/o)\b", re.I)
_FORBIDDEN = set("<>{}[]|\\^`$;=")


_CHINESE_PROBLEMS = {
    "city": "I couldn't find the city.",
    "street": "The street needs a house number.",
    "too long": "That address is too long.",
}


def _invalid_address(detail: str) -> InvalidInput:
    return InvalidInput(
        "invalid_address",
        f"{detail} Please give the street with house number, the city and the postcode, "
        "e.g. '12 Rose Street, Springfield, 12345'.",
    )


_STREET_START = re.compile(r"(?<![\d.])\b\d{1,5}[A-Za-z]?\s+(?=[^\W\d_]{2,})")
_TRAILING = re.compile(r"(?:[\s,.!]*\b(?:instead|please|pls|plz|thanks|thank you|thx|now|asap|then)\b)+[\s.!]*$", re.I)


def address_in_text(text: str) -> dict | None:
    """The address inside a longer message ("ship 190011 to 77 Pine Road, Denver, 80203 instead"),
    parsed, or None: from the first house number to the end, less polite words at the end."""
    if not isinstance(text, str) or len(text) > MAX_ADDRESS_TEXT or is_chinese(text):
        return None
    for start in _STREET_START.finditer(text):
        candidate = _TRAILING.sub("", text[start.start():])
        try:
            return parse_address(candidate)
        except InvalidInput:
            continue
    return None


def parse_address(text: object) -> dict:
    """Split free text into line1/line2/city/postcode/country; InvalidInput when implausible.

    Text with Chinese characters is read as a Chinese address (big to small, postcode optional)."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid_address("I didn't get an address.")
    if len(text) > MAX_ADDRESS_TEXT:
        raise _invalid_address("That address is too long.")
    if any(c in _FORBIDDEN or (ord(c) < 32 and c not in "\n\t") for c in text):
        raise _invalid_address("That doesn't look like an address.")
    if is_chinese(text):
        try:
            return address_zh.parse_chinese_address(text)
        except address_zh.AddressProblem as problem:
            raise _invalid_address(_CHINESE_PROBLEMS.get(str(problem), "I couldn't read that address.")) from None
    parts = [p.strip(" .") for p in re.split(r"[,\n;]+", text) if p.strip(" .")]
    if len(parts) < 2:
        raise _invalid_address("I need a few more details.")
    line1 = parts[0]
    if not re.search(r"\d", line1) or not re.search(r"[^\W\d_]{2,}", line1) or len(line1) > 120:
        raise _invalid_address("The street needs a house number.")
    line2 = None
    postcode = None
    names: list[str] = []
    for part in parts[1:]:
        if line2 is None and not names and postcode is None and _LINE2_RE.match(part):
            line2 = part
            continue
        match = _POSTCODE_RE.search(part) if postcode is None else None
        if match:
            postcode = match.group(1).upper()
            rest = (part[: match.start()] + " " + part[match.end() :]).strip(" .-")
            if rest:
                names.append(rest)
            continue
        names.append(part)
    if postcode is None:
        raise _invalid_address("I couldn't find a postcode.")
    names = [re.sub(r"\s+", " ", n) for n in names]
    if not names or not all(_NAME_RE.match(n) and len(n) <= 60 for n in names):
        raise _invalid_address("I couldn't find the city.")
    city = names[0]
    country = "United States"
    extra = names[1:]
    if extra and len(extra[0]) == 2 and extra[0].isupper() and len(extra) == 1:
        city = f"{city} {extra[0]}"  # US state abbreviation, e.g. "Springfield IL"
    elif extra:
        country = extra[-1]
        if len(extra) > 1:
            city = f"{city} {' '.join(extra[:-1])}"
    return {"line1": line1, "line2": line2, "city": city, "postcode": postcode, "country": country}
