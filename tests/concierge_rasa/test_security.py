"""Token, claim and session-credential formats shared by the Rasa channels and the action server."""

import os
import stat

import pytest

from concierge_rasa import security as s

NOW = 1_800_000_000
A, B, C = "a" * 40, "b" * 40, "c" * 40


def test_tokens_with_kid_and_rotation():
    ring = s.Keyring.of(B, previous=A)
    by_a = s.sign_token(5, 60, A.encode(), now=NOW)
    by_b = s.sign_token(6, 60, B.encode(), now=NOW)
    by_c = s.sign_token(7, 60, C.encode(), now=NOW)
    assert s.verify_token(by_a, ring, now=NOW) == (5, NOW + 60)
    assert s.verify_token(by_b, ring, now=NOW) == (6, NOW + 60)
    assert s.verify_token(by_c, ring, now=NOW) is None  # rotated out / unknown key
    assert s.verify_token(by_b, ring, now=NOW + 60) is None  # expired
    assert s.verify_token(by_a, s.Keyring.of(B), now=NOW) is None  # previous key dropped
    assert A not in repr(ring) and B not in repr(ring)


@pytest.mark.parametrize("bad", [None, 1, "", ".", "a.b.c", "x" * 5000, "é.é", "eyJ9.AAAA", "W10.AAAA"])
def test_malformed_tokens(bad):
    assert s.verify_token(bad, s.Keyring.of(A), now=NOW) is None


def test_short_secret_refused_with_a_clear_message(tmp_path):
    with pytest.raises(s.SecretTooShort, match="at least 32"):
        s.keyring_from_env({"CONCIERGE_IDENTITY_SECRET": "short"})
    with pytest.raises(s.SecretTooShort, match="PREVIOUS"):
        s.keyring_from_env({"CONCIERGE_IDENTITY_SECRET": A, "CONCIERGE_IDENTITY_SECRET_PREVIOUS": "x"})
    ring = s.keyring_from_env({"CONCIERGE_VAR_DIR": str(tmp_path)})  # generated once, like the action server's
    assert stat.S_IMODE(os.stat(tmp_path / "identity.key").st_mode) == 0o600
    assert s.keyring_from_env({"CONCIERGE_VAR_DIR": str(tmp_path)}) == ring


def test_claims_signed_and_tamper_evident():
    ring = s.Keyring.of(A)
    claims = s.sign_claims({"client": "ip:1", "session": "abc", "cid": 1, "exp": NOW}, ring)
    assert s.verify_claims({s.CLAIMS_KEY: claims}, ring) == {"client": "ip:1", "session": "abc", "cid": 1,
                                                             "exp": NOW, "v": 1}
    forged = {**claims, "cid": 2}
    assert s.verify_claims({s.CLAIMS_KEY: forged}, ring) is None
    assert s.verify_claims({s.CLAIMS_KEY: claims}, s.Keyring.of(B)) is None
    for bad in (None, [], {}, {s.CLAIMS_KEY: "x"}, {s.CLAIMS_KEY: {"sig": 5}}, {s.CLAIMS_KEY: {"sig": "!!"}}):
        assert s.verify_claims(bad, ring) is None


def test_session_credentials_bound_to_sender_and_channel():
    ring = s.Keyring.of(A)
    sid, cred = s.issue_session(ring, "rest", "alice")
    assert s.check_session(cred, ring, "rest", "alice") == sid
    assert s.check_session(cred, ring, "rest", "mallory") is None
    assert s.check_session(cred, ring, "socketio", "alice") is None
    assert s.check_session(cred, s.Keyring.of(B), "rest", "alice") is None
    assert s.check_session(sid + ".AAAA", ring, "rest", "alice") is None
    for bad in (None, "", ".", "x" * 500, 5, "a.b.c"):
        assert s.check_session(bad, ring, "rest", "alice") is None
    assert s.issue_session(ring, "rest", "alice")[0] != sid


def test_client_key_hides_the_address():
    key = s.client_key("203.0.113.9")
    assert key.startswith("ip:") and "203" not in key
    assert key == s.client_key("203.0.113.9") != s.client_key("203.0.113.10")
    assert s.client_key(None) is None and s.client_key("") is None
