"""The customer conversations of tests/e2e/conversations/ (issue 25), each one test, against the real
Rasa server, action server and database (played by tests/e2e/customers.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e import customers
from tests.stack import Servers

pytestmark = pytest.mark.e2e

CONVERSATIONS = customers.load()


def test_every_pattern_has_ten_conversations_and_every_form_is_covered() -> None:
    per_pattern = Counter(c.pattern for c in CONVERSATIONS)
    assert {p: n for p, n in per_pattern.items() if n < 10} == {}
    assert set(per_pattern) == set(customers.PATTERNS)
    flows = {c.flow for c in CONVERSATIONS}
    assert {"tracking", "cancellation", "refund", "return", "address", "email", "invoice", "feedback",
            "csat", "complaint", "handoff"} <= flows


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.id for c in CONVERSATIONS])
def test_conversation(conversation: customers.Conversation, servers: Servers, db) -> None:
    outcome = customers.play(conversation, servers, db)
    assert outcome.passed, outcome.report()
