"""Refund/return policy and requests: delivered within ``settings.refund_window_days``, not yet refunded."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from bot.db import refunds as refunds_repo
from bot.db.base import utcnow
from bot.db.models import Order, OrderItem
from bot.services._convert import money, refund_info
from bot.services.errors import InvalidInput, NotAllowed, refund_not_found
from bot.services.orders import load_order, normalize_order_number
from bot.services.types import Eligibility, RefundInfo
from bot.settings import get_settings

MAX_ITEM_TEXT = 200
MAX_REASON = 1000
_REFUND_RE = re.compile(r"^\s*(?:refund|return)?\s*#?\s*RF[-\s]?(\d{6})\s*$", re.IGNORECASE)
_OPEN = ("requested", "approved", "completed")  # rejected refunds do not block a new request


def _window_days() -> int:
    return get_settings().refund_window_days


def _tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def match_item(order: Order, item: str) -> OrderItem | None:
    """The order line whose product best matches ``item`` (sku, substring, or most shared words)."""
    wanted = item.strip().lower()[:MAX_ITEM_TEXT]
    if not wanted:
        return None
    best, best_score = None, 0.0
    wanted_tokens = set(_tokens(wanted))
    for line in order.items:
        name = line.product.name.lower()
        if wanted == line.product.sku.lower():
            return line
        if wanted in name or (len(name) >= 4 and name in wanted):
            score = 1.0
        elif wanted_tokens:
            name_tokens = set(_tokens(name)) | {line.product.category.lower()}
            hits = sum(
                1 for t in wanted_tokens if t in name_tokens or (len(t) > 3 and t.rstrip("s") in name_tokens)
            )
            score = hits / len(wanted_tokens)
        else:
            score = 0.0
        if score > best_score:
            best, best_score = line, score
    return best if best_score >= 0.5 else None


# words of product names that tell no item apart ("Neo", "Pro") or are no item at all
_NOT_AN_ITEM = frozenset(
    ["the", "and", "with", "for", "one", "pro", "max", "neo", "air", "mini", "lite", "plus", "edge", "set", "new"]
)
_NEGATED = re.compile(r"\b(?:not|no|never|isn'?t|wasn'?t|instead of)\s+(?:the\s+|my\s+|a\s+|that\s+)?$")


def _item_words(name: str) -> tuple[str, set[str]]:
    """(the product type's head word, the other words) of a product name: "Nimbus Lite Phone Case"
    is a case; "Salt, Fire & Time Cookbook by Theo Barnes" is a cookbook."""
    words = [w for w in _tokens(name.lower().split(" by ")[0]) if len(w) > 2 and w not in _NOT_AN_ITEM]
    return (words[-1], set(words[:-1])) if words else ("", set())


def mentioned_item(order: Order, text: str) -> OrderItem | None:
    """The one order line a free-text message names ("return the cookbook from 190009, it's
    damaged"; "the chef's knife, not the board"), or None when it names none or several.

    Unlike ``match_item`` (an answer to "which item?", compared whole), this looks for the product's
    own words inside a longer message. The type must be named and counts most: "the phone" is the
    smartphone, "the phone case" the case, "the blue ones" none; a line named after "not" is ruled out."""
    low = text.lower()[:500]
    said = [(m.group(0), m.start()) for m in re.finditer(r"[^\W_]+", low)]
    scores: dict[int, int] = {}
    for i, line in enumerate(order.items):
        head, others = _item_words(line.product.name)
        score, named, ruled_out = 0, False, False
        for word, at in said:
            stem = word[:-1] if word.endswith("s") and len(word) > 4 else word
            if head and (stem == head or (len(stem) >= 4 and head.endswith(stem))):
                points, named = 2, True
            elif stem in others:
                points = 1
            else:
                continue
            ruled_out = ruled_out or bool(_NEGATED.search(low[max(0, at - 24):at]))
            score += points
        if named and not ruled_out:  # the type itself: "the blue ones" names no item of a "Maison Blue" board
            scores[i] = score
    if not scores:
        return None
    best = max(scores.values())
    top = [i for i, score in scores.items() if score == best]
    return order.items[top[0]] if len(top) == 1 else None


_REASON_WORDS = re.compile(
    r"\b(damaged|broken|broke|cracked|scratched|dented|defective|faulty|ripped|torn|leak\w*|"
    r"wrong (?:size|colou?r|item|model|one)|too (?:small|big|large|tight|loose)|(?:does ?n[o']?t|didn'?t) (?:fit|work)|"
    r"not as described|not what i (?:ordered|expected)|changed my mind|stopped working|not working|"
    r"never (?:arrived|came)|arrived late|missing|poor quality|bad quality|don'?t (?:need|want|like) it|"
    r"no longer need)\b", re.I)
_CLAUSES = re.compile(r"\s*(?:[,.;!?]+|\s-\s|\b(?:because|cause|coz|cuz|since|as|and|but)\b)\s*", re.I)
_THE_REQUEST = re.compile(r"\b(refund|return|money back|send (?:it )?back|exchange)\b", re.I)


def reason_in_text(text: str) -> str | None:
    """The reason a refund or return request gives besides the request itself ("..., it arrived
    damaged"; "... because it doesn't fit"), so the form does not ask for it again."""
    clauses = [c.strip() for c in _CLAUSES.split(text[:MAX_REASON]) if c and c.strip()]
    for clause in clauses:  # not the request itself ("I want to return my broken phone")
        if _REASON_WORDS.search(clause) and not _THE_REQUEST.search(clause) and len(clause) >= 4:
            return clause.rstrip(" .!")
    return None


def _day(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


def _delivered_at(order: Order) -> datetime | None:
    for shipment in reversed(order.shipments):
        if shipment.delivered_at is not None:
            return shipment.delivered_at
    return None


Evaluation = tuple[Eligibility, "OrderItem | None", Decimal]


def _no(code: str, message: str, line: OrderItem | None = None) -> Evaluation:
    return Eligibility(False, code, message), line, money(0)


def _evaluate(order: Order, item: str | None, now: datetime) -> Evaluation:
    """Eligibility plus the matched line and the refundable amount."""
    n = order.number
    days = _window_days()
    if order.status in ("pending", "processing"):
        return _no(
            "not_shipped",
            f"Order #{n} hasn't shipped yet, so you can simply cancel it instead.",
        )
    if order.status == "shipped":
        return _no(
            "not_delivered",
            f"Order #{n} is still on its way. Once it's delivered you have {days} days to request a refund.",
        )
    if order.status == "cancelled":
        return _no(
            "cancelled",
            f"Order #{n} was cancelled; any payment was refunded automatically.",
        )
    if order.status == "returned":
        return _no(
            "already_returned",
            f"Order #{n} has already been returned.",
        )
    delivered = _delivered_at(order) or order.updated_at
    if now - delivered > timedelta(days=days):
        return _no(
            "window_expired",
            f"Order #{n} was delivered on {_day(delivered)}, more than {days} days ago, "
            f"so it's outside our {days}-day refund window.",
        )
    if not any(p.status == "paid" for p in order.payments):
        return _no(
            "not_paid",
            f"There is no completed payment on order #{n} to refund.",
        )
    open_refunds = [r for r in order.refunds if r.status in _OPEN]
    line = None
    if item is not None and str(item).strip():
        line = match_item(order, str(item))
        if line is None:
            return _no(
                "item_not_found",
                f"I couldn't find that item in order #{n}.",
            )
    if any(r.order_item_id is None for r in open_refunds):
        return _no(
            "already_refunded",
            f"A refund for order #{n} has already been requested.",
            line,
        )
    if line is not None:
        if any(r.order_item_id == line.id for r in open_refunds):
            return _no(
                "already_refunded",
                f"A refund for the {line.product.name} has already been requested.",
                line,
            )
        amount = money(line.unit_price * line.quantity)
    else:
        amount = money(order.total) - money(sum((r.amount for r in open_refunds), start=Decimal(0)))
        if amount <= 0:
            return _no(
                "already_refunded",
                f"Everything in order #{n} has already been refunded.",
            )
    what = line.product.name if line is not None else f"order #{n}"
    return (
        Eligibility(
            True,
            "eligible",
            f"Good news: {what} was delivered on {_day(delivered)}, within our {days}-day window, "
            "so it qualifies for a refund.",
        ),
        line,
        amount,
    )


def check_refund_eligibility(
    session: Session,
    customer_id: int,
    order_number: str,
    item: str | None = None,
    now: datetime | None = None,
) -> Eligibility:
    """Apply the written refund policy to one of the customer's orders (NotFound if not theirs)."""
    order = load_order(session, customer_id, order_number)
    return _evaluate(order, item, now or utcnow())[0]


def request_refund(
    session: Session,
    customer_id: int,
    order_number: str,
    kind: str = "refund",
    item: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> RefundInfo:
    """Create a refund/return request for the whole order or one item; NotAllowed when ineligible."""
    if kind not in ("refund", "return"):
        raise InvalidInput("invalid_kind", "I can arrange either a refund or a return.")
    now = now or utcnow()
    order = load_order(session, customer_id, order_number)
    eligibility, line, amount = _evaluate(order, item, now)
    if not eligibility.eligible:
        raise NotAllowed(eligibility.code, eligibility.message)
    row = refunds_repo.create(
        session,
        order_id=order.id,
        order_item_id=line.id if line is not None else None,
        amount=amount,
        kind=kind,
        status="requested",
        reason=(reason or "").strip()[:MAX_REASON],
        now=now,
    )
    session.expire(order, ["refunds"])
    session.refresh(row)
    return refund_info(row)


def normalize_refund_number(text: object) -> str | None:
    """'RF-500001', 'rf100001', '#RF 100001' -> 'RF-500001'; None otherwise."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    match = _REFUND_RE.match(text)
    return f"RF-{match.group(1)}" if match else None


def refund_status(session: Session, customer_id: int, number: str) -> list[RefundInfo]:
    """Refunds by refund number (RF-xxxxxx) or all refunds of an order number, owner only."""
    refund_number = normalize_refund_number(number)
    if refund_number is not None:
        refund = refunds_repo.get_for_customer(session, customer_id, refund_number)
        if refund is None:
            raise refund_not_found()
        return [refund_info(refund)]
    if normalize_order_number(number) is None:
        raise InvalidInput(
            "invalid_number", "Please give a refund number like RF-500001 or an order number like #104233."
        )
    order = load_order(session, customer_id, number)
    return [refund_info(r) for r in refunds_repo.for_order(session, order.id)]


def recent_refunds(session: Session, customer_id: int, limit: int = 3) -> list[RefundInfo]:
    limit = max(0, min(int(limit), 50))
    return [refund_info(r) for r in refunds_repo.recent_for_customer(session, customer_id, limit)]
