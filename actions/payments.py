"""Payments: invoices (payment methods and problems are FAQ answers)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import OrderFormValidator, SafeAction, in_transaction, resolve_identity
from actions.csat import csat_offer
from actions.replies import fmt_date, language, render
from bot.services import invoices as invoice_service
from bot.services.types import InvoiceInfo, format_money


def describe_invoice(invoice: InvoiceInfo, domain: DomainDict, lang: str = "en") -> str:
    """One line per invoice, from the domain's ``utter_invoice_line`` in ``lang``."""
    shown = invoice.lines[:6]
    if lang == "zh":
        lines = "；".join(f"{line.name} ×{line.quantity} {format_money(line.line_total, lang)}" for line in shown)
    else:
        lines = "; ".join(f"{line.quantity}x {line.name} {format_money(line.line_total, lang)}" for line in shown)
    return render(
        domain, "utter_invoice_line", lang, invoice=invoice.number, number=invoice.order_number,
        date=fmt_date(invoice.issued_at, lang), amount=format_money(invoice.amount, lang), lines=lines,
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
        lang = language(tracker)
        dispatcher.utter_message(
            response="utter_invoices", lines="\n".join(describe_invoice(i, domain, lang) for i in invoices)
        )
        return ident.events + csat_offer(tracker)
