"""What the e2e conversation tests share: a customer's chat over REST, signed-in metadata, and
demo orders of their own (the e2e servers and database are shared by every e2e module)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Order, OrderItem, Payment, Product, Refund, Shipment
from bot.services.identity import sign_token
from tests.stack import SECRET, Servers


def signed_in(customer_id: int) -> dict:
    """What the website sends with every message of a signed-in customer."""
    return {"customer_token": sign_token(customer_id, ttl_s=3600, secret=SECRET)}


def item_names(db, number: str) -> list[str]:
    with Session(db) as s:
        return list(
            s.scalars(
                select(Product.name).join(OrderItem, OrderItem.product_id == Product.id)
                .join(Order, Order.id == OrderItem.order_id).where(Order.number == number)
            )
        )


_OWN_NUMBERS = itertools.count(195001)  # above the demo block (190001-190013), below 200000


def own_order(db, template: str) -> str:
    """A copy of demo order `template` (same customer, status, items, shipments, payments) under a new
    number, for a test that depends on its state: the e2e servers are shared by every e2e module, and
    another test may refund or cancel the demo order itself (tests/e2e/test_conversations.py picks
    orders by status). Created a year before the original, so the customer's recent orders stay
    the demo ones."""
    with Session(db) as s, s.begin():
        original = s.scalars(select(Order).where(Order.number == template)).one()
        number = next(n for n in map(str, _OWN_NUMBERS)
                      if s.scalar(select(Order.id).where(Order.number == n)) is None)
        copy = Order(number=number, customer_id=original.customer_id, status=original.status,
                     shipping_address_id=original.shipping_address_id, total=original.total,
                     created_at=original.created_at - timedelta(days=365), updated_at=original.updated_at)
        copy.items = [OrderItem(product_id=i.product_id, quantity=i.quantity, unit_price=i.unit_price)
                      for i in original.items]
        copy.shipments = [Shipment(carrier=sh.carrier, tracking_number=f"{sh.tracking_number}-{number}",
                                   status=sh.status, shipped_at=sh.shipped_at, eta=sh.eta,
                                   delivered_at=sh.delivered_at) for sh in original.shipments]
        copy.payments = [Payment(method=p.method, amount=p.amount, status=p.status, paid_at=p.paid_at)
                         for p in original.payments]
        s.add(copy)
    return number


def refunds_of(db, number: str) -> int:
    with Session(db) as s:
        return len(s.scalars(select(Refund.id).join(Order).where(Order.number == number)).all())


class Chat:
    """One customer's conversation: every reply kept, so a test can count repeated questions."""

    prefix = "chat"

    def __init__(self, servers: Servers, metadata: dict | None = None) -> None:
        self.servers, self.metadata = servers, metadata
        self.sender = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        self.replies: list[list[dict]] = []

    def say(self, text: str) -> list[dict]:
        reply = self.servers.say(self.sender, text, self.metadata)
        self.replies.append(reply)
        return reply

    @staticmethod
    def text(reply: list[dict]) -> str:
        return "\n".join(m.get("text") or "" for m in reply)

    @staticmethod
    def buttons(reply: list[dict]) -> list[dict]:
        return [b for m in reply for b in m.get("buttons") or []]

    def longest_run_of(self, question: str) -> int:
        """How many replies in a row asked `question` (the most a customer saw it without a break)."""
        best = run = 0
        for reply in self.replies:
            run = run + 1 if question in self.text(reply) else 0
            best = max(best, run)
        return best
