"""Invoices of the verified customer's paid orders."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from bot.db import invoices as invoices_repo
from bot.db import orders as orders_repo
from bot.services._convert import invoice_info
from bot.services.errors import NotAllowed
from bot.services.orders import load_order
from bot.services.types import InvoiceInfo

_INV_PREFIX = re.compile(r"^\s*INV[-\s]?", re.IGNORECASE)


def get_invoice(session: Session, customer_id: int, order_number: str) -> InvoiceInfo:
    """Invoice for an order (``INV-104233`` is accepted too); NotAllowed when not paid yet."""
    if isinstance(order_number, str) and len(order_number) <= 64:
        order_number = _INV_PREFIX.sub("", order_number)
    order = load_order(session, customer_id, order_number)
    invoice = invoices_repo.for_order(session, order.id)
    if invoice is None:
        raise NotAllowed(
            "no_invoice",
            f"There's no invoice for order #{order.number} yet: "
            "invoices are issued once payment is complete.",
        )
    return invoice_info(invoice, order)


def recent_invoices(session: Session, customer_id: int, limit: int = 3) -> list[InvoiceInfo]:
    limit = max(0, min(int(limit), 50))
    result = []
    for invoice in invoices_repo.recent_for_customer(session, customer_id, limit):
        order = orders_repo.get_for_customer(session, customer_id, invoice.order.number)
        if order is not None:
            result.append(invoice_info(invoice, order))
    return result
