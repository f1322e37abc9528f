"""What every action takes from the tracker: the sender, who the customer is, one transaction.

Why a module of its own: the actions' base classes (actions/common.py) hand a failed action to
actions/handoff.py, and the handoff needs these same helpers; kept here, below both, the imports
go one way (common -> handoff -> context) with no circle.

Identity is thin on purpose: this module only extracts what the action knows (sender id, the
latest message's metadata, earlier messages) and asks ``bot.services.identity`` once per action
run; the service alone checks claims, tokens and chat verifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from sqlalchemy.exc import OperationalError

from bot.db.session import session_scope
from bot.services import identity as identity_service
from bot.services.identity import CustomerIdentity, IdentityRequest, UserMessage

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: the identity resolved in the current action run, by tracker (None outside a run: no memo)
_resolved: contextvars.ContextVar[dict[int, tuple[Tracker, CustomerIdentity]] | None] = contextvars.ContextVar(
    "resolved_identity", default=None
)


#: tries of a transaction that SQLite refused at once with "database is locked"
SQLITE_LOCKED_TRIES = 4


def _sqlite_locked(exc: OperationalError) -> bool:
    return "database is locked" in str(getattr(exc, "orig", exc))


async def in_transaction(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs `fn(session, ...)` in one transaction on a worker thread (commit or roll back).

    On SQLite, a transaction that read and then writes while another process (the CRM ingestor)
    committed in between is refused at once ("database is locked": its snapshot is stale, and the
    busy timeout does not apply). It was rolled back whole, so it runs again on a fresh snapshot; a
    customer saw a technical error for a handover right after a tracking answer."""

    def work() -> T:
        for attempt in range(SQLITE_LOCKED_TRIES):
            try:
                with session_scope() as session:
                    return fn(session, *args, **kwargs)
            except OperationalError as exc:
                if not _sqlite_locked(exc) or attempt == SQLITE_LOCKED_TRIES - 1:
                    raise
                logger.warning("SQLite refused a transaction (database is locked); trying it again")
                time.sleep(0.02 * 2**attempt)
        raise AssertionError("unreachable")

    return await asyncio.to_thread(work)


def sender_id(tracker: Tracker) -> str:
    """Rasa's sender string, clipped to the column (``sender_id`` in every table)."""
    return str(tracker.sender_id or "unknown")[:128]


def latest_user_metadata(tracker: Tracker) -> dict[str, Any]:
    """Metadata sent with the latest user message (REST `metadata`, socket.io `customData`)."""
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            metadata = event.get("metadata") or {}
            return metadata if isinstance(metadata, dict) else {}
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    return metadata if isinstance(metadata, dict) else {}


def user_messages(tracker: Tracker) -> list[UserMessage]:
    """Every customer message of the conversation, oldest first (text, time, metadata)."""
    out = []
    for event in tracker.events or []:
        if event.get("event") != "user":
            continue
        metadata = event.get("metadata")
        out.append(
            UserMessage(
                text=str(event.get("text") or ""),
                timestamp=event.get("timestamp"),
                metadata=metadata if isinstance(metadata, dict) else {},
            )
        )
    return out


# ---------------------------------------------------------------- identity, once per action run
@contextlib.contextmanager
def action_run() -> Iterator[None]:
    """The scope of one action run: the identity service is asked once inside it."""
    token = _resolved.set({})
    try:
        yield
    finally:
        _resolved.reset(token)


def customer_identity(tracker: Tracker) -> CustomerIdentity:
    """Who is writing, from ``bot.services.identity.resolve`` (once per action run, then remembered)."""
    memo = _resolved.get()
    if memo is not None and id(tracker) in memo:
        return memo[id(tracker)][1]
    request = IdentityRequest(sender_id(tracker), latest_user_metadata(tracker))
    with session_scope() as session:
        found = identity_service.resolve(session, request)
    if memo is not None:
        memo[id(tracker)] = (tracker, found)
    return found


def forget_identity(tracker: Tracker) -> None:
    """The customer just proved who they are in chat: the next question asks the service again."""
    memo = _resolved.get()
    if memo is not None:
        memo.pop(id(tracker), None)


@dataclass
class Identity:
    """Who the customer is, and the slot events that record it."""

    customer_id: int | None
    by: str | None = None
    events: list[EventType] = field(default_factory=list)


def resolve_identity(tracker: Tracker) -> Identity:
    """The service's answer plus the slot events that mirror it.

    The slots only mirror the answer and never grant it: a token identity lasts while the website
    keeps sending a valid token for an active customer, and a chat verification lives in the
    database, bound to the conversation and to the session the channel issued to that client.
    """
    slot_id = tracker.get_slot("verified_customer_id")
    slot_by = tracker.get_slot("verified_by")
    found = customer_identity(tracker)
    if found.customer_id is not None:
        events: list[EventType] = []
        if slot_id != str(found.customer_id) or slot_by != found.by:
            events = [SlotSet("verified_customer_id", str(found.customer_id)), SlotSet("verified_by", found.by)]
        return Identity(found.customer_id, found.by, events)
    if slot_id or slot_by:
        return Identity(None, None, [SlotSet("verified_customer_id", None), SlotSet("verified_by", None)])
    return Identity(None)


def server_claims(tracker: Tracker) -> dict[str, Any]:
    """What the Concierge channel vouched for on the latest message (signed): the client's
    address key, the session id it issued to that client, the customer of a checked token.
    Empty when the message came some other way or the claims were not genuine."""
    return dict(customer_identity(tracker).claims)


def email_typed_in_this_session(tracker: Tracker, email: Any) -> bool:
    """True when the client of the latest message typed ``email`` itself (the service decides)."""
    return identity_service.typed_in_session(user_messages(tracker), email, customer_identity(tracker).session_id)
