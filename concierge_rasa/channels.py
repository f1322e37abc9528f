"""Hardened REST and socket.io input channels.

Why: the stock channels pass odd input straight through (a JSON list crashes the REST
webhook, a missing sender falls into a shared "default" conversation) and, when the action
server is down or a turn fails, the customer gets silence. These channels validate the
request, cap the text, and guarantee a polite reply on every turn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from aiohttp import ClientSession, ClientTimeout
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000
MAX_SENDER_CHARS = 128
MAX_METADATA_KEYS = 32
APOLOGY = (
    "Sorry, something went wrong on my side and I couldn't finish that. "
    'Please try again in a moment, or type "human" to reach our support team.'
)


def clean_text(text: Any) -> str:
    """Turns whatever arrived into bounded, printable text."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        text = str(text)
    text = "".join(
        ch
        for ch in text[: MAX_TEXT_CHARS * 2]
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn")
    )
    return text.strip()[:MAX_TEXT_CHARS]


def clean_metadata(metadata: Any) -> dict[str, Any]:
    """Keeps only a small dict with string keys; anything else becomes empty."""
    if not isinstance(metadata, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in list(metadata.items())[:MAX_METADATA_KEYS]:
        if isinstance(key, str) and len(key) <= 64:
            if isinstance(value, str):
                value = value[:4096]
            out[key] = value
    return out


UPSET_OFFER = (
    "I'm sorry this has been so frustrating. Would you like me to pass this conversation to a member "
    "of our team? Just say \"human\" and I'll hand it over."
)


def crm_url() -> Optional[str]:
    """Base URL of the action server's CRM routes (CONCIERGE_CRM_URL, else next to the actions)."""
    url = os.environ.get("CONCIERGE_CRM_URL")
    if not url:
        actions = os.environ.get("ACTION_ENDPOINT_URL", "")
        if not actions.endswith("/webhook"):
            return None
        url = actions[: -len("/webhook")] + "/concierge"
    return url.rstrip("/")


async def crm_post(path: str, payload: dict[str, Any], timeout: float = 2.0) -> Optional[dict[str, Any]]:
    """Best effort: the conversation goes on whatever happens to the CRM call."""
    base = crm_url()
    if not base:
        return None
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=timeout)) as session,
            session.post(f"{base}/{path}", json=payload) as resp,
        ):
            if resp.status != 200:
                return None
            data = await resp.json()
            return data if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001
        logger.debug("CRM call %s failed", path, exc_info=True)
        return None


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


_background: set = set()


def guarded(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[None]]:
    """Cleans the message, scores its sentiment through the CRM, and makes sure every turn
    ends with at least one reply (plus an offer of a human when the customer is upset)."""

    async def handler(message: UserMessage) -> None:
        message.text = clean_text(message.text)
        message.metadata = clean_metadata(message.metadata)
        mood = await crm_post(
            "user-message", {"sender": message.sender_id, "text": message.text, "metadata": message.metadata}
        )
        if mood and mood.get("sentiment"):
            message.metadata["sentiment"] = mood["sentiment"]  # visible to actions and the tracker
        counter = CountingOutputChannel(message.output_channel)
        message.output_channel = counter
        try:
            await on_new_message(message)
        except Exception:  # noqa: BLE001 - the customer must still get an answer
            logger.exception("Handling a message failed (sender %s)", message.sender_id)
        try:
            if counter.count == 0:
                await counter.send_text_message(message.sender_id, APOLOGY)
            if mood and mood.get("offer_human") and not any("human" in t.lower() for t in counter.texts):
                await counter.send_text_message(message.sender_id, UPSET_OFFER)
        except Exception:  # noqa: BLE001
            logger.exception("Could not send the closing message to %s", message.sender_id)
        if counter.texts:  # logged in the background: the customer does not wait for the CRM
            task = asyncio.ensure_future(
                crm_post("bot-messages", {"sender": message.sender_id, "texts": counter.texts})
            )
            _background.add(task)
            task.add_done_callback(_background.discard)

    return handler


class ConciergeRestInput(RestInput):
    """REST webhook at /webhooks/rest/webhook with request validation.

    Body: {"sender": str, "message": str, "metadata": {...}} -> list of bot messages.
    """

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        handler = guarded(on_new_message)
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                body = request.json
            except Exception:  # noqa: BLE001 - sanic raises on malformed JSON
                body = None
            if not isinstance(body, dict):
                return response.json({"error": "Expected a JSON object with 'sender' and 'message'."}, 400)
            sender = body.get("sender")
            if not isinstance(sender, (str, int)) or not str(sender).strip():
                return response.json({"error": "'sender' must be a non-empty string."}, 400)
            sender = str(sender).strip()
            if len(sender) > MAX_SENDER_CHARS:
                return response.json({"error": f"'sender' is longer than {MAX_SENDER_CHARS} characters."}, 400)
            message = body.get("message", "")
            if message is not None and not isinstance(message, (str, int, float)):
                return response.json({"error": "'message' must be a string."}, 400)
            collector = CollectingOutputChannel()
            await handler(
                UserMessage(
                    clean_text(message),
                    collector,
                    sender,
                    input_channel=self.name(),
                    metadata=clean_metadata(body.get("metadata")),
                )
            )
            return response.json(collector.messages)

        return webhook


class ConciergeSocketIOInput(SocketIOInput):
    """socket.io channel (for web chat widgets) with the same guarantees as the REST one."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return super().blueprint(guarded(on_new_message))


def get_channel_class(name: str) -> Optional[type[InputChannel]]:
    """Maps a short name to the channel class (used in tests and docs)."""
    return {"rest": ConciergeRestInput, "socketio": ConciergeSocketIOInput}.get(name)
