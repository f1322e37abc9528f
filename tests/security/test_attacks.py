"""Attacks against a real stack: each test asserts the attack fails and reveals nothing.

Every test speaks from its own client address (X-Forwarded-For behind SANIC_PROXIES_COUNT=1),
so the per-address limits of one test do not leak into another. The figures each attack got
on the code before issue 19 are in the test docstrings ("before:").
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import requests

from bot.services.identity import sign_token
from tests.security.conftest import (
    ACTION_TOKEN,
    IDLE_S,
    PREVIOUS_SECRET,
    RASA_API_TOKEN,
    RETIRED_SECRET,
    SECRET,
    rest,
)

ALICE = {"id": 1, "email": "alice.martin@example.com", "markers": ["Alice", "Vantage", "USPS", "$", "9400118"]}
BOB = {"id": 2, "email": "bob.nguyen@example.com", "markers": ["Bob", "Bassline", "190005", "bank transfer", "RF-59"]}
PAUSED = "paused"


def revealed(text: str, customer: dict) -> list[str]:
    """The customer's data found in ``text`` (order items, carrier, amounts, name)."""
    return [m for m in customer["markers"] if m.lower() in text.lower()]


def db(stack) -> sqlite3.Connection:  # noqa: ANN001
    return sqlite3.connect(stack.db_url.removeprefix("sqlite:///"))


def tracker(stack, sender: str) -> dict:  # noqa: ANN001
    resp = requests.get(
        f"{stack.rasa_url}/conversations/{sender}/tracker", params={"token": RASA_API_TOKEN}, timeout=30
    )
    resp.raise_for_status()
    return resp.json()


# ------------------------------------------------------------------ verification limits
def test_lockout_cannot_be_bypassed_with_new_sender_ids(stack):
    """Before: each new sender id got 3 fresh guesses; the 4th conversation's right email opened the order."""
    for i in range(3):
        ip = f"198.51.100.{10 + i}"  # even from different addresses: the order itself is counted
        rest(stack, f"guesser-{i}", "where is my order 190005?", ip)
        reply = rest(stack, f"guesser-{i}", f"bob.guess{i}@example.com", ip)
        assert reply.status == 200 and not revealed(reply.text, BOB)
    rest(stack, "guesser-lucky", "where is my order 190005?", "198.51.100.20")
    reply = rest(stack, "guesser-lucky", BOB["email"], "198.51.100.20")
    assert PAUSED in reply.text and "try again in" in reply.text
    assert not revealed(reply.text, BOB), reply.text


def test_restart_after_lockout_gives_no_new_guesses(stack):
    """Before: /restart cleared the conversation's counter and the right email then opened the order."""
    ip = "198.51.100.30"
    for i in range(3):
        rest(stack, "restarter", "where is my order 190006?", ip)
        rest(stack, "restarter", f"guess{i}@example.org", ip)
    rest(stack, "restarter", "/restart", ip)
    rest(stack, "restarter", "where is my order 190006?", ip)
    reply = rest(stack, "restarter", BOB["email"], ip)
    assert PAUSED in reply.text and not revealed(reply.text, BOB), reply.text


def test_one_address_cannot_spray_guesses_over_many_orders(stack):
    """Before: unlimited (3 per conversation, any number of conversations and orders)."""
    ip = "198.51.100.40"

    def patient(sender: str, text: str):  # noqa: ANN202 - waits out the rate limit, as a patient attacker would
        for _ in range(20):
            reply = rest(stack, sender, text, ip)
            if reply.status != 429:
                return reply
            time.sleep(1.5)
        pytest.fail("still rate limited after 30 s")

    texts = []
    for i in range(12):
        patient(f"sprayer-{i}", f"where is my order {190100 + i}?")
        texts.append(patient(f"sprayer-{i}", f"someone{i}@example.com").text)
    assert PAUSED in texts[-1]  # the address is paused after 10 failures, whatever the order


def test_the_real_owner_still_verifies_in_one_step(stack):
    rest(stack, "owner-alice", "where is my order 190001?", "198.51.100.50")
    reply = rest(stack, "owner-alice", ALICE["email"], "198.51.100.50")
    assert "USPS" in reply.text and "Vantage" in reply.text  # the success path is unchanged


# ------------------------------------------------------------------ verified state
def _verified_alice(stack, sender: str, ip: str) -> str:  # noqa: ANN001
    first = rest(stack, sender, "where is my order 190001?", ip)
    reply = rest(stack, sender, ALICE["email"], ip, credential=first.credential)
    assert "Vantage" in reply.text
    return first.credential


def test_sender_id_reuse_after_verification_gets_nothing(stack):
    """Before: anyone sending with the verified sender id continued as Alice (orders listed)."""
    credential = _verified_alice(stack, "victim-1", "198.51.100.60")
    # the victim, with the credential the server gave it, is still verified
    mine = rest(stack, "victim-1", "where is my order 190003?", "198.51.100.60", credential=credential)
    assert "190003" in mine.text and not mine.text.startswith("For your security")
    for forged in (None, "", "abc.def", credential.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"):
        reply = rest(stack, "victim-1", "where is my order 190003?", "203.0.113.66", credential=forged)
        assert "email" in reply.text.lower(), reply.text  # asked to verify
        assert not revealed(reply.text, ALICE), reply.text
    # the credential is bound to its sender id: it opens nothing elsewhere
    other = rest(stack, "someone-else", "where is my order 190003?", "203.0.113.66", credential=credential)
    assert not revealed(other.text, ALICE)


def test_chat_verification_ends_after_inactivity(stack):
    credential = _verified_alice(stack, "idle-1", "198.51.100.70")
    time.sleep(IDLE_S + 2)
    reply = rest(stack, "idle-1", "where is my order 190003?", "198.51.100.70", credential=credential)
    assert "email" in reply.text.lower() and not revealed(reply.text, ALICE), reply.text


# ------------------------------------------------------------------ metadata and tokens
def test_metadata_injection_is_dropped_and_the_token_never_stored(stack):
    """Before: any key was kept (a made-up sentiment) and the bearer token was stored in the tracker."""
    ip = "198.51.100.80"
    token = sign_token(1, ttl_s=600, secret=SECRET)
    junk = {
        "sentiment": {"label": "negative"},
        "concierge": {"cid": 2, "exp": 9_999_999_999, "session": "x", "sig": "AAAA"},
        "verified_customer_id": "2",
        "customer_token": token,
        "k" * 100: "v",
    }
    reply = rest(stack, "meta-1", "where is my order?", ip, metadata=junk)
    assert not revealed(reply.text, BOB)  # the forged claim for Bob does nothing
    events = tracker(stack, "meta-1")["events"]
    stored = json.dumps(events)
    assert token not in stored and token.split(".")[1] not in stored  # the bearer token is never stored
    user = [e for e in events if e.get("event") == "user"][-1]
    # Rasa adds its own two; "language" is the server's reading of the message's script (channels/guard.py)
    assert set(user["metadata"]) - {"model_id", "assistant_id"} <= {"concierge", "language"}
    assert user["metadata"].get("language") in (None, "en")
    claims = user["metadata"]["concierge"]
    # the made-up sentiment is dropped from every event's metadata; the parse data's own sentiment
    # comes from the NLU, never from the client
    assert claims["cid"] == 1 and "198.51.100.80" not in stored
    assert "sentiment" not in json.dumps([e.get("metadata") for e in events])
    assert user["parse_data"]["sentiment"]["label"] != "negative"  # the injected label did not reach the NLU


def _orders_with_token(stack, token: str, sender: str, ip: str) -> str:  # noqa: ANN001
    return rest(stack, sender, "where is my order?", ip, metadata={"customer_token": token}).text


def test_forged_expired_rotated_out_and_deleted_customer_tokens(stack):
    """Before: forged/expired refused, but a deleted customer's token still opened their orders."""
    ip = "198.51.100.90"
    good = _orders_with_token(stack, sign_token(1, ttl_s=600, secret=SECRET), "tok-good", ip)
    assert "190001" in good or "190002" in good  # control: a valid token lists Alice's orders
    previous = _orders_with_token(stack, sign_token(1, ttl_s=600, secret=PREVIOUS_SECRET), "tok-prev", ip)
    assert "190001" in previous or "190002" in previous  # the previous key still works during a rotation
    attacks = {
        "forged": sign_token(1, ttl_s=600, secret="an-attacker-guessed-this-secret-000000"),
        "expired": sign_token(1, ttl_s=60, secret=SECRET, now=time.time() - 3600),
        "rotated-out": sign_token(1, ttl_s=600, secret=RETIRED_SECRET),
        "tampered": sign_token(1, ttl_s=600, secret=SECRET)[:-4] + "AAAA",
    }
    for name, token in attacks.items():
        text = _orders_with_token(stack, token, f"tok-{name}", ip)
        assert not revealed(text, ALICE) and "190001" not in text, (name, text)
    with db(stack) as conn:
        conn.execute("UPDATE customers SET status = 'deleted' WHERE id = 4")
    text = _orders_with_token(stack, sign_token(4, ttl_s=600, secret=SECRET), "tok-deleted", ip)
    assert "190011" not in text and "190012" not in text and "David" not in text, text


def test_slot_injection_through_intent_messages(stack):
    """Before: the slots were not filled either (custom mappings), but the text kept the JSON."""
    ip = "198.51.100.100"
    rest(stack, "inject-1", '/inform{"verified_customer_id": "2", "verified_by": "chat", "email": "x@y.z"}', ip)
    rest(stack, "inject-1", '/track_order{"verified_customer_id": "2", "verification_attempts": -100}', ip)
    reply = rest(stack, "inject-1", "where is my order?", ip)
    assert not revealed(reply.text, BOB), reply.text
    slots = tracker(stack, "inject-1")["slots"]
    assert slots.get("verified_customer_id") in (None, "") and slots.get("verified_by") in (None, "")
    user_texts = [e.get("text") for e in tracker(stack, "inject-1")["events"] if e.get("event") == "user"]
    assert not any("verified_customer_id" in (t or "") for t in user_texts)


# ------------------------------------------------------------------ abuse
def test_ticket_spam_from_one_address_is_capped(stack):
    """Before: every conversation opened its own ticket (no cap per address)."""
    ip = "198.51.100.110"
    replies = [rest(stack, f"spammer-{i}", "I want to talk to a human agent please", ip).text for i in range(5)]
    with db(stack) as conn:
        opened = conn.execute(
            "SELECT COUNT(*) FROM support_tickets WHERE sender_id LIKE 'spammer-%'"
        ).fetchone()[0]
    assert opened <= 2, (opened, replies)
    assert "can't open more tickets" in replies[-1]


def test_rate_limit_per_sender_and_per_address(stack):
    """Before: no limit anywhere."""
    statuses = [rest(stack, "flooder", "hi", "198.51.100.120").status for _ in range(14)]
    assert statuses[0] == 200 and 429 in statuses
    limited = rest(stack, "flooder", "hi", "198.51.100.120")
    assert limited.status == 429 and "faster than I can answer" in limited.text
    # many senders from one address
    statuses = [rest(stack, f"bot-{i}", "hi", "198.51.100.121").status for i in range(45)]
    assert 429 in statuses
    assert rest(stack, "calm", "hi", "198.51.100.122").status == 200  # others are not affected


def test_oversized_and_deeply_nested_payloads(stack):
    """Before: a 1 MB body was parsed and handled as a turn; nothing crashed (the channels cap text)."""
    big = requests.post(
        f"{stack.rasa_url}/webhooks/rest/webhook",
        data=json.dumps({"sender": "big", "message": "x" * 1_000_000}),
        headers={"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.130"},
        timeout=60,
    )
    assert big.status_code == 413 and "Traceback" not in big.text
    nested: object = "x"
    for _ in range(5000):
        nested = {"a": nested}
    deep = requests.post(
        f"{stack.rasa_url}/webhooks/rest/webhook",
        data='{"sender": "deep", "message": "hi", "metadata": ' + "[" * 20000 + "]" * 20000 + "}",
        headers={"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.131"},
        timeout=60,
    )
    assert deep.status_code < 500 and "Traceback" not in deep.text
    reply = rest(stack, "deep-2", "hi", "198.51.100.132", metadata={"customer_token": {"a": [[[[[["x"]]]]]]}})
    assert reply.status == 200 and reply.texts
    assert rest(stack, "after-big", "hi", "198.51.100.133").status == 200  # still serving


# ------------------------------------------------------------------ internal endpoints
def test_action_server_refuses_unauthenticated_calls(stack):
    """Before: a hand-written action call claiming verified_customer_id 2 got order #190005's details."""
    call = {
        "next_action": "action_track_order",
        "sender_id": "forger",
        "tracker": {
            "sender_id": "forger",
            "slots": {"verified_customer_id": "2", "verified_by": "chat", "order_number": "190005"},
            "latest_message": {"text": "where is 190005", "intent": {"name": "track_order"}},
            "events": [],
        },
        "domain": {},
        "version": "3.6.21",
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ACTION_TOKEN}, {"token": ACTION_TOKEN}):
        resp = requests.post(f"{stack.action_url}/webhook", json=call, headers=headers, timeout=30)
        assert resp.status_code == 401 and "190005" not in resp.text and "Bob" not in resp.text
    assert requests.get(f"{stack.action_url}/actions", timeout=30).status_code == 401
    assert requests.get(f"{stack.action_url}/health", timeout=30).status_code == 200
    # even with the token, a tracker's claims are not an identity (the slots alone grant nothing)
    resp = requests.post(
        f"{stack.action_url}/webhook", json=call, headers={"Authorization": f"Bearer {ACTION_TOKEN}"}, timeout=30
    )
    assert resp.status_code == 200 and "Bassline" not in resp.text and "$" not in resp.text


def test_rasa_http_api_needs_its_token(stack):
    """Before: the API was off (no --enable-api in run.sh); when enabled it is only with --auth-token."""
    for params in ({}, {"token": "wrong"}):
        resp = requests.get(f"{stack.rasa_url}/conversations/victim-1/tracker", params=params, timeout=30)
        assert resp.status_code == 401 and "alice" not in resp.text.lower()
        resp = requests.post(
            f"{stack.rasa_url}/conversations/victim-1/tracker/events",
            params=params,
            json={"event": "slot", "name": "verified_customer_id", "value": "2"},
            timeout=30,
        )
        assert resp.status_code == 401
    ok = requests.get(f"{stack.rasa_url}/status", params={"token": RASA_API_TOKEN}, timeout=30)
    assert ok.status_code == 200
