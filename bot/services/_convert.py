"""ORM -> dataclass conversion shared by services (ORM objects never leave the service layer)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.analytics.topics_zh import is_chinese
from bot.db.models import Address, Invoice, Order, OrderItem, Product, Refund
from bot.services.address_zh import chinese_address_text
from bot.services.types import (
    InvoiceInfo,
    OrderLine,
    OrderSummary,
    ProductInfo,
    RefundInfo,
    TrackingEventInfo,
)

CENT = Decimal("0.01")


def money(value: Decimal | float | int | None) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(CENT)


def format_address(address: Address | None) -> str:
    if address is None:
        return ""
    return address_text(
        {"line1": address.line1, "line2": address.line2, "city": address.city,
         "postcode": address.postcode, "country": address.country}
    )


def address_text(parts: Mapping[str, str | None]) -> str:
    """An address in one line, the way its country writes it: a Chinese one big to small, in one
    run (read back by ``parse_address``); any other small to big with commas."""
    line1, city = parts.get("line1") or "", parts.get("city") or ""
    if is_chinese(line1 + city):
        return chinese_address_text(line1, parts.get("line2"), city, parts.get("postcode") or "")
    postcode = parts.get("postcode") or ""
    fields = [line1, parts.get("line2") or "", f"{city} {postcode}".strip(), parts.get("country") or ""]
    return ", ".join(f for f in fields if f)


def order_line(item: OrderItem) -> OrderLine:
    product = item.product
    return OrderLine(
        item_id=item.id,
        product_id=item.product_id,
        sku=product.sku,
        name=product.name,
        category=product.category,
        quantity=item.quantity,
        unit_price=money(item.unit_price),
    )


def order_summary(order: Order) -> OrderSummary:
    shipment = order.shipments[-1] if order.shipments else None
    latest = None
    if shipment is not None and shipment.events:
        ev = max(shipment.events, key=lambda e: (e.occurred_at, e.id))
        latest = TrackingEventInfo(
            occurred_at=ev.occurred_at, location=ev.location, description=ev.description
        )
    return OrderSummary(
        number=order.number,
        status=order.status,
        created_at=order.created_at,
        total=money(order.total),
        items=[order_line(i) for i in order.items],
        shipping_address=format_address(order.shipping_address),
        carrier=shipment.carrier if shipment else None,
        tracking_number=shipment.tracking_number if shipment else None,
        eta=shipment.eta if shipment else None,
        delivered_at=shipment.delivered_at if shipment else None,
        latest_event=latest,
        paid=any(p.status in ("paid", "refunded") for p in order.payments),
    )


def refund_info(refund: Refund) -> RefundInfo:
    item_name = None
    if refund.order_item is not None:
        item_name = refund.order_item.product.name
    return RefundInfo(
        number=refund.number,
        order_number=refund.order.number,
        kind=refund.kind,
        status=refund.status,
        amount=money(refund.amount),
        reason=refund.reason or "",
        created_at=refund.created_at,
        item_name=item_name,
    )


def invoice_info(invoice: Invoice, order: Order) -> InvoiceInfo:
    return InvoiceInfo(
        number=invoice.number,
        order_number=order.number,
        amount=money(invoice.amount),
        issued_at=invoice.issued_at,
        lines=[order_line(i) for i in order.items],
    )


def product_info(product: Product) -> ProductInfo:
    return ProductInfo(
        id=product.id,
        sku=product.sku,
        name=product.name,
        category=product.category,
        price=money(product.price),
        stock=product.stock,
        description=product.description or "",
    )
