"""Hardened REST and socket.io input channels.

Why: the stock channels pass odd input straight through (a JSON list crashes the REST
webhook, a missing sender falls into a shared "default" conversation) and, when the action
server is down or a turn fails, the customer gets silence. These channels validate the
request, cap the text, and guarantee a polite reply on every turn.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
    decode_bearer_token,
)
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from concierge_rasa.channel_security import (
    SESSION_HEADER,
    allowed_metadata,
    channel_keyring,
    client_address,
    is_issued_socket_session,
    new_connection_session,
    new_socket_session,
    request_limits,
    rest_session,
    secure_metadata,
    strip_private_entities,
)
from concierge_rasa.limits import POLITE_SLOW_DOWN

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000
MAX_SENDER_CHARS = 128
MAX_METADATA_KEYS = 32
MAX_BODY_BYTES = 64 * 1024  # a REST message: 4,000 characters of text and a token fit many times over
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


async def conversation_paused(sender_id: str) -> bool:
    """Whether a person has taken the conversation over (Rasa's ConversationPaused): the bot's
    silence is then expected, the agent answers (README "Agent console")."""
    try:
        from sanic import Sanic

        apps = list(Sanic._app_registry.values())  # the Rasa server's app (one per process)
        agent = next((a.ctx.agent for a in apps if getattr(a.ctx, "agent", None) is not None), None)
        if agent is None or agent.tracker_store is None:
            return False
        tracker = await agent.tracker_store.retrieve(sender_id)
        return bool(tracker is not None and tracker.is_paused())
    except Exception:  # noqa: BLE001 - unknown: apologise rather than stay silent
        logger.exception("Could not read whether %s is paused", sender_id)
        return False


def guarded(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[None]]:
    """Cleans the message and makes sure every turn ends with at least one reply.

    Nothing here records the conversation: Rasa's event broker carries every event to the CRM
    ingestor (bot/crm), off the hot path (issue 17)."""

    async def handler(message: UserMessage, client: Optional[str] = None, session: Optional[str] = None) -> None:
        """``client`` and ``session``: the address and the session the channel issued (REST, socket.io);
        messaging webhooks pass neither (the platform vouches for the sender) and are limited per sender."""
        message.text = strip_private_entities(clean_text(message.text))
        channel = message.input_channel or "unknown"
        if session is None and request_limits().check(f"{channel}:{message.sender_id}", None):
            await message.output_channel.send_text_message(message.sender_id, POLITE_SLOW_DOWN)
            return
        message.metadata = secure_metadata(message.metadata, channel, message.sender_id, client, session)
        counter = CountingOutputChannel(message.output_channel)
        message.output_channel = counter
        try:
            await on_new_message(message)
        except Exception:  # noqa: BLE001 - the customer must still get an answer
            logger.exception("Handling a message failed (sender %s)", message.sender_id)
        try:
            if counter.count == 0 and not await conversation_paused(message.sender_id):
                await counter.send_text_message(message.sender_id, APOLOGY)
        except Exception:  # noqa: BLE001
            logger.exception("Could not send the closing message to %s", message.sender_id)

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
        channel_keyring()  # a missing or short identity secret stops the server here, not at the first message
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if len(request.body or b"") > MAX_BODY_BYTES:
                return response.json({"error": f"The request is larger than {MAX_BODY_BYTES // 1024} KB."}, 413)
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
            client = client_address(request)
            wait = request_limits().check(f"rest:{sender}", client)
            if wait:
                return response.json(
                    [{"recipient_id": sender, "text": POLITE_SLOW_DOWN}], 429, headers={"Retry-After": str(wait)}
                )
            # the session credential this server issued to the client (header, or "session" in the body)
            session_id, credential = rest_session(request.headers.get(SESSION_HEADER) or body.get("session"), sender)
            collector = CollectingOutputChannel()
            await handler(
                UserMessage(
                    clean_text(message),
                    collector,
                    sender,
                    input_channel=self.name(),
                    metadata=clean_metadata(body.get("metadata")),
                ),
                client=client,
                session=session_id,
            )
            headers = {SESSION_HEADER: credential, "Access-Control-Expose-Headers": SESSION_HEADER}
            return response.json(collector.messages, headers=headers)

        return webhook


SESSION_ID_RE = re.compile(rf"[A-Za-z0-9_.:@-]{{1,{MAX_SENDER_CHARS}}}")
MAX_METADATA_JSON_CHARS = 16_384
UNREADABLE = "Sorry, I couldn't read that message. Please type your question as plain text."


def socket_session_id(value: Any) -> Optional[str]:
    """The client's session id when it is usable as a conversation id (short, printable ASCII), else None.

    Why: the session id becomes the tracker's sender id and a socket.io room name, so it is bounded
    like the REST sender; anything else gets a fresh server-made id instead of an error.
    """
    if isinstance(value, str):
        value = value.strip()
        if SESSION_ID_RE.fullmatch(value):
            return value
    return None


def socket_metadata(value: Any) -> dict[str, Any]:
    """The widget's per-message data: an object, or a JSON object as text (Rasa accepts both); else empty."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_METADATA_JSON_CHARS:
            return {}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # invalid JSON or bytes that are not UTF-8
            return {}
    return value if isinstance(value, dict) else {}


@dataclass
class SocketUtterance:
    """A readable `user_uttered` event: cleaned text, the session it names (if valid) and its metadata."""

    text: str
    session_id: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_user_uttered(data: Any, metadata_key: str) -> Optional[SocketUtterance]:
    """Reads a `user_uttered` payload; None when it cannot be a message (not an object, or a non-text message).

    Accepts what the REST channel accepts (text, numbers, a missing message) plus UTF-8 bytes, since
    socket.io clients may send binary frames.
    """
    if not isinstance(data, dict):
        return None
    message = data.get("message")
    if message is not None and not isinstance(message, (str, bytes, int, float)):
        return None
    return SocketUtterance(
        clean_text(message), socket_session_id(data.get("session_id")), socket_metadata(data.get(metadata_key))
    )


async def _maybe_await(result: Any) -> None:
    """python-socketio made room calls coroutines in 5.10; older releases return None."""
    if inspect.isawaitable(result):
        await result


class ConciergeSocketIOOutput(SocketIOOutput):
    """Rasa's socket.io output (same `bot_uttered` payloads) that always emits to the conversation's room.

    Fixes two Rasa 3.6 defects: custom payloads were passed to ``emit`` as keyword arguments (any key
    but data/room/to raised, and a payload could pick its own room), and carousels went out one element
    per message with a bare dict where widgets expect the list.
    """

    def __init__(
        self, sio: AsyncServer, bot_message_evt: str, namespace: Optional[str] = None, room: Optional[str] = None
    ) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace
        self.room = room  # set: only this socket hears the replies (a client-chosen session id)

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=self.room or socket_id, namespace=self.namespace)

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        """Emits the payload itself; Rasa's ``{"data": ...}`` form emits what is under "data", as Rasa did."""
        payload: Any = dict(json_message) if isinstance(json_message, dict) else {"data": json_message}
        payload.pop("room", None)  # the recipient is the conversation, never a room named by the payload
        if set(payload) == {"data"}:
            payload = payload["data"]
        await self._send_message(recipient_id, payload)

    async def send_elements(self, recipient_id: str, elements: Iterable[dict[str, Any]], **kwargs: Any) -> None:
        """One generic template holding every element, the carousel shape chat widgets render."""
        items = list(elements)
        if items:
            template = {"template_type": "generic", "elements": items}
            await self._send_message(recipient_id, {"attachment": {"type": "template", "payload": template}})


class ConciergeSocketIOInput(SocketIOInput):
    """socket.io channel for web chat widgets (rasa-webchat) with the same guarantees as the REST one.

    Rasa's events and payloads: ``session_request {session_id}`` -> ``session_confirm "<session id>"``;
    ``user_uttered {message, session_id, <metadata_key>}`` -> ``bot_uttered {text | quick_replies |
    attachment | custom ...}``. Rasa 3.6's own blueprint calls ``sio.enter_room`` without ``await``, which
    python-socketio >= 5.10 never runs, so with ``session_persistence`` no reply reached the widget. Here
    each socket joins the room of its conversation (leaving the one it had), a reconnect with the same
    session id joins the same conversation, and unreadable events get a polite reply instead of silence.
    """

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def get_output_channel(self) -> Optional[OutputChannel]:
        if self.sio is None:
            return super().get_output_channel()  # Rasa's warning: no server in this process
        return ConciergeSocketIOOutput(self.sio, self.bot_message_evt, self.namespace)

    def authorised(self, auth: Any) -> bool:
        """Rasa's optional JWT check on connect (``jwt_key`` in credentials); open when no key is set."""
        if not self.jwt_key:
            return True
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            return False
        return bool(decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))

    async def join_session(self, sio: AsyncServer, sid: str, session_id: str) -> None:
        """Puts the socket in the room of ``session_id`` (awaited), leaving the room of its previous session."""
        async with sio.session(sid, namespace=self.namespace) as state:
            previous = state.get("session_id")
            if previous == session_id:
                return
            if previous and is_issued_socket_session(previous):
                await _maybe_await(sio.leave_room(sid, previous, namespace=self.namespace))
            # only ids this server issued name a shared room: whoever knows a chosen id must not hear its replies
            if is_issued_socket_session(session_id):
                await _maybe_await(sio.enter_room(sid, session_id, namespace=self.namespace))
            state["session_id"] = session_id

    async def connection_facts(self, sio: AsyncServer, sid: str) -> tuple[Optional[str], Optional[str]]:
        """(client address, per-connection session) recorded when the socket connected."""
        async with sio.session(sid, namespace=self.namespace) as state:
            return state.get("client"), state.get("connection_session")

    async def bound_session(self, sio: AsyncServer, sid: str) -> Optional[str]:
        """The session this socket asked for with ``session_request`` (None before it asked)."""
        async with sio.session(sid, namespace=self.namespace) as state:
            return state.get("session_id")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handler = guarded(on_new_message)
        channel_keyring()  # a missing or short identity secret stops the server here, not at the first message
        namespace = self.namespace
        # cors_allowed_origins=[] as in Rasa: engine.io adds no CORS headers of its own (`rasa run --cors` does).
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=[])
        webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio  # get_output_channel() needs it

        async def say(sid: str, text: str) -> None:
            try:
                await sio.emit(self.bot_message_evt, {"text": text}, room=sid, namespace=namespace)
            except Exception:  # noqa: BLE001 - the socket may be gone already
                logger.debug("Could not answer socket %s", sid, exc_info=True)

        async def receive(sid: str, data: Any) -> None:
            utterance = parse_user_uttered(data, self.metadata_key)
            if utterance is None:
                await say(sid, UNREADABLE)
                return
            if self.session_persistence:
                session_id = utterance.session_id or await self.bound_session(sio, sid)
                if session_id is None:  # the client never asked for a session: start one and tell it
                    session_id = new_socket_session()
                    await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)
                await self.join_session(sio, sid, session_id)  # the sender always hears the reply
            else:
                session_id = sid
            client, connection_session = await self.connection_facts(sio, sid)
            if request_limits().check(f"socketio:{session_id}", client):
                await say(sid, POLITE_SLOW_DOWN)
                return
            # a session id this server issued is the credential the widget keeps (verification survives a
            # reconnect); on a chosen id, or without persistence, verification lasts for this connection only
            issued = self.session_persistence and is_issued_socket_session(session_id)
            output = ConciergeSocketIOOutput(sio, self.bot_message_evt, namespace, room=None if issued else sid)
            await handler(
                UserMessage(utterance.text, output, session_id, input_channel=self.name(), metadata=utterance.metadata),
                client=client,
                session=session_id if issued else connection_session or new_connection_session(),
            )

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=namespace)
        async def connect(sid: str, environ: dict, auth: Any = None) -> bool:
            if not self.authorised(auth):
                return False
            # the address from the HTTP request (engine.io's sanic driver sets REMOTE_ADDR to 127.0.0.1)
            request = environ.get("sanic.request") if isinstance(environ, dict) else None
            async with sio.session(sid, namespace=namespace) as state:
                state["client"] = client_address(request)
                state["connection_session"] = new_connection_session()
            return True

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: str, *_: Any) -> None:  # python-socketio >= 5.12 adds a reason
            logger.debug("Socket %s disconnected", sid)

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: str, data: Any = None, *_: Any) -> None:
            try:
                requested = socket_session_id(data.get("session_id")) if isinstance(data, dict) else None
                session_id = requested or new_socket_session()
                if self.session_persistence:
                    await self.join_session(sio, sid, session_id)
                await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)
            except Exception:  # noqa: BLE001 - never a stack trace to the client; it may retry
                logger.exception("session_request from socket %s failed", sid)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def user_uttered(sid: str, data: Any = None, *_: Any) -> None:
            try:
                await receive(sid, data)
            except Exception:  # noqa: BLE001 - guarded() covers the turn; this covers the socket plumbing
                logger.exception("socket.io message from %s failed", sid)
                await say(sid, APOLOGY)

        return webhook


def get_channel_class(name: str) -> Optional[type[InputChannel]]:
    """Maps a short name to the channel class (used in tests and docs)."""
    return {"rest": ConciergeRestInput, "socketio": ConciergeSocketIOInput}.get(name)
