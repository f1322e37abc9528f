"""Aspects of Chinese feedback, named in the same words as the English ones ("late delivery").

Why: the feedback topics (``bot.analytics.topics``) parse English with spaCy; Chinese complaints
went through the English parser and yielded nothing. A shop serving both languages wants one list
of topics, so a Chinese complaint about a slow parcel must count towards "slow delivery" beside the
English ones. Chinese aspects are found with a lexicon of the service's nouns and opinion words
(what customer-service complaints are about is a short list), clause by clause: an opinion word
attaches to the nearest aspect noun in its clause; a clause with a noun and no opinion gives the
plain noun. Product words ("耳机", "咖啡机") stand for "item", as product names do in English.
"""

from __future__ import annotations

import re

from bot.analytics.topics import Aspect
from concierge_rasa.text import HAN

CLAUSE = re.compile(r"[，。！？；、,.!?;~\s]+")
#: Chinese nouns of the service -> the English noun the topics use (longest first when matching)
NOUNS = {
    "快递": "delivery", "物流": "delivery", "配送": "delivery", "发货": "delivery", "送货": "delivery",
    "到货": "delivery", "派送": "delivery", "包裹": "parcel", "快递员": "courier", "退款": "refund",
    "退钱": "refund", "退货": "return", "换货": "return", "客服": "support", "售后": "support",
    "服务": "service", "态度": "service", "包装": "box", "盒子": "box", "箱子": "box", "质量": "item",
    "东西": "item", "商品": "item", "宝贝": "item", "货": "item", "产品": "item", "尺码": "size",
    "颜色": "color", "发票": "invoice", "付款": "payment", "支付": "payment", "扣款": "payment",
    "扣费": "payment", "价格": "price", "地址": "address", "账号": "account", "账户": "account",
    "密码": "password", "优惠券": "coupon",
}
#: opinion words -> the English opinion (longest first when matching, so 太慢 beats 慢)
OPINIONS = {
    "太慢": "slow", "好慢": "slow", "很慢": "slow", "慢": "slow", "磨蹭": "slow", "晚了": "late",
    "延迟": "late", "延误": "late", "迟迟": "late", "还没到": "missing", "没到": "missing",
    "没收到": "missing", "收不到": "missing", "丢了": "lost", "丢件": "lost", "少发": "missing",
    "漏发": "missing", "坏了": "damaged", "坏": "damaged", "破损": "damaged", "破了": "damaged",
    "压坏": "damaged", "摔坏": "damaged", "碎了": "damaged", "损坏": "damaged", "发错": "wrong",
    "错了": "wrong", "不对": "wrong", "不符": "wrong", "不合适": "wrong", "不回": "unresponsive",
    "没人理": "unresponsive", "没人管": "unresponsive", "不理": "unresponsive", "联系不上": "unresponsive",
    "差": "bad", "垃圾": "bad", "太烂": "bad", "烂": "bad", "失望": "bad", "贵": "expensive",
    "重复扣": "double", "扣了两次": "double", "失败": "failed", "不成功": "failed", "难用": "bad",
}
_NOUN_RE = re.compile("|".join(map(re.escape, sorted(NOUNS, key=len, reverse=True))))
_OPINION_RE = re.compile("|".join(map(re.escape, sorted(OPINIONS, key=len, reverse=True))))


def is_chinese(text: str) -> bool:
    """Whether the text is written in Chinese (any Han character)."""
    return bool(HAN.search(text or ""))


def aspects(text: str, products: frozenset[str] = frozenset()) -> list[Aspect]:
    """Opinionated aspects of one Chinese text; plain nouns when it has none (at most three).

    ``products`` holds Chinese product words (from the NLU's lookup table) that stand for "item".
    """
    product_re = re.compile("|".join(map(re.escape, sorted(products, key=len, reverse=True)))) if products else None
    found: list[Aspect] = []
    plain: list[Aspect] = []
    for clause in CLAUSE.split(text or ""):
        nouns = [(m.start(), NOUNS[m.group()]) for m in _NOUN_RE.finditer(clause)]
        if product_re is not None:
            nouns += [(m.start(), "item") for m in product_re.finditer(clause)]
        if not nouns:
            continue
        opinions = [(m.start(), OPINIONS[m.group()]) for m in _OPINION_RE.finditer(clause)]
        for at, opinion in opinions:
            _, noun = min(nouns, key=lambda n: abs(n[0] - at))
            aspect = Aspect(f"{opinion} {noun}", noun, opinion)
            if aspect not in found:
                found.append(aspect)
        if not opinions:
            for _, noun in sorted(nouns):
                aspect = Aspect(noun, noun, None)
                if aspect not in plain:
                    plain.append(aspect)
    return (found or plain)[:3]
