"""The split rule of several requests in one message (concierge_rasa/multi_request.py)."""

from __future__ import annotations

import pytest

from concierge_rasa.multi_request import separate_requests, split_points


def parse(intent: str, confidence: float = 0.9) -> dict:
    return {"intent": {"name": intent, "confidence": confidence}}


@pytest.mark.parametrize(("text", "first", "second"), [
    ("cancel 190002 and tell me where 190003 is", "cancel 190002", "tell me where 190003 is"),
    ("can u cancel order 190002? also what payment methods do u take", "can u cancel order 190002",
     "what payment methods do u take"),
    ("i need an invoice for 190001 and then change my email", "i need an invoice for 190001", "change my email"),
    ("where is my order 190001. I also want to return the headphones", "where is my order 190001",
     "I also want to return the headphones"),
    ("Where's 190001 plus how do refunds work", "Where's 190001", "how do refunds work"),
    ("取消订单190002，然后帮我查一下190003到哪了", "取消订单190002", "帮我查一下190003到哪了"),
    ("帮我查一下190003到哪了。另外我想改邮箱", "帮我查一下190003到哪了", "我想改邮箱"),
])
def test_the_first_joint_with_a_request_on_each_side(text: str, first: str, second: str) -> None:
    assert split_points(text)[0] == (first, second)


@pytest.mark.parametrize("text", [
    "thanks and bye",  # a side of one word carries no request
    "yes and",
    "where is my parcel",
    "/cancel_order{\"order_number\": \"190002\"}",  # a button's payload is never split
    "a" * 500 + " and " + "b" * 10,  # over MAX_CHARS
    "再见",  # "再" alone is no joint
])
def test_no_split(text: str) -> None:
    assert split_points(text) == []


def test_at_most_three_joints_are_tried() -> None:
    assert len(split_points("track 190001 and 190002 and 190003 and 190004 and 190005 and 190006")) == 3


def test_two_tasks_of_different_flows_are_two_requests() -> None:
    assert separate_requests(parse("cancel_order"), parse("track_order"))
    assert separate_requests(parse("get_invoice", 0.45), parse("edit_account"))
    assert separate_requests(parse("track_order"), parse("contact_human_agent"))  # answered, then a person


@pytest.mark.parametrize(("first", "second"), [
    (parse("return_item"), parse("get_refund")),  # one flow: "return it and give me my money back"
    (parse("inform"), parse("get_refund")),  # "my order arrived broken and I want a refund": one request
    (parse("track_order"), parse("complaint")),  # anger beside a request: the complaint flow carries it
    (parse("contact_human_agent"), parse("track_order")),  # a person asked for first takes the whole message
    (parse("cancel_order"), parse("track_order", 0.3)),  # the NLU is unsure of a side
    (parse("thanks"), parse("goodbye")),
    ({"intent": None}, parse("track_order")),
])
def test_one_request(first: dict, second: dict) -> None:
    assert not separate_requests(first, second)
