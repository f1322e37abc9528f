"""Chinese conversations (issue 27) over REST against the real Rasa server, action server and database.

A shopper writes Chinese (or the shop page says 中文): the bot understands, verifies, tracks and takes a
return in Chinese, with the same checks as in English. Demo customers and orders: bot/seed_demo.md.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Address, Order
from tests.e2e.chat import Chat, own_order, refunds_of, signed_in
from tests.stack import Servers

pytestmark = pytest.mark.e2e

ALICE, BOB, CARLA = 1, 2, 3
HAN = re.compile(r"[\u4e00-\u9fff]")


class ZhChat(Chat):
    prefix = "zh"


def chinese(text: str) -> bool:
    """A Chinese reply: Chinese sentences (product names stay as the catalog writes them), no English ones."""
    return len(HAN.findall(text)) >= 4 and not re.search(r"\b(the|your|you|I|is|for)\b", text)


def test_tracking_with_verification_in_chinese(servers: Servers, db) -> None:
    number = own_order(db, "190001")  # Alice's, shipped
    chat = ZhChat(servers)
    asked = chat.text(chat.say(f"我的订单{number}到哪了？"))
    assert "邮箱" in asked and chinese(asked)
    assert "已发货" not in asked  # nothing revealed before verification
    told = chat.text(chat.say("alice.martin@example.com"))
    assert f"订单#{number}" in told and "已发货" in told and chinese(told)


def test_a_wrong_email_reveals_nothing_in_chinese(servers: Servers, db) -> None:
    number = own_order(db, "190001")
    chat = ZhChat(servers)
    chat.say(f"帮我查下{number}这个单子物流")
    reply = chat.text(chat.say("bob.nguyen@example.com"))  # someone else's real email
    assert "对不上" in reply and "已发货" not in reply and "alice" not in reply.lower()


def test_return_signed_in_in_chinese_writes_the_refund(servers: Servers, db) -> None:
    number = own_order(db, "190009")  # Carla's, delivered 2 days ago, three items
    chat = ZhChat(servers, signed_in(CARLA))
    asked = chat.text(chat.say("我想退货"))
    assert "订单号" in asked and chinese(asked)
    item = chat.say(number)
    assert f"订单#{number}里哪件商品要退货" in chat.text(item)
    whole = next(b for b in chat.buttons(item) if b["title"] == "整个订单")
    reason = chat.text(chat.say(whole["payload"]))  # tapping the button
    assert "退货原因" in reason
    confirm = chat.say("收到的时候盒子压坏了，东西也摔坏了")
    assert "确认提交" in chat.text(confirm) and [b["title"] for b in chat.buttons(confirm)] == ["确认提交", "先不了"]
    assert refunds_of(db, number) == 0  # nothing before the yes
    done = chat.text(chat.say("是的"))
    assert "退货申请RF-" in done and "已提交" in done
    assert refunds_of(db, number) == 1


def test_address_change_in_chinese_takes_a_chinese_address(servers: Servers, db) -> None:
    number = own_order(db, "190002")  # Alice's, processing: the address can still change
    chat = ZhChat(servers, signed_in(ALICE))
    asked = chat.text(chat.say(f"订单{number}的收货地址要改一下"))
    assert "新的收货地址" in asked and chinese(asked)
    confirm = chat.text(chat.say("改成 广东省深圳市南山区科技园南路15号2栋801室，邮编518057"))
    assert f"订单#{number}" in confirm and "广东省深圳市南山区科技园南路15号2栋801室，邮编518057" in confirm
    done = chat.text(chat.say("对的"))
    assert "改好了" in done and chinese(done)
    with Session(db) as s:
        address = s.scalars(select(Address).join(Order, Order.shipping_address_id == Address.id)
                            .where(Order.number == number)).one()
    assert (address.city, address.line1, address.line2, address.postcode, address.country) == (
        "广东省深圳市", "南山区科技园南路15号", "2栋801室", "518057", "中国")


def test_someone_elses_order_stays_hidden_in_chinese(servers: Servers, db) -> None:
    bobs = own_order(db, "190006")
    chat = ZhChat(servers, signed_in(ALICE))
    reply = chat.text(chat.say(f"订单{bobs}到哪了"))
    assert chinese(reply) and f"#{bobs}（" not in reply and "bob" not in reply.lower()  # no status, no owner


def test_the_page_language_and_the_customer_choose_the_language(servers: Servers) -> None:
    chat = ZhChat(servers, {"language": "zh-CN"})
    greeting = chat.text(chat.say('/greet{"language": "zh"}'))  # the widget's first message
    assert chinese(greeting)
    assert chinese(chat.text(chat.say("hello")))  # a Chinese page stays Chinese
    english = ZhChat(servers, {"language": "en"})
    assert not chinese(english.text(english.say("hi there")))
    assert chinese(english.text(english.say("你好，在吗")))  # Chinese typed on an English page: Chinese replies
    assert chinese(english.text(english.say("190003")))  # a number says nothing: the conversation stays Chinese
    back = english.text(english.say("sorry, can you answer me in English please"))
    assert not chinese(back)  # English typed on the English page: English again


def test_asking_for_a_person_in_chinese_opens_a_ticket_and_says_so_in_chinese(servers: Servers) -> None:
    chat = ZhChat(servers)
    reply = chat.text(chat.say("我的快递一直没到，帮我转人工客服"))
    assert chinese(reply) and re.search(r"工单TK-\d+", reply), reply


def test_an_upset_chinese_customer_is_offered_a_person(servers: Servers) -> None:
    """The Chinese sentiment head feeds the upset rule (UpsetPolicy: two clearly negative messages in a row)."""
    chat = ZhChat(servers)
    chat.say("你们这什么破服务，东西寄错了还没人管，气死我了")
    offer = chat.text(chat.say("垃圾店铺，太坑了，再也不会买了！"))
    assert "转给我们的同事" in offer, offer
