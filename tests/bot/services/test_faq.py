import pytest

from bot.services import faq

TOPICS = [
    "delivery_options",
    "delivery_period",
    "payment_methods",
    "refund_policy",
    "cancellation_fee",
    "business_hours",
    "contact_customer_service",
    "place_order",
    "create_account",
    "edit_account",
    "delete_account",
    "switch_account",
    "recover_password",
    "registration_problems",
    "newsletter",
    "set_up_shipping_address",
    "change_order",
    "payment_issue",
    "product_question",
]


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_a_short_answer(topic):
    text = faq.answer(topic)
    assert text != faq.GENERIC_ANSWER
    assert 20 < len(text) < 600
    assert "\n" not in text


def test_refund_policy_matches_settings():
    from bot.settings import get_settings

    assert f"{get_settings().refund_window_days} days" in faq.answer("refund_policy")


def test_unknown_topics_get_generic_answer():
    assert faq.answer("nope") == faq.GENERIC_ANSWER
    assert faq.answer(None) == faq.GENERIC_ANSWER
    assert faq.answer("x" * 10_000) == faq.GENERIC_ANSWER


def test_load_faq_from_other_path(tmp_path):
    path = tmp_path / "faq.yml"
    path.write_text("answers:\n  hello: >\n    Hi\n    there.\n", encoding="utf-8")
    assert faq.load_faq(path) == {"hello": "Hi there."}
    assert faq.load_faq(path) is not faq.load_faq(path)  # callers get a copy
