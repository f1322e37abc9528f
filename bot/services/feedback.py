"""Conversation ratings and comments."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import feedback as feedback_repo
from bot.services.errors import InvalidInput
from bot.services.tickets import clip_text

RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
#: Chinese numerals before 分/星/颗星 ("五分", "4星") and the words for a rating ("满分" is the top one)
_ZH_RATING = re.compile(
    # not 十五分钟 (fifteen minutes), 三星 the brand, 两星期 (two weeks)
    r"(?<![\d.十百])([一二两三四五1-5])\s*(?:分(?!钟)|颗星|星(?=$|[\s，。！!,.吧啊哦呀]))|(满分)"
)
_ZH_NUMBERS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_DIGIT = re.compile(r"(?<![\d.,])([1-5])(?!\d|[.,]\d)")
_SKIP = re.compile(
    r"^\s*(no|nope|nah|no thanks|nothing|skip|n/a|none|-|/deny|跳过|不用了?|没有了?|没了|不评了?|算了)\s*[.!。！]*\s*$",
    re.I,
)
_STARS = re.compile(r"[\u2605\u2b50]")  # a row of star characters (button-less channels)


def is_skip(text: object) -> bool:
    """True when the customer declined to answer ("no", "skip", "nothing", the Skip button)."""
    return bool(_SKIP.match(str(text or "")[:100]))


def parse_rating(text: object) -> int | None:
    """A 1-5 rating in what the customer typed ("4", "4/5", "four stars", "★★★★"), else None.

    Only whole words count ("one" inside "honestly" or "none" is no rating), and a number
    outside 1-5 ("10", "190002") is not clipped into range.
    """
    value = str(text or "").strip().lower()[:200]
    if not value:
        return None
    chinese = _ZH_RATING.search(value)
    if chinese:
        return 5 if chinese.group(2) else int(_ZH_NUMBERS.get(chinese.group(1), chinese.group(1)))
    stars = len(_STARS.findall(value))
    if 1 <= stars <= 5 and not re.search(r"\d", value):
        return stars
    digits = [m.group(1) for m in _DIGIT.finditer(value)]
    if re.search(r"\d", value) and not digits:
        return None  # numbers, but none of them a rating
    if digits:
        return int(digits[0])
    words = re.findall(r"[a-z]+", value)
    return next((RATING_WORDS[w] for w in words if w in RATING_WORDS), None)


def record_feedback(
    session: Session,
    sender_id: str,
    customer_id: int | None = None,
    rating: int | None = None,
    comment: str = "",
) -> int:
    """Store feedback and return its id; InvalidInput for a rating outside 1-5."""
    if rating is not None:
        try:
            rating = int(rating)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("invalid_rating", "Please rate from 1 to 5.") from exc
        if not 1 <= rating <= 5:
            raise InvalidInput("invalid_rating", "Please rate from 1 to 5.")
    if customer_id is not None and (
        not isinstance(customer_id, int) or customers_repo.get(session, customer_id) is None
    ):
        customer_id = None
    row = feedback_repo.create(
        session,
        sender_id=clip_text(sender_id, 128) or "unknown",
        customer_id=customer_id,
        rating=rating,
        comment=clip_text(comment, 2000),
    )
    return row.id
