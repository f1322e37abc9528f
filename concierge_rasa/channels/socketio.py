"""socket.io input channel for web chat widgets (rasa-webchat), hardened like the REST one.

Why: Rasa 3.6's own socket.io channel never awaited ``enter_room`` (python-socketio >= 5.10), so no
reply reached a widget with ``session_persistence``; it also passed custom payloads to ``emit()`` as
keyword arguments. See :class:`ConciergeSocketIOInput`.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from rasa.core.channels.channel import OutputChannel, UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncRedisManager, AsyncServer

from concierge_rasa.channel_security import (
    channel_keyring,
    client_address,
    is_issued_socket_session,
    new_connection_session,
    new_socket_session,
    request_limits,
)
from concierge_rasa.channels.guard import (
    APOLOGY,
    MAX_SENDER_CHARS,
    clean_text,
    guarded,
    in_language,
    message_language,
)
from concierge_rasa.limits import POLITE_SLOW_DOWN
from concierge_rasa.settings import RasaSettings, get_rasa_settings

logger = logging.getLogger(__name__)

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


def client_manager(settings: RasaSettings) -> Optional[AsyncRedisManager]:
    """python-socketio's Redis manager when ``CONCIERGE_SOCKETIO_REDIS_URL`` is set, else None (in memory).

    Why: with several Rasa replicas the socket of a customer lives in one of them, while an agent's
    reply (Rasa's HTTP API, ``output_channel=latest``) may be handled by another; emits then go
    through Redis pub/sub to every replica, and the one holding the room's socket delivers it.
    """
    if not settings.socketio_redis_url:
        return None
    return AsyncRedisManager(settings.socketio_redis_url, channel=settings.socketio_redis_channel)


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
        manager = client_manager(get_rasa_settings())
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=[], client_manager=manager)
        webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio  # get_output_channel() needs it

        if manager is not None:

            @webhook.listener("after_server_start")
            async def subscribe(*_: Any) -> None:
                # python-socketio subscribes on the first local connection; a replica subscribes at start
                # instead, so an emit from another replica never races this replica's first socket
                if not sio.manager_initialized:
                    sio.manager_initialized = True
                    manager.initialize()

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
                await say(sid, in_language(POLITE_SLOW_DOWN, message_language(utterance.text, utterance.metadata)))
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
                metadata = data.get(self.metadata_key) if isinstance(data, dict) else None
                await say(sid, in_language(APOLOGY, message_language(data.get("message"), metadata)
                                           if isinstance(data, dict) else None))

        return webhook
