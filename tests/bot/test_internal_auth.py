"""The action server's gate (bot/internal_auth.py): token check and action-call shape."""

import json
import zlib

import pytest

from bot.internal_auth import action_call_problem, bearer_ok

TOKEN = "t" * 40


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


CALL = {"next_action": "action_track_order", "tracker": {"sender_id": "a", "slots": {}, "events": []}, "domain": {}}


def test_bearer_must_match_exactly():
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN)
    for bad in (None, "", TOKEN, f"Bearer {TOKEN}x", f"bearer {TOKEN}", f"Bearer {TOKEN[:-1]}", "Bearer ", 5):
        assert not bearer_ok(bad, TOKEN)
    assert not bearer_ok("Bearer ", "")


def test_well_formed_calls_pass_plain_and_deflated():
    body = json.dumps(CALL).encode()
    assert action_call_problem(body, None) is None
    assert action_call_problem(zlib.compress(body), "deflate") is None


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"not json", None, "not JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"\x00\xff", "deflate", "deflate"),
        (json.dumps({**CALL, "next_action": 5}).encode(), None, "next_action"),
        (json.dumps({**CALL, "tracker": []}).encode(), None, "tracker"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "events": {}}}).encode(), None, "events"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "events": [1]}}).encode(), None, "events"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "slots": []}}).encode(), None, "slots"),
        (json.dumps({**CALL, "domain": "x"}).encode(), None, "domain"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "latest_message": None}}).encode(), None, "latest_message"),
        (json.dumps({**CALL, "tracker": {"sender_id": "a", "slots": None}}).encode(), None, "slots"),
        (json.dumps({**CALL, "version": {}}).encode(), None, "version"),
        (b"[" * 5000 + b"]" * 5000, None, ""),
        (json.dumps({**CALL, "x": nested(70)}).encode(), None, "deeply"),
        (zlib.compress(b" " * (9 * 1024 * 1024)), "deflate", "too large"),
    ],
)
def test_malformed_calls_are_refused_with_a_reason(body, encoding, reason):
    problem = action_call_problem(body, encoding)
    assert problem is not None and reason in problem
