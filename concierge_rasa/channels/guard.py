"""Every channel's guarantees for one turn: clean text, only the metadata the channels define
(replaced by signed server claims), a per-sender limit, and at least one reply.

Why: the stock channels pass odd input straight through and, when the action server is down or a
turn fails, the customer gets silence. Each channel of this package wraps Rasa's message handler
in :func:`guarded`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.events import UserUtteranceReverted, UserUttered

from concierge_rasa import text as text_cleaner
from concierge_rasa.channel_security import (
    allowed_metadata,
    request_limits,
    secure_metadata,
    strip_private_entities,
)
from concierge_rasa.channels.requests import pending_requests, running_agent, split_message
from concierge_rasa.limits import POLITE_SLOW_DOWN
from concierge_rasa.multi_request import REQUESTS_WAITING
from concierge_rasa.nlu.language import language_tag, written_language
from concierge_rasa.stores import fail_loudly
from concierge_rasa.threads import serve_on_one_blas_thread

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000
MAX_SENDER_CHARS = 128
APOLOGY = (
    "Sorry, something went wrong on my side and I couldn't finish that. "
    'Please try again in a moment, or type "human" to reach our support team.'
)
# Rasa's own commands answer nothing unless the domain has utter_restart / utter_back: a customer who
# types /restart or /session_start (a new session) started over, /back took their last message back.
STARTED_OVER = "Okay, let's start over. What can I do for you?"
WENT_BACK = "Okay, I've set your last message aside. What would you like to do?"
# the channels' own texts (no domain response can say them: Rasa did not answer) as a Chinese shop says them
_CHINESE = {
    APOLOGY: "抱歉，我这边出了点问题，刚才的事没办成。请稍后再试，或者输入“人工”联系客服。",
    STARTED_OVER: "好的，我们重新开始。请问有什么可以帮您？",
    WENT_BACK: "好的，刚才那条消息先不算。您想做什么呢？",
    POLITE_SLOW_DOWN: "您发得太快了，我有点跟不上。请等几秒再发。",
}


def message_language(text: Any = "", metadata: Any = None) -> Optional[str]:
    """The language of a message before Rasa reads it: the client's metadata, else the script."""
    named = language_tag(metadata.get("language")) if isinstance(metadata, dict) else None
    return named or (written_language(text) if isinstance(text, str) else None)


def in_language(text: str, language: Optional[str]) -> str:
    """One of the channels' own texts in the conversation's language (English when unknown)."""
    return _CHINESE.get(text, text) if language == "zh" else text


def clean_text(text: Any) -> str:
    """Turns whatever arrived into bounded, printable text (the shared cleaner, a message's length)."""
    return text_cleaner.clean_text(text, MAX_TEXT_CHARS)


def clean_metadata(metadata: Any) -> dict[str, Any]:
    """Only the keys the channels define (``customer_token``, ``language``) as bounded strings.

    Anything else a client sends (a made-up ``sentiment``, the server's own ``concierge`` claims,
    nested objects) is dropped: see concierge_rasa/channel_security.py."""
    return allowed_metadata(metadata)


class CountingOutputChannel(OutputChannel):
    """Forwards everything to the real channel and keeps the texts that were sent."""

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner
        self.count = 0
        self.texts: list = []

    @classmethod
    def name(cls) -> str:  # pragma: no cover - the inner channel's name matters
        return "counting"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.count += 1
        if message.get("text"):
            self.texts.append(str(message["text"]))
        await self.inner.send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


def agent_tracker_store() -> Optional[TrackerStore]:
    """The tracker store of this process's Rasa agent (None before a model is loaded)."""
    agent = running_agent()
    return None if agent is None else agent.tracker_store


async def conversation_paused(sender_id: str) -> bool:
    """Whether a person has taken the conversation over (Rasa's ConversationPaused): the bot's
    silence is then expected, the agent answers (README "The agent console")."""
    return await closing_message(sender_id, agent_tracker_store()) is None


def _after_last_user(events: list[Any]) -> list[Any]:
    last = max((i for i, e in enumerate(events) if isinstance(e, UserUttered)), default=None)
    return [] if last is None else events[last + 1 :]


async def closing_message(
    sender_id: str, trackers: Optional[TrackerStore], language: Optional[str] = None
) -> Optional[str]:
    """What a turn that produced no reply ends with: None when a person has taken the conversation
    over (silence expected), an acknowledgement when the customer's message was one of Rasa's own
    commands, else the apology; in the conversation's language (its slot, else ``language``).

    Read from what Rasa did, not from the text: ``/restart`` (any form Rasa parses, even while paused)
    and ``/session_start`` leave a latest session without the customer's message, since the new
    session starts after it; ``/back`` leaves a rewind after it. A normal turn always has its
    message in the latest session (an expired session starts before the message)."""
    if trackers is None:
        return in_language(APOLOGY, language)
    try:
        tracker = await trackers.retrieve(sender_id)  # the latest session only
    except Exception:  # noqa: BLE001 - unknown: apologise rather than stay silent
        logger.exception("Could not read the tracker of %s", sender_id)
        return in_language(APOLOGY, language)
    if tracker is None:
        return in_language(APOLOGY, language)
    if tracker.is_paused():
        return None
    language = language_tag(tracker.get_slot("language")) or language
    events = list(tracker.events)
    if not any(isinstance(e, UserUttered) for e in events):
        return in_language(STARTED_OVER, language)
    if any(isinstance(e, UserUtteranceReverted) for e in _after_last_user(events)):
        return in_language(WENT_BACK, language)
    return in_language(APOLOGY, language)


async def handle_requests(
    message: UserMessage,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    store_of: Callable[[], Optional[TrackerStore]],
) -> None:
    """Hands the message to Rasa; a message of two requests as two turns (``channels/requests.py``):
    the first now, the second once no form holds the conversation (now, or after a later turn). The
    second goes with the metadata of the message that frees the conversation (its own session and
    identity): only its text waits."""
    pending = pending_requests()
    parts = await split_message(message.text or "", running_agent())
    if parts is not None:
        message.text = parts[0]
        pending.put(message.sender_id, parts[1])
    own = {k: v for k, v in (message.metadata or {}).items() if k != REQUESTS_WAITING}
    # one look at the pending store a turn (a Redis GET with shared state): only this turn, under the
    # conversation's lock, adds or takes this sender's waiting request
    waits = parts is not None or pending.peek(message.sender_id)
    message.metadata = {**own, REQUESTS_WAITING: True} if waits else own
    await on_new_message(message)
    waiting = await pending.take_ready(message.sender_id, store_of()) if waits else None
    if waiting is not None:
        await on_new_message(UserMessage(waiting, message.output_channel, message.sender_id,
                                         input_channel=message.input_channel, metadata=dict(own)))


def guarded(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    trackers: Optional[Callable[[], Optional[TrackerStore]]] = None,
) -> Callable[[UserMessage], Awaitable[None]]:
    """Cleans the message and makes sure every turn ends with at least one reply.

    ``trackers`` gives the tracker store read after a silent turn (default: the Rasa agent's).
    Nothing here records the conversation: Rasa's event broker carries every event to the CRM
    ingestor (bot/crm), off the hot path (issue 17)."""
    store_of = trackers or agent_tracker_store

    async def handler(message: UserMessage, client: Optional[str] = None, session: Optional[str] = None) -> None:
        """``client`` and ``session``: the address and the session the channel issued (REST, socket.io);
        messaging webhooks pass neither (the platform vouches for the sender) and are limited per sender."""
        message.text = strip_private_entities(clean_text(message.text))
        channel = message.input_channel or "unknown"
        if session is None and request_limits().check(f"{channel}:{message.sender_id}", None):
            slow_down = in_language(POLITE_SLOW_DOWN, message_language(message.text, message.metadata))
            await message.output_channel.send_text_message(message.sender_id, slow_down)
            return
        message.metadata = secure_metadata(message.metadata, channel, message.sender_id, client, session)
        if "language" not in message.metadata:  # the client named none: the message's own script, if clear
            written = written_language(message.text or "")
            if written is not None:
                message.metadata["language"] = written
        counter = CountingOutputChannel(message.output_channel)
        message.output_channel = counter
        failed = False
        fail_loudly(store_of())  # a tracker store failure ends in the apology, not in a silent loss
        serve_on_one_blas_thread()  # small products of one message: a second BLAS thread costs more than it saves
        try:
            await handle_requests(message, on_new_message, store_of)
        except Exception:  # noqa: BLE001 - the customer must still get an answer
            failed = True
            logger.exception("Handling a message failed (sender %s)", message.sender_id)
        try:
            language = message_language(message.text, message.metadata)
            if failed:  # whatever was said before it broke, the turn is not stored: the customer must know
                await counter.send_text_message(message.sender_id, in_language(APOLOGY, language))
            elif counter.count == 0:
                closing = await closing_message(message.sender_id, store_of(), language)
                if closing is not None:
                    await counter.send_text_message(message.sender_id, closing)
        except Exception:  # noqa: BLE001
            logger.exception("Could not send the closing message to %s", message.sender_id)

    return handler
