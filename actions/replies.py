"""The conversation's language and values written for it; the words themselves live in domain.yml.

Why: the domain's responses carry a Chinese variation selected on the ``language`` slot (Rasa's
conditional response variations). Actions dispatch responses by name with values; values that
depend on the language (a date, a list of lines) are formatted here, and a reply composed of
several responses (a list of orders) is rendered from the domain the action receives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.services.errors import ServiceError

LANGUAGE_SLOT = "language"
ZH_WEEKDAYS = "一二三四五六日"
#: service refusals (``ServiceError.code``) with a response of their own, ``utter_error_<code>``: its
#: English variation is the service's message, the Chinese one is written for the code (with {number})
ERROR_RESPONSES = frozenset({
    "order_not_found", "refund_not_found", "invalid_order_number", "already_shipped", "already_delivered",
    "already_cancelled", "returned", "not_shipped", "not_delivered", "cancelled", "already_returned",
    "window_expired", "not_paid", "item_not_found", "already_refunded", "email_in_use", "invalid_address",
    "invalid_email", "customer_not_found", "invalid_rating", "invalid_kind",
})


#: what a Chinese customer calls each task (the English label is the key: actions/prompts.py TASKS)
TASK_LABELS_ZH = {
    "request": "这个请求", "tracking": "查询物流", "refund tracking": "查询退款进度", "invoice": "开发票",
    "cancellation": "取消订单", "return or refund": "退款退货", "return": "退货", "refund": "退款",
    "address change": "修改收货地址", "email change": "修改邮箱", "feedback": "评价",
}


def task_label(label: str, tracker: Tracker) -> str:
    """The task's name in the conversation's language ("return" / 退货)."""
    return TASK_LABELS_ZH.get(label, label) if language(tracker) == "zh" else label


def language(tracker: Tracker) -> str:
    """``zh`` or ``en`` (the default)."""
    return "zh" if tracker.get_slot(LANGUAGE_SLOT) == "zh" else "en"


def fmt_date(value: datetime | None, lang: str = "en") -> str:
    """``Tue 8 Dec 2026`` / ``2026年12月8日（周二）``."""
    if value is None:
        return "未知" if lang == "zh" else "unknown"
    if lang == "zh":
        return f"{value.year}年{value.month}月{value.day}日（周{ZH_WEEKDAYS[value.weekday()]}）"
    return f"{value:%a %d %b %Y}".replace(" 0", " ")


def render(domain: DomainDict, name: str, lang: str, **values: Any) -> str:
    """The text of response ``name`` in ``lang`` filled with ``values``, as Rasa's generator would.

    For replies composed of several responses; a single reply is dispatched by name instead.
    """
    variations = (domain.get("responses") or {}).get(name) or []
    chosen = None
    for variation in variations:
        conditions = variation.get("condition") or []
        wanted = {c.get("value") for c in conditions if c.get("name") == LANGUAGE_SLOT}
        if lang in wanted:
            chosen = variation
            break
        if not conditions and chosen is None:
            chosen = variation
    template = str((chosen or {}).get("text") or "")
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def reply_error(dispatcher: CollectingDispatcher, exc: ServiceError, **values: Any) -> None:
    """A service's refusal in the customer's language: its own response when it has one."""
    if exc.code in ERROR_RESPONSES:
        dispatcher.utter_message(response=f"utter_error_{exc.code}", message=exc.message, **values)
    else:
        dispatcher.utter_message(text=exc.message)
