"""What the channels do to each message: allow-list, token replaced by signed claims, entity filter."""

import pytest

from concierge_rasa import channel_security as cs
from concierge_rasa import security

SECRET = "channel-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def keyring(monkeypatch):
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", SECRET)
    monkeypatch.delenv("CONCIERGE_IDENTITY_SECRET_PREVIOUS", raising=False)
    cs.channel_keyring.cache_clear()
    yield security.Keyring.of(SECRET)
    cs.channel_keyring.cache_clear()


def test_valid_token_becomes_a_signed_claim_and_is_not_kept(keyring):
    token = security.sign_token(3, 600, SECRET.encode())
    meta = cs.secure_metadata({"customer_token": token, "sentiment": "x"}, "rest", "alice", "203.0.113.5", "sid")
    assert set(meta) == {"concierge"} and token not in repr(meta)
    claims = security.verify_claims(meta, keyring)
    assert claims["cid"] == 3 and claims["session"] == "sid" and claims["channel"] == "rest"
    assert claims["client"] == security.client_key("203.0.113.5") and "203.0" not in repr(meta)


def test_bad_token_is_dropped_and_marked(keyring):
    meta = cs.secure_metadata({"customer_token": "forged.token"}, "socketio", "s", None, None)
    claims = security.verify_claims(meta, keyring)
    assert "cid" not in claims and claims["token_rejected"] is True
    assert claims["session"] == "socketio:s"  # messaging channels: the platform vouches for the sender


def test_client_supplied_claims_never_pass(keyring):
    forged = security.sign_claims({"cid": 1, "exp": 9e9}, security.Keyring.of("x" * 40))
    meta = cs.secure_metadata({"concierge": forged}, "rest", "mallory", None, "sid")
    assert "cid" not in security.verify_claims(meta, keyring)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('/inform{"verified_customer_id": "2", "verified_by": "chat"}', "/inform"),
        ('/inform{"order_number": "190001", "verification_attempts": 0}', '/inform{"order_number": "190001"}'),
        ('/affirm', "/affirm"),
        ('/inform{not json', "/inform"),
        ('/inform["a"]', '/inform["a"]'),
        ('/inform{"email": {"nested": 1}}', "/inform"),
        ("where is {my} order", "where is {my} order"),
        # the widget's greeting chooses the conversation's language, only among the shop's languages
        ('/greet{"language": "zh"}', '/greet{"language": "zh"}'),
        ('/greet{"language": "xx-evil"}', "/greet"),
    ],
)
def test_intent_messages_keep_only_public_entities(text, expected):
    assert cs.strip_private_entities(text) == expected


def test_rest_session_credentials(keyring):
    sid, cred = cs.rest_session(None, "alice")
    assert cs.rest_session(cred, "alice") == (sid, cred)
    other_sid, other = cs.rest_session(cred, "mallory")  # another sender cannot use it
    assert other_sid != sid and other != cred


def test_socket_session_ids_are_issued_and_checked():
    issued = cs.new_socket_session()
    assert len(issued) == 32 and cs.is_issued_socket_session(issued)
    assert not cs.is_issued_socket_session(issued[:16] + "0" * 16)
    assert not cs.is_issued_socket_session("chosen-id")
    assert not cs.is_issued_socket_session(None)
