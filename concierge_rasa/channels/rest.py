"""REST input channel (``/webhooks/rest/webhook``) with request validation.

Why: Rasa's stock REST channel crashes on a JSON list and puts a missing sender into a shared
"default" conversation; this one answers 400/413/429 with a reason, issues the session credential
(``X-Concierge-Session``) and, through :func:`~concierge_rasa.channels.guard.guarded`, always replies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from concierge_rasa.channel_security import (
    SESSION_HEADER,
    channel_keyring,
    client_address,
    request_limits,
    rest_session,
)
from concierge_rasa.channels.guard import (
    MAX_SENDER_CHARS,
    clean_metadata,
    clean_text,
    guarded,
    in_language,
    message_language,
)
from concierge_rasa.limits import POLITE_SLOW_DOWN

MAX_BODY_BYTES = 64 * 1024  # a REST message: 4,000 characters of text and a token fit many times over


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
            # a string only: true/false/numbers used to become shared conversations ("True", "5")
            if not isinstance(sender, str) or not sender.strip():
                return response.json({"error": "'sender' must be a non-empty string."}, 400)
            sender = sender.strip()
            if len(sender) > MAX_SENDER_CHARS:
                return response.json({"error": f"'sender' is longer than {MAX_SENDER_CHARS} characters."}, 400)
            message = body.get("message", "")
            if message is not None and not isinstance(message, (str, int, float)):
                return response.json({"error": "'message' must be a string."}, 400)
            client = client_address(request)
            wait = request_limits().check(f"rest:{sender}", client)
            if wait:
                return response.json(
                    [{"recipient_id": sender,
                      "text": in_language(POLITE_SLOW_DOWN, message_language(message, body.get("metadata")))}],
                    429, headers={"Retry-After": str(wait)},
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
