"""Plain dataclasses crossing the service boundary (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


def format_money(amount: Decimal | float | int | None, lang: str = "en") -> str:
    """``Decimal('12.5') -> '$12.50'`` (USD, two places); in Chinese ``12.50美元``, as a Chinese shop
    writes US dollars (the bot's replies and the demo shop's pages)."""
    value = Decimal(str(amount if amount is not None else 0)).quantize(Decimal("0.01"))
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,.2f}美元" if lang == "zh" else f"{sign}${abs(value):,.2f}"


@dataclass(frozen=True)
class CustomerInfo:
    id: int
    name: str
    email: str
    tier: str
    newsletter: bool


@dataclass(frozen=True)
class OrderLine:
    item_id: int
    product_id: int
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class TrackingEventInfo:
    occurred_at: datetime
    location: str
    description: str


@dataclass(frozen=True)
class OrderSummary:
    number: str
    status: str
    created_at: datetime
    total: Decimal
    items: list[OrderLine] = field(default_factory=list)
    shipping_address: str = ""
    carrier: str | None = None
    tracking_number: str | None = None
    eta: datetime | None = None
    delivered_at: datetime | None = None
    latest_event: TrackingEventInfo | None = None
    paid: bool = False


@dataclass(frozen=True)
class RefundInfo:
    number: str
    order_number: str
    kind: str
    status: str
    amount: Decimal
    reason: str
    created_at: datetime
    item_name: str | None = None


@dataclass(frozen=True)
class InvoiceInfo:
    number: str
    order_number: str
    amount: Decimal
    issued_at: datetime
    lines: list[OrderLine] = field(default_factory=list)


@dataclass(frozen=True)
class TicketInfo:
    number: str
    category: str
    status: str
    priority: str
    #: True when the conversation's open ticket was reused instead of opening another
    reused: bool = False


@dataclass(frozen=True)
class ProductInfo:
    id: int
    sku: str
    name: str
    category: str
    price: Decimal
    stock: int
    description: str


@dataclass(frozen=True)
class CancellationResult:
    order: OrderSummary
    refund: RefundInfo | None = None


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    code: str
    message: str


@dataclass(frozen=True)
class ProductPage:
    """One page of the shop's catalogue (``page`` counts from 1)."""

    items: list[ProductInfo]
    total: int
    page: int
    pages: int
    category: str | None = None
