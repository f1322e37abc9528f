"""Several requests in one message (issue 25): "cancel 190002 and tell me where 190003 is".

Why: Rasa gives a message one intent, so the second request of such a message was lost (and its
order number could fill the first request's slot). The channels' shared handler (``channels/guard.py``)
splits a message at a joint ("and", "also", "then", a sentence end; 然后/还有/另外/顺便) when
each side, parsed on its own by the same NLU, asks for a task of a different flow; the first part
is handled as the customer's message, the second right after it, or, when the first opened a form,
once that form is done. A message stays whole when either side is no task (thanks, a greeting), the
two sides belong to one flow ("return it and give me my money back"), a side is a complaint (anger
beside a request is one request: the complaint flow carries the order over), or the NLU is unsure.

Standard library only: the action server imports ``FLOWS`` too (clarification buttons).
"""

from __future__ import annotations

import re
from typing import Any

from concierge_rasa.text import HAN

#: metadata the channels add to a customer message while another request of theirs waits for its turn:
#: the action that resolves this one does not ask for a rating yet (it would come before the other
#: answer); the rating is asked after the last one. Clients cannot set it (channel_security drops it).
REQUESTS_WAITING = "requests_waiting"

#: intent -> the flow that handles it: two intents of one flow are one request
FLOWS = {
    "track_order": "tracking", "cancel_order": "cancel", "change_order": "change", "change_shipping_address": "address",
    "delivery_period": "delivery", "delivery_options": "delivery", "get_refund": "refund", "return_item": "refund",
    "track_refund": "refund_status", "check_refund_policy": "refund_policy", "check_payment_methods": "payment_info",
    "payment_issue": "payment", "get_invoice": "invoice", "check_invoice": "invoice", "edit_account": "account",
    "recover_password": "password", "contact_human_agent": "person", "contact_customer_service": "person",
    "complaint": "complaint", "recommend_products": "recommend", "product_question": "product",
}
#: flows that never split a message: a complaint carries the request beside it; a person asked for first
#: takes everything over (asked for after a request, the request is answered first, then the handover)
WHOLE_FLOWS = frozenset({"person", "complaint"})
LAST_FLOWS = frozenset({"person"})
MIN_CONFIDENCE = 0.4  # each side's intent, parsed alone (Chinese requests score lower than English ones)
MAX_SPLITS = 3  # joints tried, left to right (each costs two parses)
MAX_CHARS = 400  # longer messages are not split (and are rare)

_EN_JOINT = r"(?:and\s+then|and\s+also|and|also|plus|then|after\s+that|oh\s+and)"
_ZH_JOINT = r"(?:然后|还有|另外|顺便|并且)"
_JOINT = re.compile(
    rf"(?:\s*[;!?。；！？]\s*(?:{_EN_JOINT}\b|{_ZH_JOINT})?\s*)"  # a sentence end, maybe "also" after it
    rf"|(?:(?<=[a-z0-9])\.\s+(?:{_EN_JOINT}\b)?\s*)"
    rf"|(?:\s*,?\s+{_EN_JOINT}\s+)"
    rf"|(?:[，,]?\s*{_ZH_JOINT}\s*)",
    re.IGNORECASE,
)


def _substantial(part: str) -> bool:
    """A side that can carry a request on its own: two words, or two Chinese characters."""
    han = len(HAN.findall(part))
    return han >= 2 or len(re.findall(r"[A-Za-z0-9]+", part)) >= 2


def split_points(text: str) -> list[tuple[str, str]]:
    """The (first, second) parts at each joint of ``text``, left to right, both sides substantial."""
    if not text or text.startswith("/") or len(text) > MAX_CHARS:
        return []
    found: list[tuple[str, str]] = []
    for joint in _JOINT.finditer(text):
        first, second = text[: joint.start()].strip(" ,，"), text[joint.end():].strip(" ,，")
        if _substantial(first) and _substantial(second):
            found.append((first, second))
            if len(found) == MAX_SPLITS:
                break
    return found


def task_flow(parse: dict[str, Any], allowed: frozenset[str] = frozenset()) -> str | None:
    """The flow a parsed part confidently asks for, None when it asks for none that can stand alone
    (the whole flows stand alone where ``allowed``)."""
    intent = parse.get("intent") or {}
    name = intent.get("name")
    flow = FLOWS.get(str(name))
    if flow is None or float(intent.get("confidence") or 0.0) < MIN_CONFIDENCE:
        return None
    return None if flow in WHOLE_FLOWS - allowed else flow


def separate_requests(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two parsed parts are two requests: each a confident task, of different flows."""
    a, b = task_flow(first), task_flow(second, LAST_FLOWS)
    return a is not None and b is not None and a != b
