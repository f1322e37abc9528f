import pytest

from bot.db import interactions


def test_log_and_read(session):
    interactions.log(
        session,
        sender_id="c-1",
        role="user",
        text="where is my order?",
        intent="track_order",
        confidence=0.93,
        sentiment_label="neutral",
        sentiment_score=0.1,
    )
    interactions.log(session, sender_id="c-1", role="bot", text="Let me check.", action="action_track")
    rows = interactions.for_conversation(session, "c-1")
    assert [(r.role, r.intent, r.action) for r in rows] == [
        ("user", "track_order", None),
        ("bot", None, "action_track"),
    ]
    assert rows[0].confidence == pytest.approx(0.93)


def test_log_truncates_and_validates(session):
    row = interactions.log(session, sender_id="c-2", role="user", text="x" * 100_000)
    assert len(row.text) == interactions.MAX_TEXT
    with pytest.raises(ValueError):
        interactions.log(session, sender_id="c-2", role="admin")
