import pytest
from sqlalchemy import select

from bot.db import models as m
from bot.services import invoices
from bot.services.errors import InvalidInput, NotAllowed, NotFound


def test_get_invoice_for_paid_order(session):
    inv = invoices.get_invoice(session, 1, "#190003")
    total = session.scalar(select(m.Order.total).where(m.Order.number == "190003"))
    assert inv.number == "INV-190003"
    assert inv.order_number == "190003"
    assert inv.amount == total
    assert sum(line.unit_price * line.quantity for line in inv.lines) == total
    assert invoices.get_invoice(session, 1, "INV-190003").number == "INV-190003"


def test_no_invoice_before_payment(session):
    with pytest.raises(NotAllowed) as err:
        invoices.get_invoice(session, 2, "190005")  # pending bank transfer
    assert err.value.code == "no_invoice"


def test_foreign_invoice_hidden(session):
    with pytest.raises(NotFound) as foreign:
        invoices.get_invoice(session, 2, "190003")
    with pytest.raises(NotFound) as missing:
        invoices.get_invoice(session, 2, "999997")
    assert foreign.value.message == missing.value.message
    with pytest.raises(InvalidInput):
        invoices.get_invoice(session, 2, "INV-' OR 1=1")


def test_recent_invoices_own_only_newest_first(session):
    recent = invoices.recent_invoices(session, 1, limit=3)
    assert len(recent) == 3
    assert recent[0].issued_at >= recent[1].issued_at >= recent[2].issued_at
    own = set(session.scalars(select(m.Order.number).where(m.Order.customer_id == 1)))
    assert all(i.order_number in own for i in invoices.recent_invoices(session, 1, limit=50))
    assert recent[0].order_number == "190002"
