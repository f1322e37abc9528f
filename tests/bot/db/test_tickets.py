from bot.db import tickets


def test_create_and_list(session):
    first = tickets.create(session, conversation_id="c-1", category="complaint", subject="Late parcel")
    second = tickets.create(session, conversation_id="c-1", category="other", subject="More")
    assert first.number == "TK-700001"
    assert second.number == "TK-700002"
    assert [t.number for t in tickets.for_conversation(session, "c-1")] == ["TK-700001", "TK-700002"]
    assert tickets.for_conversation(session, "c-2") == []
