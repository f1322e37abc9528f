from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.db import models as m
from bot.db.base import utcnow
from bot.services import orders
from bot.services._convert import format_address
from bot.services.errors import InvalidInput, NotAllowed, NotFound

ALICE, BOB, CARLA, DAVID = 1, 2, 3, 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#104233", "104233"),
        (" 104233 ", "104233"),
        ("order 104233", "104233"),
        ("Order #104233", "104233"),
        ("order number: 104233", "104233"),
        ("1042331", None),
        ("10423", None),
        ("099999", None),
        ("abc", None),
        ("", None),
        ("104233; DROP TABLE orders", None),
        ("1" * 10_000, None),
        (104233, None),
        (None, None),
    ],
)
def test_normalize_order_number(text, expected):
    assert orders.normalize_order_number(text) == expected


def test_get_order_returns_full_summary(session):
    o = orders.get_order(session, ALICE, "#190001")
    assert o.number == "190001"
    assert o.status == "shipped"
    assert [line.category for line in o.items] == ["cameras", "cameras"]
    assert o.total == sum(line.unit_price * line.quantity for line in o.items)
    assert o.carrier in {"UPS", "FedEx", "USPS", "DHL"}
    assert o.tracking_number
    assert o.eta > utcnow()
    assert o.delivered_at is None
    assert o.latest_event is not None and o.latest_event.occurred_at <= utcnow()
    assert o.paid is True
    assert o.shipping_address == "12 Rose Street, Springfield 62704, United States"


def test_someone_elses_order_is_indistinguishable_from_missing(session):
    with pytest.raises(NotFound) as foreign:
        orders.get_order(session, BOB, "190001")  # Alice's order
    with pytest.raises(NotFound) as missing:
        orders.get_order(session, BOB, "999999")  # does not exist
    assert foreign.value.code == missing.value.code == "order_not_found"
    assert foreign.value.message == missing.value.message
    assert type(foreign.value) is type(missing.value)


@pytest.mark.parametrize(
    "func",
    [orders.get_order, orders.check_cancellable, orders.cancel_order, orders.check_address_changeable],
)
def test_every_entry_point_hides_foreign_orders(session, func):
    with pytest.raises(NotFound):
        func(session, DAVID, "190002")
    assert session.scalar(select(m.Order.status).where(m.Order.number == "190002")) == "processing"


def test_guessed_numbers_for_a_customer_never_reveal_others(session):
    found = []
    for n in range(100001, 100201):
        try:
            found.append(orders.get_order(session, ALICE, str(n)).number)
        except NotFound:
            pass
    own = {r for r in session.scalars(select(m.Order.number).where(m.Order.customer_id == ALICE))}
    assert set(found) <= own


@pytest.mark.parametrize("bad", ["'; DROP TABLE orders; --", "<script>alert(1)</script>", "x" * 100_000, ""])
def test_malformed_order_numbers_are_invalid_input(session, bad):
    with pytest.raises(InvalidInput) as err:
        orders.get_order(session, ALICE, bad)
    assert err.value.code == "invalid_order_number"
    assert session.scalar(select(m.Order.id).limit(1)) is not None


def test_recent_orders_newest_first_and_own_only(session):
    recent = orders.recent_orders(session, ALICE, limit=3)
    assert [o.number for o in recent][:1] == ["190002"]
    assert len(recent) == 3
    assert recent[0].created_at >= recent[1].created_at >= recent[2].created_at
    own = set(session.scalars(select(m.Order.number).where(m.Order.customer_id == ALICE)))
    assert {o.number for o in orders.recent_orders(session, ALICE, limit=50)} <= own
    assert orders.recent_orders(session, 999_999) == []


@pytest.mark.parametrize(
    ("customer", "number", "code"),
    [
        (ALICE, "190001", "already_shipped"),
        (ALICE, "190003", "already_delivered"),
        (BOB, "190007", "already_cancelled"),
        (CARLA, "190008", "returned"),
    ],
)
def test_check_cancellable_refusals(session, customer, number, code):
    with pytest.raises(NotAllowed) as err:
        orders.check_cancellable(session, customer, number)
    assert err.value.code == code
    assert f"#{number}" in err.value.message


def test_cancel_paid_processing_order_refunds_and_restocks(session):
    summary = orders.check_cancellable(session, ALICE, "190002")
    stock_before = {line.product_id: session.get(m.Product, line.product_id).stock for line in summary.items}
    result = orders.cancel_order(session, ALICE, "190002")
    assert result.order.status == "cancelled"
    assert result.refund is not None
    assert result.refund.amount == summary.total
    assert result.refund.number.startswith("RF-") and len(result.refund.number) == 9
    assert result.refund.order_number == "190002"
    order = session.scalar(select(m.Order).where(m.Order.number == "190002"))
    assert [p.status for p in order.payments] == ["refunded"]
    for line in summary.items:
        assert session.get(m.Product, line.product_id).stock == stock_before[line.product_id] + line.quantity
    with pytest.raises(NotAllowed) as again:
        orders.cancel_order(session, ALICE, "190002")
    assert again.value.code == "already_cancelled"


def test_cancel_unpaid_pending_order_creates_no_refund(session):
    result = orders.cancel_order(session, BOB, "190005")
    assert result.order.status == "cancelled"
    assert result.refund is None
    order = session.scalar(select(m.Order).where(m.Order.number == "190005"))
    assert [p.status for p in order.payments] == ["failed"]
    assert order.refunds == []


def test_cancel_shipped_order_is_refused_and_unchanged(session):
    with pytest.raises(NotAllowed) as err:
        orders.cancel_order(session, ALICE, "190001")
    assert err.value.code == "already_shipped"
    assert session.scalar(select(m.Order.status).where(m.Order.number == "190001")) == "shipped"


def test_change_shipping_address_creates_new_row_for_owner(session):
    before = session.scalar(select(m.Order.shipping_address_id).where(m.Order.number == "190011"))
    summary = orders.change_shipping_address(
        session, DAVID, "190011", "12 Rose St, 12345 Springfield, Germany"
    )
    assert summary.shipping_address == "12 Rose St, Springfield 12345, Germany"
    order = session.scalar(select(m.Order).where(m.Order.number == "190011"))
    assert order.shipping_address_id != before
    assert order.shipping_address.customer_id == DAVID
    assert order.shipping_address.is_default is False


def test_change_shipping_address_refused_after_shipping(session):
    with pytest.raises(NotAllowed) as err:
        orders.change_shipping_address(session, CARLA, "190010", "12 Rose Street, Springfield, 12345")
    assert err.value.code == "already_shipped"


def test_change_shipping_address_bad_address_changes_nothing(session):
    before = session.scalar(select(m.Order.shipping_address_id).where(m.Order.number == "190011"))
    with pytest.raises(InvalidInput):
        orders.change_shipping_address(session, DAVID, "190011", "<b>nowhere</b>")
    assert session.scalar(select(m.Order.shipping_address_id).where(m.Order.number == "190011")) == before


def test_check_address_changeable(session):
    assert orders.check_address_changeable(session, DAVID, "190011").status == "processing"
    with pytest.raises(NotAllowed):
        orders.check_address_changeable(session, DAVID, "190012")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "12 Rose Street, Springfield, 12345",
            {
                "line1": "12 Rose Street",
                "city": "Springfield",
                "postcode": "12345",
                "country": "United States",
            },
        ),
        (
            "12 Rose St, 12345 Springfield, Germany",
            {"line1": "12 Rose St", "city": "Springfield", "postcode": "12345", "country": "Germany"},
        ),
        (
            "221b Baker Street, London, NW1 6XE, United Kingdom",
            {
                "line1": "221b Baker Street",
                "city": "London",
                "postcode": "NW1 6XE",
                "country": "United Kingdom",
            },
        ),
        (
            "5 Main St\nApt 4\nBoise ID 83702",
            {"line1": "5 Main St", "line2": "Apt 4", "city": "Boise ID", "postcode": "83702"},
        ),
    ],
)
def test_parse_address_accepts_common_formats(text, expected):
    parsed = orders.parse_address(text)
    for key, value in expected.items():
        assert parsed[key] == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Springfield",
        "Rose Street, Springfield, 12345",
        "12 Rose Street, Springfield",
        "12 Rose Street, 12345",
        "x" * 301,
        "12 Rose St, <script>alert(1)</script>, 12345",
        "1' OR '1'='1, Springfield, 12345",
        "\x00\x01, 12, 12345",
        None,
        12345,
    ],
)
def test_parse_address_rejects_implausible_text(text):
    with pytest.raises(InvalidInput) as err:
        orders.parse_address(text)
    assert err.value.code == "invalid_address"
    assert "12 Rose Street" in err.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("上海市浦东新区张江路88弄3号502室",
         {"city": "上海市", "line1": "浦东新区张江路88弄3号", "line2": "502室", "postcode": ""}),
        ("请把地址改成 广东省深圳市南山区科技园南路15号，邮编518057，谢谢",
         {"city": "广东省深圳市", "line1": "南山区科技园南路15号", "line2": None, "postcode": "518057"}),
        ("北京朝阳区建国路88号SOHO现代城2号楼1001室 电话13800138000",  # the phone is no part of it
         {"city": "北京市", "line1": "朝阳区建国路88号", "line2": "SOHO现代城2号楼1001室"}),
        ("我搬到了江苏省南京市鼓楼区中山路１２３号",  # full-width digits
         {"city": "江苏省南京市", "line1": "鼓楼区中山路123号"}),
        ("中国上海市浦东新区世纪大道100号 200120",
         {"city": "上海市", "line1": "浦东新区世纪大道100号", "postcode": "200120", "country": "中国"}),
    ],
)
def test_parse_address_reads_chinese_addresses_big_to_small(text, expected):
    parsed = orders.parse_address(text)
    for key, value in expected.items():
        assert parsed[key] == value
    assert parsed["country"] == "中国"
    assert orders.parse_address(format_address(m.Address(**parsed))) == parsed  # written back, read again


@pytest.mark.parametrize(
    ("text", "detail"),
    [("朝阳区建国路88号", "city"), ("上海市浦东新区世纪大道", "house number"), ("我想改地址", "city"),
     ("上海市", "house number")],
)
def test_parse_address_rejects_incomplete_chinese_addresses(text, detail):
    with pytest.raises(InvalidInput) as err:
        orders.parse_address(text)
    assert err.value.code == "invalid_address" and detail in err.value.message


def test_cancel_uses_given_time(session):
    when = utcnow() - timedelta(minutes=5)
    result = orders.cancel_order(session, DAVID, "190011", now=when)
    assert result.refund.created_at == when
    assert result.refund.amount == Decimal(result.order.total)


@pytest.mark.parametrize(("text", "line1"), [
    ("please ship 190011 to 77 Pine Road, Denver, 80203 instead", "77 Pine Road"),
    ("change delivery address for 190002 to 40 Lake Road, Springfield, 62704 pls", "40 Lake Road"),
    ("no sorry, it's 21 Oak Street, Springfield, 62704", "21 Oak Street"),
    ("where is 190003", None),
    ("i live at 5 elm st", None),  # no city or postcode: not an address to use
])
def test_address_in_text(text: str, line1: str | None) -> None:
    found = orders.address_in_text(text)
    assert (found or {}).get("line1") == line1
