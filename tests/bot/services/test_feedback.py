import pytest

from bot.db import models as m
from bot.services.errors import InvalidInput
from bot.services.feedback import record_feedback


def test_record_feedback(session):
    fid = record_feedback(session, "conv-9", customer_id=1, rating=5, comment="  Super helpful!  ")
    row = session.get(m.Feedback, fid)
    assert (row.conversation_id, row.customer_id, row.rating, row.comment) == (
        "conv-9",
        1,
        5,
        "Super helpful!",
    )


def test_record_feedback_without_rating_and_huge_comment(session):
    fid = record_feedback(session, "conv-10", comment="<b>" * 10_000)
    row = session.get(m.Feedback, fid)
    assert row.rating is None and len(row.comment) <= 2000


@pytest.mark.parametrize("bad", [0, 6, -1, "five", 3.5e9])
def test_record_feedback_bad_rating(session, bad):
    with pytest.raises(InvalidInput):
        record_feedback(session, "conv-11", rating=bad)
