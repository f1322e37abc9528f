import re
from decimal import Decimal

from bot.db import refunds
from bot.db.orders import get_by_number


def test_next_number_and_create(session):
    number = refunds.next_refund_number(session)
    assert re.fullmatch(r"RF-\d{6}", number)
    assert int(number[3:]) > 190003  # after the demo block
    order = get_by_number(session, "190003")
    row = refunds.create(session, order_id=order.id, amount=Decimal("10.00"))
    assert row.number == number
    assert refunds.next_refund_number(session) == f"RF-{int(number[3:]) + 1}"


def test_get_for_customer_checks_owner(session):
    assert refunds.get_for_customer(session, 2, "RF-590001").order.number == "190006"
    assert refunds.get_for_customer(session, 1, "RF-590001") is None
    # RF-590001 (11 days old) is newer than RF-590002 (cancellation 30 days ago)
    assert [r.number for r in refunds.recent_for_customer(session, 2, limit=2)] == ["RF-590001", "RF-590002"]
