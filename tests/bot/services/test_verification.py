"""Verification limits across conversations, chat verifications bound to a session, ticket caps."""

from datetime import timedelta

import pytest

from bot.db import models as m
from bot.db import tickets as tickets_repo
from bot.db.base import utcnow
from bot.services import identity
from bot.services import verification as v
from bot.settings import get_settings


@pytest.fixture
def limits(monkeypatch):
    for name, value in {
        "CONCIERGE_VERIFY_MAX_FAILURES": "3",
        "CONCIERGE_VERIFY_CLIENT_MAX_FAILURES": "10",
        "CONCIERGE_VERIFY_BACKOFF_S": "60",
        "CONCIERGE_VERIFY_BACKOFF_MAX_S": "3600",
        "CONCIERGE_SESSION_IDLE_S": "600",
        "CONCIERGE_TICKETS_PER_CONVERSATION": "2",
        "CONCIERGE_TICKETS_PER_CLIENT_DAY": "3",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_wait_doubles_after_free_attempts_and_holds_for_any_conversation(session, limits):
    now = utcnow()
    waits = [v.record_failure(session, "190001", None, now=now).seconds for _ in range(6)]
    assert waits == [0, 0, 60, 120, 240, 480]
    # nothing about conversations or senders: the order itself is paused
    assert v.verification_wait(session, "190001", "ip:other", now=now).seconds == 481
    assert v.verification_wait(session, "190001", None, now=now + timedelta(seconds=481)).allowed
    assert v.verification_wait(session, "190002", None, now=now).allowed  # other orders unaffected


def test_wait_is_capped_and_forgotten_after_the_window(session, limits):
    now = utcnow()
    for _ in range(20):
        wait = v.record_failure(session, "190003", None, now=now)
    assert wait.seconds == 3600
    later = now + timedelta(seconds=get_settings().verify_window_s + 1)
    assert v.record_failure(session, "190003", None, now=later).seconds == 0


def test_client_address_is_limited_across_order_numbers(session, limits):
    now = utcnow()
    for i in range(10):
        assert v.record_failure(session, f"19{i:04d}", "ip:abc", now=now).seconds == (60 if i == 9 else 0)
    assert v.verification_wait(session, "190020", "ip:abc", now=now).seconds > 0  # a fresh order, same client
    assert v.verification_wait(session, "190020", "ip:def", now=now).allowed


def test_success_resets_the_order_but_not_the_client(session, limits):
    now = utcnow()
    for _ in range(2):
        v.record_failure(session, "190001", "ip:abc", now=now)
    v.record_success(session, "190001")
    assert v.record_failure(session, "190001", "ip:abc", now=now).seconds == 0
    client = session.query(m.SecurityCounter).filter_by(kind=v.CLIENT, key="ip:abc").one()
    assert client.count == 3


def test_wait_message_is_polite_and_says_how_long():
    assert "a minute" in v.wait_message(45)
    assert "4 minutes" in v.wait_message(240)
    assert "2 hours" in v.wait_message(7200)
    assert "human" in v.wait_message(60)


def test_chat_verification_bound_to_session_and_idle_timeout(session, limits):
    now = utcnow()
    v.bind_chat_verification(session, "conv-1", "sid-a", 1, now=now)
    assert identity.chat_verified_customer(session, "conv-1", "sid-a", now=now) == 1
    assert identity.chat_verified_customer(session, "conv-1", "sid-b", now=now) is None  # another client
    assert identity.chat_verified_customer(session, "conv-1", "", now=now) is None
    assert identity.chat_verified_customer(session, "conv-2", "sid-a", now=now) is None  # another sender
    # activity keeps it alive, silence ends it
    assert identity.chat_verified_customer(session, "conv-1", "sid-a", now=now + timedelta(seconds=500)) == 1
    assert identity.chat_verified_customer(session, "conv-1", "sid-a", now=now + timedelta(seconds=1000)) == 1
    assert identity.chat_verified_customer(session, "conv-1", "sid-a", now=now + timedelta(seconds=1700)) is None
    assert identity.chat_verified_customer(session, "conv-1", "sid-a", now=now + timedelta(seconds=1701)) is None


def test_chat_verification_of_deleted_customer_and_end(session, limits):
    v.bind_chat_verification(session, "conv-3", "s", 2)
    session.get(m.Customer, 2).status = "deleted"
    session.flush()
    assert identity.chat_verified_customer(session, "conv-3", "s") is None
    v.bind_chat_verification(session, "conv-4", "s", 1)
    assert v.end_chat_verification(session, "conv-4") == 1
    assert identity.chat_verified_customer(session, "conv-4", "s") is None


def test_ticket_caps_per_conversation_and_client(session, limits):
    assert v.ticket_allowed(session, "t-conv", "ip:t")
    for _ in range(2):
        tickets_repo.create(session, sender_id="t-conv", category="support", subject="help")
        v.record_ticket(session, "ip:t")
    assert not v.ticket_allowed(session, "t-conv", "ip:t")  # conversation cap
    assert v.ticket_allowed(session, "t-conv-2", "ip:t")
    tickets_repo.create(session, sender_id="t-conv-2", category="support", subject="help")
    v.record_ticket(session, "ip:t")
    assert not v.ticket_allowed(session, "t-conv-3", "ip:t")  # client cap for the day
    assert v.ticket_allowed(session, "t-conv-3", "ip:u")
    assert v.ticket_allowed(session, "t-conv-3", "ip:t", now=utcnow() + timedelta(days=1, seconds=1))
