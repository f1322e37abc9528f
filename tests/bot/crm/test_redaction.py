"""Redaction of the stored copy: patterns for emails, cards, phones and addresses; spaCy NER for names and places."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.crm.redaction import Span, apply, cn_id_ok, luhn_ok, merge, pattern_spans, redact, redact_entities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my email is jane.doe+shop@mail.example.co.uk thanks", "my email is [EMAIL] thanks"),
        ("write to JOHN_SMITH@Example.COM.", "write to [EMAIL]."),
        ("it's john dot smith at gmail dot com", "it's [EMAIL]"),
        ("card 4111 1111 1111 1111 was charged twice", "card [CARD] was charged twice"),
        ("my visa 4012-8888-8888-1881 expired", "my visa [CARD] expired"),
        ("amex 378282246310005", "amex [CARD]"),
        ("call me on +1 (415) 555-0134 after 5", "call me on [PHONE] after 5"),
        ("mobile 07700 900123", "mobile [PHONE]"),
        ("my number is 555-0134", "my number is [PHONE]"),
        ("ring 0049 30 1234567", "ring [PHONE]"),
        ("send it to 221B Baker Street please", "send it to [ADDRESS] please"),
        ("new address: 1600 amphitheatre pkwy, apt 4", "new address: [ADDRESS]"),
        ("PO Box 4410 is fine", "[ADDRESS] is fine"),
    ],
)
def test_patterns_replace_personal_data(text: str, expected: str) -> None:
    assert apply(text, merge(pattern_spans(text))) == expected


@pytest.mark.parametrize(
    "text",
    [
        "where is my order 190001?",
        "orders #190001 and #190002",
        "orders 190001 190002 190003",
        "refund RF-590001 for $1,249.50",
        "ticket TK-600051 and invoice INV-190003",
        "it arrived on 12/05/2024 at 14:30",
        "delivered 2024-05-12, 3 items",
        "card number 4111 1111 1111 1112 is wrong",  # fails the Luhn check: not a card
        "tracking 1Z999AA10123456784",
        "I paid 129.99 for 2 of them",
    ],
)
def test_shop_identifiers_amounts_and_dates_stay(text: str) -> None:
    assert apply(text, merge(pattern_spans(text))) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_overlaps_keep_the_stronger_finding() -> None:
    spans = merge([Span(0, 10, "NAME"), Span(2, 8, "EMAIL"), Span(12, 14, "PLACE")])
    assert spans == [Span(2, 8, "EMAIL"), Span(12, 14, "PLACE")]


def test_names_and_places_come_from_spacy_ner() -> None:
    out = redact("Hi, I'm Maria Gonzalez and I moved from London to Berlin, card 4111 1111 1111 1111, order 190001")
    assert out == "Hi, I'm [NAME] and I moved from [PLACE] to [PLACE], card [CARD], order 190001"


def test_empty_binary_and_huge_texts() -> None:
    assert redact("") == ""
    assert redact("\x00\x01") == "\x00\x01"
    huge = "call 415 555 0134 " + "a" * 30_000
    assert redact(huge).startswith("call [PHONE] ")


def test_the_model_is_not_loaded_at_import() -> None:
    code = "import sys, bot.crm.redaction, bot.crm.ingestor; print('spacy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_entity_values_are_redacted_like_the_text() -> None:
    text_ = "call me on +1 415 555 0134 about the Kestrel phone, I'm Maria"
    entities = json.dumps(
        [
            {"entity": "phone_number", "value": "+1 415 555 0134", "start": 11, "end": 26},
            {"entity": "product", "value": "phone", "start": 45, "end": 50},
            {"entity": "email", "value": "MARIA@EXAMPLE.COM"},  # normalised, no offsets
            {"entity": "person", "value": "Maria", "start": 56, "end": 61},
            {"entity": "amount", "value": 12.5},
        ]
    )
    spans = [Span(11, 26, "PHONE"), Span(56, 61, "NAME")]
    got = json.loads(redact_entities(entities, text_, spans))
    assert [e["value"] for e in got] == ["[PHONE]", "phone", "[EMAIL]", "[NAME]", 12.5]
    assert redact_entities(None, text_, spans) is None


CATALOGUE = ["Kestrel S2 Camera Bag", "Kestrel Plus Memory Card", "A Winter in Lisbon: A Novel by Maya Linwood"]


def test_catalogue_product_names_are_not_personal_data() -> None:
    from bot.crm.redaction import Redactor

    redactor = Redactor(keep_terms=CATALOGUE)
    bot = "Order 190004: 1x Kestrel S2 Camera Bag, 1x Kestrel Plus Memory Card. Delivered."
    user = "A Winter in Lisbon: A Novel by Maya Linwood arrived torn, I'm Jonas Weber, jonas@example.com"
    assert redactor.redact_many([bot, user], roles=["bot", "user"]) == [
        bot,
        "A Winter in Lisbon: A Novel by Maya Linwood arrived torn, I'm [NAME], [EMAIL]",
    ]
    redactor.set_keep_terms([])  # refreshable: without the catalogue spaCy redacts inside the title
    assert redactor.redact_many([user])[0].split(" arrived")[0] != user.split(" arrived")[0]


def test_bot_texts_keep_carrier_places_and_the_agents_name_but_not_the_customers_data() -> None:
    from bot.crm.redaction import Redactor

    redactor = Redactor(keep_terms=CATALOGUE)
    texts = [
        "Latest update: Departed sorting facility, in transit, Memphis, TN (Nov 28).",
        "Alex (support): Hello Alice Martin, this is Alex. Your card 4111 1111 1111 1111 is refunded.",
        "Thanks, Maria Gonzalez. Your new address is 221 Baker Street; the code went to maria@example.com",
    ]
    assert redactor.redact_many(texts, roles=["bot"] * 3, keep=[[], ["Alex"], []]) == [
        texts[0],
        "Alex (support): Hello [NAME], this is Alex. Your card [CARD] is refunded.",
        "Thanks, [NAME]. Your new address is [ADDRESS]; the code went to [EMAIL]",
    ]
    # the customer writing the same place is still redacted
    assert redactor.redact("I live in Memphis, TN") == "I live in [PLACE], TN"


def test_a_city_after_a_carrier_status_is_a_place_not_the_customers_name() -> None:
    """spaCy reads "Out for delivery, Austin" as a PERSON: the bot's tracking update kept it; the same
    word greeting the customer ("Thanks, Austin.") is still a name, and the shop's own tracking places
    (set_place_terms, from the tracking table) count as places where a place is written."""
    from bot.crm.redaction import Redactor

    redactor = Redactor(keep_terms=CATALOGUE)
    bot = [
        "Out for delivery, Austin",
        "Your order 190010 is out for delivery. Latest update: Out for delivery, Austin (Dec 3).",
        "Latest update: Delivered, Madison (Nov 30).",
        "Thanks, Austin. I've verified you; order 190015 was delivered.",
        "Hi Madison, your parcel is waiting at the depot.",
    ]
    assert redactor.redact_many(bot, roles=["bot"] * len(bot)) == [
        bot[0], bot[1], bot[2],
        "Thanks, [NAME]. I've verified you; order 190015 was delivered.",
        "Hi [NAME], your parcel is waiting at the depot.",
    ]
    # a shop place outside the built-in list, written as a place ("<place> (date)"), not as a name
    redactor.set_place_terms(["Quillbrook, VT"])
    for text, place in (("Your parcel is with Quillbrook (Dec 2).", True), ("Thanks, Quillbrook.", False)):
        start = text.index("Quillbrook")
        assert redactor.is_bot_place(text, Span(start, start + len("Quillbrook"), "NAME")) is place, text
    # a customer typing the city is still redacted
    assert redactor.redact("it says out for delivery, Austin, but I'm in Denver") != (
        "it says out for delivery, Austin, but I'm in Denver")



# ---------------------------------------------------------------- how much spaCy work (issue 24)
def labelled_texts() -> list[str]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "data" / "redaction" / "labelled.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def legacy_and_lean():  # noqa: ANN201 - two Redactors
    from bot.crm.redaction import NerOptions, Redactor

    return Redactor(options=NerOptions(cache_size=0, drop_unused_tok2vec=False, skip_letterless=False)), Redactor()


def test_the_lean_pipeline_finds_exactly_what_the_full_one_found(legacy_and_lean) -> None:  # noqa: ANN001
    """Without the tok2vec nothing reads, skipping letterless texts and remembering texts seen, every
    finding of every labelled message is the same as the pipeline as it ran before, one text at a time
    (as bench-redaction runs it) or as one batch with repeats."""
    legacy, lean = legacy_and_lean
    texts = labelled_texts()
    assert "tok2vec" in legacy.nlp.pipe_names and lean.nlp.pipe_names == ["ner"]
    one_by_one = [legacy.ner_many([t])[0] for t in texts]
    assert any(one_by_one) and lean.ner_many(texts) == one_by_one
    doubled = texts[::-1] + texts  # a batch with each text twice, the cache warm
    assert lean.ner_many(doubled) == one_by_one[::-1] + one_by_one
    roles = ["bot" if i % 5 == 0 else "user" for i in range(len(texts))]
    assert lean.spans_many(texts, roles=roles) == legacy.spans_many(texts, roles=roles)


def test_letterless_texts_skip_ner_and_repeated_texts_run_once(legacy_and_lean) -> None:  # noqa: ANN001
    from bot.crm.redaction import NerOptions, Redactor

    legacy, _ = legacy_and_lean
    redactor = Redactor(options=NerOptions(cache_size=2))
    letterless = ["190001", "4111 1111 1111 1111", "+44 20 7946 0958", "5", "", "  \n"]
    assert redactor.redact_many(letterless) == legacy.redact_many(letterless)
    assert redactor.redact_many(letterless)[1:3] == ["[CARD]", "[PHONE]"]
    assert redactor.ner_stats == {"skipped": 12}  # spaCy never ran (and never loaded)
    assert redactor._nlp is None  # noqa: SLF001

    texts = ["I'm Maria Gonzalez from Berlin", "hi", "I'm Maria Gonzalez from Berlin", "thanks, bye", "hi"]
    expected = legacy.redact_many(texts)
    assert redactor.redact_many(texts) == expected
    assert redactor.ner_stats["ner"] == 3 and redactor.ner_stats["cached"] == 2  # repeats in the batch
    assert redactor.redact_many(texts[2:]) == expected[2:]  # the last two are remembered, not the first
    assert redactor.ner_stats["ner"] == 4 and redactor.ner_stats["cached"] == 4
    cache = redactor._cache  # noqa: SLF001
    assert len(cache) == 2 and all(isinstance(k, bytes) and len(k) == 16 for k in cache)  # digests, not texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机号是13812345678，订单190003到哪了？", "我的手机号是[PHONE]，订单190003到哪了？"),
        ("电话 +86 138-1234-5678", "电话 [PHONE]"),
        ("我的号码 0086 13912345678", "我的号码 [PHONE]"),
        ("身份证号11010519491231002X", "身份证号[ID]"),
        ("我住在上海市浦东新区世纪大道100号3栋1201室，寄到这里", "我住在[ADDRESS]，寄到这里"),
        ("收货地址：北京市朝阳区建国路88号SOHO现代城5号楼1203", "收货地址：[ADDRESS]"),
        ("地址改成广州市天河区天河路385号太古汇一座2801，谢谢", "地址改成[ADDRESS]，谢谢"),
        ("送到阳光花园3栋2单元501", "送到[ADDRESS]"),
        ("我叫王芳，订单190001", "我叫[NAME]，订单190001"),
        ("收货人：李娜", "收货人：[NAME]"),
        ("我是张伟的朋友", "我是[NAME]的朋友"),
    ],
)
def test_chinese_personal_data_is_replaced(text: str, expected: str) -> None:
    """Han characters are word characters, so the English patterns never saw "手机13812345678"."""
    assert apply(text, merge(pattern_spans(text))) == expected


@pytest.mark.parametrize(
    "text",
    [
        "订单号190003和190004",
        "退款RF-590001，金额¥1249.50",
        "2024年12月05日14:30到的",
        "我是来退货的",
        "收货人不在家",
        "我想改地址",
        "手机尾号5678",
        "身份证号110105194912310021",  # wrong check character: not an ID number
        "快递员说放在驿站了",
    ],
)
def test_chinese_shop_texts_stay(text: str) -> None:
    assert apply(text, merge(pattern_spans(text))) == text


def test_chinese_id_check_character() -> None:
    assert cn_id_ok("11010519491231002X") and cn_id_ok("11010519491231002x")
    assert not cn_id_ok("110105194912310021") and not cn_id_ok("1101051949123100")
