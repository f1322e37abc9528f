from bot.db import tickets


def test_create_and_list(session):
    # numbers continue after the seeded support history (TK-600001..)
    expected = tickets.next_ticket_number(session)
    n = int(expected.removeprefix("TK-"))
    first = tickets.create(session, sender_id="c-1", category="complaint", subject="Late parcel")
    second = tickets.create(session, sender_id="c-1", category="other", subject="More")
    assert first.number == expected
    assert second.number == f"TK-{n + 1}"
    assert [t.number for t in tickets.for_conversation(session, "c-1")] == [expected, f"TK-{n + 1}"]
    assert tickets.for_conversation(session, "c-2") == []
