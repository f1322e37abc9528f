"""bot.services.identity.resolve: the one place that decides who the customer is."""

import ast
import time
from pathlib import Path

from bot.services import identity
from bot.services import verification as v
from concierge_rasa.security import CLAIMS_KEY, sign_claims

ROOT = Path(__file__).resolve().parents[3]


def signed(**claims):  # noqa: ANN003, ANN201
    return {CLAIMS_KEY: sign_claims(claims, identity.keyring())}


def test_claims_of_a_checked_token_name_an_active_customer(session):
    meta = signed(cid=2, exp=time.time() + 60, session="s1", client="ip:a")
    found = identity.resolve(session, identity.IdentityRequest("conv-r1", meta))
    assert (found.customer_id, found.by, found.session_id, found.client) == (2, "token", "s1", "ip:a")
    expired = signed(cid=2, exp=time.time() - 1, session="s1")
    assert identity.resolve(session, identity.IdentityRequest("conv-r1", expired)).customer_id is None


def test_forged_claims_are_ignored_entirely(session):
    meta = signed(cid=2, exp=time.time() + 60, session="s1")
    meta[CLAIMS_KEY] = {**meta[CLAIMS_KEY], "cid": 3}
    found = identity.resolve(session, identity.IdentityRequest("conv-r2", meta))
    assert (found.customer_id, found.claims, found.session_id, found.client) == (None, {}, "", None)


def test_a_token_left_on_the_message_counts_and_wins_over_chat(session):
    v.bind_chat_verification(session, "conv-r3", "s3", 4)
    meta = {**signed(session="s3"), "customer_token": identity.sign_token(2)}
    assert identity.resolve(session, identity.IdentityRequest("conv-r3", meta)).customer_id == 2
    found = identity.resolve(session, identity.IdentityRequest("conv-r3", signed(session="s3")))
    assert (found.customer_id, found.by) == (4, "chat")


def test_chat_verification_needs_this_conversation_and_this_session(session):
    v.bind_chat_verification(session, "conv-r4", "s4", 4)
    assert identity.resolve(session, identity.IdentityRequest("conv-r4", signed(session="s5"))).customer_id is None
    assert identity.resolve(session, identity.IdentityRequest("other", signed(session="s4"))).customer_id is None
    assert identity.resolve(session, identity.IdentityRequest("conv-r4", {})).customer_id is None


def test_typed_in_session_only_counts_the_sessions_own_recent_messages():
    now = time.time()
    mine, theirs = signed(session="mine"), signed(session="theirs")
    messages = [
        identity.UserMessage("it's a@example.com", now - 10, theirs),
        identity.UserMessage("old: b@example.com", now - 10**6, mine),
        identity.UserMessage("B@Example.com", now - 5, {}),
    ]
    assert not identity.typed_in_session(messages, "a@example.com", "mine", now=now)
    assert not identity.typed_in_session(messages, "b@example.com", "mine", now=now)
    assert identity.typed_in_session([*messages, identity.UserMessage("a@example.com", now, mine)],
                                     "A@example.com", "mine", now=now)
    assert identity.typed_in_session(messages, "anything", "", now=now)  # no session: nothing to tell apart
    assert not identity.typed_in_session(messages, "", "mine", now=now)


def test_customer_of_message_judges_at_the_time_it_was_sent():
    sent = time.time() - 3600
    meta = signed(cid=5, exp=sent + 60)
    assert identity.customer_of_message(meta, None, sent) == 5
    assert identity.customer_of_message(meta, None, sent + 61) is None
    assert identity.customer_of_message({}, identity.sign_token(6, ttl_s=60, now=sent), sent) == 6


def test_the_service_is_the_single_entry_point():
    """No action checks claims, tokens or chat verifications itself, nor reads the tables behind them."""
    forbidden_modules = {"concierge_rasa.security", "bot.db.customers", "bot.db.security"}
    forbidden_names = {"verify_claims", "verify_token", "customer_from_token", "active_customer_id",
                       "chat_verified_customer", "keyring"}
    offenders = []
    for path in sorted((ROOT / "actions").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in forbidden_modules:
                offenders.append(f"{path.name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "bot.services.identity":
                offenders += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                              if a.name in forbidden_names]
            if isinstance(node, ast.Attribute) and node.attr in forbidden_names:
                offenders.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    assert offenders == []
