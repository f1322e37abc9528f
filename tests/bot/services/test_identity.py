import base64
import json

import pytest

from bot.services import identity
from bot.settings import get_settings
from concierge_rasa.security import key_id

SECRET = "unit-test-secret"
NOW = 1_800_000_000


def test_token_roundtrip_and_format():
    token = identity.sign_token(7, ttl_s=60, secret=SECRET, now=NOW)
    payload_b64, sig_b64 = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert payload == {"cid": 7, "exp": NOW + 60, "kid": key_id(SECRET.encode())}
    assert len(base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))) == 32
    assert identity.verify_token(token, secret=SECRET, now=NOW + 59) == 7


def test_expired_token():
    token = identity.sign_token(7, ttl_s=60, secret=SECRET, now=NOW)
    assert identity.verify_token(token, secret=SECRET, now=NOW + 60) is None


def test_wrong_secret_and_forged_payload():
    token = identity.sign_token(7, ttl_s=60, secret=SECRET, now=NOW)
    assert identity.verify_token(token, secret="other", now=NOW) is None
    _, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"cid": 1, "exp": NOW + 60}).encode()).decode().rstrip("=")
    assert identity.verify_token(f"{forged}.{sig}", secret=SECRET, now=NOW) is None


@pytest.mark.parametrize(
    "bad",
    [
        None,
        123,
        b"abc.def",
        "",
        ".",
        "abc",
        "a.b.c",
        "!!!.???",
        "x" * 5000,
        "é.é",
        "eyJjaWQiOjF9." + "A" * 43,
        {"cid": 1},
    ],
)
def test_malformed_tokens(bad):
    assert identity.verify_token(bad, secret=SECRET, now=NOW) is None


def test_signed_but_invalid_payloads_are_rejected():
    import hashlib
    import hmac

    def make(payload: bytes) -> str:
        sig = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
        enc = base64.urlsafe_b64encode
        return enc(payload).decode().rstrip("=") + "." + enc(sig).decode().rstrip("=")

    for payload in [
        b"[]",
        b"not json",
        b'{"cid": "1", "exp": 9999999999}',
        b'{"cid": true, "exp": 9999999999}',
        b'{"cid": -1, "exp": 9999999999}',
        b'{"cid": 1}',
        b'{"cid": 1, "exp": "never"}',
    ]:
        assert identity.verify_token(make(payload), secret=SECRET, now=NOW) is None
    assert identity.verify_token(make(b'{"cid": 3, "exp": 9999999999}'), secret=SECRET, now=NOW) == 3


def test_default_secret_and_ttl_from_settings(db_url):
    token = identity.sign_token(1)
    assert identity.verify_token(token) == 1
    assert identity.verify_token(token, secret="something-else") is None


def test_sign_rejects_bad_ids():
    for bad in (0, -1, True, "1", None):
        with pytest.raises(ValueError):
            identity.sign_token(bad, secret=SECRET)


def test_verify_order_email(session):
    assert identity.verify_order_email(session, "#190001", "  Alice.Martin@Example.com ") == 1
    assert identity.verify_order_email(session, "order 190006", "bob.nguyen@example.com") == 2


@pytest.mark.parametrize(
    ("number", "email"),
    [
        ("190001", "bob.nguyen@example.com"),  # someone else's email
        ("190006", "alice.martin@example.com"),  # someone else's order
        ("999999", "alice.martin@example.com"),  # guessed number
        ("190001", ""),
        ("190001", "' OR '1'='1"),
        ("' OR 1=1 --", "alice.martin@example.com"),
        ("190001", "a" * 100_000 + "@example.com"),
        (None, "alice.martin@example.com"),
        ("190001", None),
    ],
)
def test_verify_order_email_rejects(session, number, email):
    assert identity.verify_order_email(session, number, email) is None


def test_get_customer(session):
    from bot.db import models as m

    alice = identity.get_customer(session, 1)
    assert (alice.name, alice.email, alice.tier, alice.newsletter) == (
        "Alice Martin",
        "alice.martin@example.com",
        "gold",
        True,
    )
    assert identity.get_customer(session, 999_999) is None
    assert identity.get_customer(session, "1") is None
    session.get(m.Customer, 1).status = "deleted"
    session.flush()
    assert identity.get_customer(session, 1) is None
    assert identity.verify_order_email(session, "190001", "alice.martin@example.com") is None


def test_default_lifetime_is_one_hour(db_url):
    token = identity.sign_token(1, now=NOW)
    assert identity.verify_token(token, now=NOW + 3599) == 1
    assert identity.verify_token(token, now=NOW + 3600) is None


def test_rotation_current_and_previous_keys(db_url, monkeypatch):
    old, new, retired = "o" * 40, "n" * 40, "r" * 40
    by_old = identity.sign_token(1, secret=old)
    by_retired = identity.sign_token(1, secret=retired)
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", new)
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET_PREVIOUS", old)
    get_settings.cache_clear()
    try:
        by_new = identity.sign_token(2)
        assert identity.verify_token(by_new) == 2  # signed with the current key
        assert identity.verify_token(by_old) == 1  # still accepted during the rotation
        assert identity.verify_token(by_retired) is None  # rotated out
        legacy = identity.sign_token(3, secret=new).split(".")  # a token without kid: current key only
        payload = json.dumps({"cid": 3, "exp": NOW * 2}).encode()
        import hashlib
        import hmac as hmac_mod

        sig = hmac_mod.new(new.encode(), payload, hashlib.sha256).digest()
        b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
        assert legacy and identity.verify_token(f"{b64(payload)}.{b64(sig)}") == 3
        sig_old = hmac_mod.new(old.encode(), payload, hashlib.sha256).digest()
        assert identity.verify_token(f"{b64(payload)}.{b64(sig_old)}") is None
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_deleted_customer_token_refused(session):
    from bot.db import models as m

    token = identity.sign_token(2)
    assert identity.customer_from_token(session, token) == 2
    session.get(m.Customer, 2).status = "deleted"
    session.flush()
    assert identity.verify_token(token) == 2  # the signature alone is fine ...
    assert identity.customer_from_token(session, token) is None  # ... but the customer is gone
