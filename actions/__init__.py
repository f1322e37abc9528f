"""Rasa custom actions, one module per feature; importing this package registers them all."""

from actions import account, csat, delivery, faq, orders, payments, products, prompts, refunds, support, upset  # noqa: F401
