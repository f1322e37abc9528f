from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.db import models as m
from bot.db.base import utcnow
from bot.services import refunds
from bot.services.errors import InvalidInput, NotAllowed, NotFound

ALICE, BOB, CARLA, DAVID = 1, 2, 3, 4


@pytest.mark.parametrize(
    ("customer", "number", "eligible", "code"),
    [
        (ALICE, "190003", True, "eligible"),
        (ALICE, "190004", False, "window_expired"),
        (ALICE, "190001", False, "not_delivered"),
        (ALICE, "190002", False, "not_shipped"),
        (BOB, "190007", False, "cancelled"),
        (CARLA, "190008", False, "already_returned"),
        (DAVID, "190012", True, "eligible"),
        (DAVID, "190013", False, "window_expired"),
    ],
)
def test_policy(session, customer, number, eligible, code):
    result = refunds.check_refund_eligibility(session, customer, number)
    assert (result.eligible, result.code) == (eligible, code)
    assert f"#{number}" in result.message


def test_window_is_30_days_from_delivery(session):
    delivered = session.scalar(
        select(m.Shipment.delivered_at).join(m.Order).where(m.Order.number == "190003")
    )
    inside = refunds.check_refund_eligibility(session, ALICE, "190003", now=delivered + timedelta(days=29.9))
    outside = refunds.check_refund_eligibility(session, ALICE, "190003", now=delivered + timedelta(days=30.1))
    assert inside.eligible is True
    assert (outside.eligible, outside.code) == (False, "window_expired")
    assert "30" in outside.message


def test_foreign_order_raises_same_not_found(session):
    with pytest.raises(NotFound) as foreign:
        refunds.check_refund_eligibility(session, BOB, "190003")
    with pytest.raises(NotFound) as missing:
        refunds.check_refund_eligibility(session, BOB, "999998")
    assert (foreign.value.code, foreign.value.message) == (missing.value.code, missing.value.message)
    with pytest.raises(NotFound):
        refunds.request_refund(session, BOB, "190003")
    assert session.scalar(select(m.Refund.id).join(m.Order).where(m.Order.number == "190003")) is None


def test_request_whole_order_refund(session):
    order_total = session.scalar(select(m.Order.total).where(m.Order.number == "190003"))
    info = refunds.request_refund(session, ALICE, "#190003", reason="  Arrived scratched  ")
    assert info.order_number == "190003"
    assert info.kind == "refund" and info.status == "requested"
    assert info.amount == order_total
    assert info.reason == "Arrived scratched"
    assert info.item_name is None
    assert refunds.check_refund_eligibility(session, ALICE, "190003").code == "already_refunded"
    with pytest.raises(NotAllowed) as err:
        refunds.request_refund(session, ALICE, "190003")
    assert err.value.code == "already_refunded"


def test_request_item_return_matches_fuzzy_item(session):
    order = session.scalar(select(m.Order).where(m.Order.number == "190009"))
    knife = next(i for i in order.items if i.product.name.endswith("Chef's Knife"))
    info = refunds.request_refund(session, CARLA, "190009", kind="return", item="the chef's knife")
    assert info.kind == "return"
    assert info.item_name == knife.product.name
    assert info.amount == knife.unit_price * knife.quantity
    # the same item again is refused, another item is still fine
    assert refunds.check_refund_eligibility(session, CARLA, "190009", item="knife").code == "already_refunded"
    board = refunds.check_refund_eligibility(session, CARLA, "190009", item="cutting board")
    assert board.eligible is True
    # whole-order request now refunds only the rest
    rest = refunds.request_refund(session, CARLA, "190009")
    assert rest.amount == order.total - info.amount


def test_item_by_sku_and_unknown_item(session):
    order = session.scalar(select(m.Order).where(m.Order.number == "190012"))
    sku = order.items[0].product.sku
    assert refunds.check_refund_eligibility(session, DAVID, "190012", item=sku.lower()).eligible is True
    unknown = refunds.check_refund_eligibility(session, DAVID, "190012", item="grand piano")
    assert (unknown.eligible, unknown.code) == (False, "item_not_found")
    huge = refunds.check_refund_eligibility(
        session, DAVID, "190012", item="<img src=x onerror=alert(1)>" * 500
    )
    assert huge.eligible is False


def test_existing_item_refund_blocks_that_item_only(session):
    # Bob's 190006 has RF-590001 for the laptop sleeve
    assert refunds.check_refund_eligibility(session, BOB, "190006", item="sleeve").code == "already_refunded"
    assert refunds.check_refund_eligibility(session, BOB, "190006", item="laptop").eligible is True


def test_invalid_kind(session):
    with pytest.raises(InvalidInput):
        refunds.request_refund(session, ALICE, "190003", kind="steal")


def test_refund_status_by_refund_and_order_number(session):
    by_refund = refunds.refund_status(session, BOB, "rf-590001")
    assert [(r.number, r.order_number, r.status) for r in by_refund] == [("RF-590001", "190006", "requested")]
    assert by_refund[0].item_name.endswith("Laptop Sleeve")
    by_order = refunds.refund_status(session, BOB, "order 190006")
    assert [r.number for r in by_order] == ["RF-590001"]
    assert refunds.refund_status(session, ALICE, "190003") == []


def test_refund_status_hides_foreign_refunds(session):
    with pytest.raises(NotFound) as foreign:
        refunds.refund_status(session, ALICE, "RF-590001")  # Bob's
    with pytest.raises(NotFound) as missing:
        refunds.refund_status(session, ALICE, "RF-999999")
    assert (foreign.value.code, foreign.value.message) == (missing.value.code, missing.value.message)
    with pytest.raises(NotFound):
        refunds.refund_status(session, ALICE, "190006")  # Bob's order


@pytest.mark.parametrize("bad", ["", "RF-12", "' OR 1=1 --", "x" * 10_000])
def test_refund_status_malformed(session, bad):
    with pytest.raises(InvalidInput):
        refunds.refund_status(session, ALICE, bad)


def test_recent_refunds(session):
    recent = refunds.recent_refunds(session, CARLA)
    assert [r.number for r in recent] == ["RF-590003"]
    assert recent[0].kind == "return" and recent[0].amount > Decimal(0)
    new = refunds.request_refund(session, ALICE, "190003", now=utcnow())
    assert refunds.recent_refunds(session, ALICE, limit=1)[0].number == new.number


# ---------------------------------------------------------------- what a longer message says (issue 25)
def _order(*names: str):  # noqa: ANN202 - an order's lines as mentioned_item reads them
    from types import SimpleNamespace

    return SimpleNamespace(items=[SimpleNamespace(product=SimpleNamespace(name=n)) for n in names])


@pytest.mark.parametrize(("names", "text", "expected"), [
    (("Atlas One Smartphone", "Nimbus Lite Phone Case"), "the phone from 190012 is broken", 0),
    (("Atlas One Smartphone", "Nimbus Lite Phone Case"), "refund the phone case pls", 1),
    (("Atlas One Smartphone", "Nimbus Lite Phone Case"), "the smartphone and the case", None),
    (("Copperfield Neo Chef's Knife", "Maison Blue Neo Cutting Board", "Salt, Fire & Time Cookbook by Theo Barnes"),
     "return the cookbook from 190009, it arrived damaged", 2),
    (("Copperfield Neo Chef's Knife", "Maison Blue Neo Cutting Board"),
     "actually no, the chef's knife, not the board", 0),
    (("Lumora Pro Camera Lens", "Vantage Z5 Mirrorless Camera"), "the camera", 1),
    (("Copperfield Neo Chef's Knife", "Maison Blue Neo Cutting Board"), "the blue ones", None),  # no type named
    (("Lumora Pro Camera Lens", "Vantage Z5 Mirrorless Camera"), "i want to return something from 190003", None),
])
def test_mentioned_item_names_one_line_or_none(names, text, expected) -> None:  # noqa: ANN001
    order = _order(*names)
    found = refunds.mentioned_item(order, text)
    assert (None if found is None else order.items.index(found)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("I want to return the cookbook from order 190009, it arrived damaged", "it arrived damaged"),
    ("refund 190003 because it doesnt fit", "it doesnt fit"),
    ("the phone from 190012 is broken and i want my money back", "the phone from 190012 is broken"),
    ("return my broken phone", None),  # the request itself, no separate reason
    ("i want a refund for the tripod and also what payment methods do you take", None),
])
def test_reason_in_text(text: str, expected: str | None) -> None:
    assert refunds.reason_in_text(text) == expected
