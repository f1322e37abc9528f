"""Payments: invoices (payment methods and problems are FAQ answers)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import OrderFormValidator, SafeAction, in_transaction, resolve_identity
from actions.csat import csat_offer
from actions.replies import fmt_date
from bot.services import invoices as invoice_service
from bot.services.types import InvoiceInfo, format_money


def describe_invoice(invoice: InvoiceInfo) -> str:
    lines = "; ".join(f"{line.quantity}x {line.name} {format_money(line.line_total)}" for line in invoice.lines[:6])
    return (
        f"Invoice {invoice.number} for order #{invoice.order_number}, issued {fmt_date(invoice.issued_at)}: "
        f"{format_money(invoice.amount)} ({lines})."
    )


class ValidateInvoiceForm(OrderFormValidator):
    order_optional_when_verified = True
    own_intents = ("check_invoice", "get_invoice")
    task_label = "invoice"

    def name(self) -> str:
        return "validate_invoice_form"


class ActionShowInvoice(SafeAction):
    def name(self) -> str:
        return "action_show_invoice"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        if ident.customer_id is None:
            return []
        number = tracker.get_slot("order_number")
        if number:
            invoices = [await in_transaction(invoice_service.get_invoice, ident.customer_id, number)]
        else:
            invoices = await in_transaction(invoice_service.recent_invoices, ident.customer_id, 3)
        if not invoices:
            dispatcher.utter_message(response="utter_no_invoices")
            return ident.events
        text = "\n".join(describe_invoice(i) for i in invoices)
        text += "\nYou can download the PDF from your account under Orders > Invoices."
        dispatcher.utter_message(text=text)
        return ident.events + csat_offer(tracker)
