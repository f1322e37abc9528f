"""Chinese shipping addresses (issue 27 §1): written big to small, in one run of characters.

A Chinese shopper writes 「上海市浦东新区世纪大道100号2号楼1001室」: province or municipality, city,
district, then street and number, then building and room; no commas, the postcode optional and
often left out. The Western parser in ``orders.parse_address`` needs commas and a postcode, so a
message with Chinese characters comes here instead. The parts land in the same columns (line1:
district, street and number; line2: building and room; city: province and city; country 中国) and
``address_text`` writes them back the Chinese way, which this parser reads again.
"""

from __future__ import annotations

import re
import unicodedata

from concierge_rasa.text import HAN_CHARS

HAN = HAN_CHARS
COUNTRY = "中国"

_MUNICIPALITY = r"(?:北京|上海|天津|重庆)"
_PROVINCE = re.compile(
    rf"^(?:{_MUNICIPALITY}市?|(?:内蒙古|广西壮族|广西|西藏|宁夏回族|宁夏|新疆维吾尔|新疆)自治区"
    rf"|(?:香港|澳门)(?:特别行政区)?|[{HAN}]{{2,3}}省)"
)
_CITY = re.compile(rf"^[{HAN}]{{2,6}}?(?:自治州|地区|盟|市)")
_DISTRICT = re.compile(rf"^[{HAN}]{{1,6}}?(?:新区|区|县|旗|市)")
# street and house number; what follows (building, unit, room) is line 2
_STREET = re.compile(r"^(?P<street>.*?\d+(?:-\d+)?(?:弄\d+号|号院?|弄))(?P<more>.*)$")
_POSTCODE = re.compile(r"(?:邮编|邮政编码)?[:：]?\s*(?<!\d)(\d{6})(?!\d)")
_PHONE = re.compile(r"(?:联系)?(?:电话|手机号?|tel)?[:：]?\s*(?:\+?86[-\s]?)?(?<!\d)1[3-9]\d{9}(?!\d)", re.I)
# words before the address: 「新地址是」「请把地址改成」「寄到」「我搬到了」
_LEAD = re.compile(
    r"^.*?(?:地址(?:是|为|改成|改为|换成|改到)?[:：]?|改成|改为|改到|换成|寄到|送到|发到|寄往|送往|住在|搬到了?|搬去)"
)
_TAIL = re.compile(r"(?:谢谢|多谢|麻烦了|吧|哦|啊|呀|哈)+$")
_SEPARATORS = re.compile(r"[\s,，、;；。.!！~～]+")


class AddressProblem(ValueError):
    """Why the text is no Chinese address; the caller words the reply."""


def parse_chinese_address(text: str) -> dict:
    """line1/line2/city/postcode/country of a Chinese address; AddressProblem when parts are missing."""
    text = unicodedata.normalize("NFKC", text)  # full-width digits and punctuation
    text = _PHONE.sub(" ", text)  # a phone number is not part of the address
    postcode = ""
    found = list(_POSTCODE.finditer(text))
    if found:
        postcode = found[-1].group(1)
        text = text[: found[-1].start()] + " " + text[found[-1].end() :]
    text = _TAIL.sub("", _SEPARATORS.sub("", text))
    lead = _LEAD.match(text)
    if lead and _starts_with_place(text[lead.end() :]):
        text = text[lead.end() :]
    text = text.removeprefix(COUNTRY)
    province = _take(_PROVINCE, text)
    text = text[len(province) :]
    city = _take(_CITY, text)
    text = text[len(city) :]
    district = _take(_DISTRICT, text)
    rest = text[len(district) :]
    if re.fullmatch(_MUNICIPALITY, province):
        province += "市"
    if not (province or city):
        raise AddressProblem("city")
    if not re.search(r"\d", rest) or len(re.findall(f"[{HAN}]", rest)) < 2:
        raise AddressProblem("street")
    street = _STREET.match(rest)
    line1, line2 = (street.group("street"), street.group("more")) if street else (rest, "")
    line1 = district + line1
    city = province + city
    if len(line1) > 120 or len(line2) > 120 or len(city) > 60:
        raise AddressProblem("too long")
    return {"line1": line1, "line2": line2 or None, "city": city, "postcode": postcode, "country": COUNTRY}


def _starts_with_place(text: str) -> bool:
    text = text.removeprefix(COUNTRY)
    return bool(_PROVINCE.search(text) or _CITY.search(text))


def _take(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(text)
    return match.group(0) if match else ""


def chinese_address_text(line1: str, line2: str | None, city: str, postcode: str) -> str:
    """Big to small without separators, the postcode last: what a Chinese parcel label says."""
    text = f"{city}{line1}{line2 or ''}"
    return f"{text}，邮编{postcode}" if postcode else text
