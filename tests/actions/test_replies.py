"""The conversation's language in the actions: values formatted for it, the domain's variations chosen."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from actions.replies import ERROR_RESPONSES, fmt_date, language, render, reply_error
from bot.services.errors import NotAllowed, order_not_found
from tests.actions.conftest import make_tracker

ROOT = Path(__file__).resolve().parents[2]


def test_dates_in_each_language():
    moment = datetime(2026, 3, 5, 14, 0)
    assert fmt_date(moment) == "Thu 5 Mar 2026"
    assert fmt_date(moment, "zh") == "2026年3月5日（周四）"
    assert fmt_date(None) == "unknown" and fmt_date(None, "zh") == "未知"


def test_language_comes_from_the_slot(domain):
    assert language(make_tracker(domain)) == "en"
    assert language(make_tracker(domain, slots={"language": "zh"})) == "zh"
    assert language(make_tracker(domain, slots={"language": "fr"})) == "en"


def test_render_picks_the_variation_of_the_language(domain):
    assert render(domain, "utter_order_status_shipped", "en") == "is on its way"
    assert render(domain, "utter_order_status_shipped", "zh") == "已发货，正在配送中"
    assert render(domain, "utter_cancelled", "zh", number="190002") == "已为您取消订单#190002。"
    assert render(domain, "no_such_response", "zh") == ""


def test_every_service_refusal_with_a_response_has_both_languages(domain):
    for code in ERROR_RESPONSES:
        variations = domain["responses"][f"utter_error_{code}"]
        assert variations[0]["text"] == "{message}"  # English: the service's own words
        zh = [v for v in variations if v.get("condition")]
        assert zh and re.search(r"[\u4e00-\u9fff]", zh[0]["text"]), code


def test_reply_error_dispatches_the_code_or_falls_back_to_the_message(dispatcher):
    reply_error(dispatcher, order_not_found(), number="190001")
    reply_error(dispatcher, NotAllowed("brand_new_code", "Not now."))
    first, second = dispatcher.messages
    assert first["response"] == "utter_error_order_not_found" and first["number"] == "190001"
    assert second["text"] == "Not now."


def test_responses_the_actions_dispatch_exist_in_the_domain(domain):
    names = set(domain["responses"])
    source = "\n".join(p.read_text() for p in (ROOT / "actions").glob("*.py"))
    dispatched = set(re.findall(r'response="(utter_[a-z_]+)"', source))
    assert dispatched and dispatched <= names, dispatched - names
    # names built at run time: every kind the slot can hold
    for kind in ("refund", "return"):
        for name in (f"utter_ask_refund_item_{kind}", f"utter_ask_refund_reason_{kind}",
                     f"utter_refund_submitted_{kind}", f"utter_ask_refund_confirm_{kind}_whole",
                     f"utter_ask_refund_confirm_{kind}_item"):
            assert name in names


def test_every_response_has_a_chinese_variation(domain):
    missing = [name for name, variations in domain["responses"].items()
               if not any(any(c.get("name") == "language" and c.get("value") == "zh" for c in v.get("condition") or [])
                          for v in variations)]
    assert missing == []
