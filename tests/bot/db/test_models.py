from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.db import models as m


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (m.Order, "status", "lost"),
        (m.Customer, "tier", "platinum"),
        (m.Payment, "method", "bitcoin"),
        (m.Refund, "kind", "swap"),
    ],
)
def test_enum_check_constraints(session, model, field, value):
    row = session.scalar(select(model).limit(1))
    setattr(row, field, value)
    with pytest.raises(IntegrityError):
        session.flush()


def test_unique_email_and_order_number(session):
    session.add(m.Customer(name="X", email="alice.martin@example.com"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_feedback_rating_range(session):
    session.add(m.Feedback(sender_id="c", rating=9))
    with pytest.raises(IntegrityError):
        session.flush()


def test_money_is_decimal_with_cents(session):
    order = session.scalar(select(m.Order).where(m.Order.number == "190003"))
    assert isinstance(order.total, Decimal)
    assert order.total == order.total.quantize(Decimal("0.01"))
    assert order.created_at.tzinfo is None  # naive UTC convention
