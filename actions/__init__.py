"""Rasa custom actions, one module per feature; importing this package registers them all."""

from actions import account, delivery, faq, orders, payments, products, prompts, refunds, support  # noqa: F401
