import pytest

from bot.db import models as m
from bot.services.errors import InvalidInput
from bot.services.feedback import record_feedback


def test_record_feedback(session):
    fid = record_feedback(session, "conv-9", customer_id=1, rating=5, comment="  Super helpful!  ")
    row = session.get(m.Feedback, fid)
    assert (row.sender_id, row.customer_id, row.rating, row.comment) == (
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


def test_parse_rating_reads_what_customers_type():
    from bot.services.feedback import parse_rating

    cases = {
        "4": 4, "4/5": 4, "I'd say 4 out of 5": 4, "five stars": 5, "★★★": 3, "5.": 5, "2, not great": 2,
        "rate 1": 1, "10": None, "190002": None, "0": None, "6": None, "3.5": None, "none": None,
        "honestly": None, "": None, None: None, "great service": None,
        # Chinese: numerals or digits before 分/星, and 满分 (full marks)
        "五分": 5, "给4星吧": 4, "两颗星": 2, "满分！": 5, "三分吧，太慢了": 3, "10分": None, "1900023分": None,
        "等了十五分钟，给3分": 3, "三星手机": None, "两星期了": None, "四星吧": 4,
    }
    assert {text: parse_rating(text) for text in cases} == cases


def test_is_skip():
    from bot.services.feedback import is_skip

    assert all(is_skip(t) for t in ["no", "No thanks.", "skip", "nothing!", "/deny", "  nah "])
    assert all(is_skip(t) for t in ["跳过", "没有了。", "不用了"])
    assert not any(is_skip(t) for t in ["no, the box was damaged", "5", "", "nothing arrived", "没有收到货"])
