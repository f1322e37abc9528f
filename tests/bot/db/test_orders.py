from bot.db import orders


def test_get_for_customer_filters_owner(session):
    assert orders.get_for_customer(session, 1, "190001").number == "190001"
    assert orders.get_for_customer(session, 2, "190001") is None
    assert orders.get_for_customer(session, 1, "999999") is None


def test_get_by_number_ignores_owner(session):
    assert orders.get_by_number(session, "190006").customer_id == 2
    assert orders.get_by_number(session, "' OR 1=1 --") is None


def test_recent_for_customer(session):
    rows = orders.recent_for_customer(session, 1, limit=2)
    assert [o.number for o in rows][:1] == ["190002"]
    assert len(rows) == 2
    assert orders.recent_for_customer(session, 1, limit=-5) == []
    assert orders.count_for_customer(session, 1) >= 4
    assert orders.count_for_customer(session, 999_999) == 0
