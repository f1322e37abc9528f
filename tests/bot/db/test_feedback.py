from bot.db import feedback


def test_create_and_list(session):
    row = feedback.create(session, sender_id="c-7", rating=4, comment="ok")
    assert row.id is not None
    assert [(f.rating, f.comment) for f in feedback.for_conversation(session, "c-7")] == [(4, "ok")]
