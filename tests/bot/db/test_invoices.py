from bot.db import invoices
from bot.db.orders import get_by_number


def test_for_order(session):
    order = get_by_number(session, "190003")
    inv = invoices.for_order(session, order.id)
    assert inv.number == "INV-190003" and inv.amount == order.total
    assert invoices.for_order(session, get_by_number(session, "190005").id) is None
    assert invoices.invoice_number("104233") == "INV-104233"


def test_recent_for_customer_owner_only(session):
    rows = invoices.recent_for_customer(session, 1, limit=10)
    assert rows and all(r.order.customer_id == 1 for r in rows)
