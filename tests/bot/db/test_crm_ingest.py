"""The CRM ingestor's bookkeeping: which events are stored already, one event or a whole batch at a time."""

from datetime import datetime

from bot.db import crm_ingest


def test_seen_many_finds_the_stored_keys_of_a_large_batch(session):
    stored = [f"key-{i:04d}" for i in range(0, 1200, 3)]
    for key in stored:
        crm_ingest.mark(session, key, "s", "user", datetime(2026, 1, 1))
    session.flush()
    asked = [f"key-{i:04d}" for i in range(1200)]  # more than one chunk of bound parameters
    assert crm_ingest.seen_many(session, asked) == set(stored)
    assert crm_ingest.seen_many(session, []) == set()
    assert all(crm_ingest.seen(session, k) == (k in set(stored)) for k in asked[:30])
