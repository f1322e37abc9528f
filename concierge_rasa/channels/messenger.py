"""Facebook Messenger channel (``/webhooks/facebook/webhook``): signed (constant-time) or 403.

Rasa's connector compares the signature with ``==`` and still answers 200 to a bad one; this one
checks ``X-Hub-Signature-256`` (or ``X-Hub-Signature``) in constant time, refuses replayed events
and sends off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional

from fbmessenger import MessengerClient
from fbmessenger.elements import Text as FBText
from fbmessenger.quick_replies import QuickReplies, QuickReply
from fbmessenger.sender_actions import SenderAction
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, MessengerBot
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from concierge_rasa.channels.guard import MAX_SENDER_CHARS, guarded
from concierge_rasa.channels.webhooks import (
    HTTP_TIMEOUT_S,
    ONLY_TEXT,
    ReplayGuard,
    button_title,
    disabled,
    json_or_none,
    rejected,
    secrets_match,
    setting,
    verify_facebook,
    webhook_blueprint,
)

logger = logging.getLogger(__name__)

FACEBOOK_API_URL = "https://graph.facebook.com"
FACEBOOK_API_VERSION = "v21.0"


class ConciergeMessengerClient(MessengerClient):
    """fbmessenger's client against the configured Graph API URL, with a timeout."""

    def __init__(
        self, page_access_token: str, api_url: str = FACEBOOK_API_URL, api_version: str = FACEBOOK_API_VERSION
    ) -> None:
        super().__init__(page_access_token)
        base = api_url.rstrip("/")
        self.graph_url = f"{base}/{api_version.strip('/')}" if api_version else base

    def send(
        self,
        payload: Any,
        recipient_id: str,
        messaging_type: str = "RESPONSE",
        notification_type: str = "REGULAR",
        timeout: Optional[float] = None,
        tag: Optional[str] = None,
    ) -> Any:
        return super().send(payload, recipient_id, messaging_type, notification_type, timeout or HTTP_TIMEOUT_S, tag)

    def send_action(self, sender_action: Any, recipient_id: str, timeout: Optional[float] = None) -> Any:
        return super().send_action(sender_action, recipient_id, timeout or HTTP_TIMEOUT_S)


class ConciergeMessengerBot(MessengerBot):
    """Messenger output off the event loop; up to 3 buttons as a button template, more as quick replies."""

    async def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = await asyncio.to_thread(fn, *args)
        except Exception as exc:  # noqa: BLE001 - logged; the conversation goes on
            logger.error("Facebook: sending failed: %s", exc)
            return
        if isinstance(result, dict) and result.get("error"):
            logger.error("Facebook: the Send API refused a message: %s", result["error"].get("message", "?"))

    async def _send(self, recipient_id: str, payload: dict[str, Any]) -> None:
        await self._call(self.messenger_client.send, payload, recipient_id, "RESPONSE")

    async def send_action(self, recipient_id: str, sender_action: str) -> None:
        await self._call(self.messenger_client.send_action, SenderAction(sender_action).to_dict(), recipient_id)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in text.strip().split("\n\n"):
            await self._send(recipient_id, FBText(text=part[:2000]).to_dict())

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._send(recipient_id, {"attachment": {"type": "image", "payload": {"url": image}}})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        if len(buttons) > 3:
            await self.send_quick_replies(recipient_id, text, buttons)
            return
        template = [
            {"type": "postback", "title": button_title(b, 20), "payload": str(b.get("payload", ""))[:1000]}
            for b in buttons
        ]
        await self._send(
            recipient_id,
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "button", "text": text[:640], "buttons": template},
                }
            },
        )

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        replies = QuickReplies(
            quick_replies=[
                QuickReply(title=button_title(q, 20), payload=str(q.get("payload", ""))[:1000])
                for q in quick_replies[:13]
            ]
        )
        await self._send(recipient_id, FBText(text=text[:2000], quick_replies=replies).to_dict())

    async def send_elements(self, recipient_id: str, elements: Iterable[dict[str, Any]], **kwargs: Any) -> None:
        elements = list(elements)
        for element in elements:
            self._add_postback_info(element.get("buttons", []))
        await self._send(
            recipient_id,
            {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": elements}}},
        )

    async def send_custom_json(self, recipient_id: str, json_message: Any, **kwargs: Any) -> None:
        if isinstance(json_message, dict):
            await self._send(recipient_id, json_message)


class ConciergeFacebookInput(FacebookInput):
    """Messenger webhook at /webhooks/facebook/webhook: signed (constant-time) or 403."""

    @classmethod
    def name(cls) -> str:
        return "facebook"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        channel = cls(
            setting(credentials, "verify", "FACEBOOK_VERIFY") or "",
            setting(credentials, "secret", "FACEBOOK_SECRET") or "",
            setting(credentials, "page-access-token", "FACEBOOK_PAGE_ACCESS_TOKEN") or "",
        )
        channel.api_url = setting(credentials, "api_url", "FACEBOOK_API_URL", FACEBOOK_API_URL) or FACEBOOK_API_URL
        channel.api_version = setting(credentials, "api_version", "FACEBOOK_API_VERSION", FACEBOOK_API_VERSION) or ""
        return channel

    api_url: str = FACEBOOK_API_URL
    api_version: str = FACEBOOK_API_VERSION

    def __init__(self, fb_verify: str, fb_secret: str, fb_access_token: str) -> None:
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.replays = ReplayGuard(24 * 3600)

    @property
    def enabled(self) -> bool:
        return bool(self.fb_secret and self.fb_access_token)

    def get_output_channel(self) -> OutputChannel:
        return ConciergeMessengerBot(ConciergeMessengerClient(self.fb_access_token, self.api_url, self.api_version))

    @staticmethod
    def validate_hub_signature(app_secret: str, request_payload: bytes, hub_signature_header: str) -> bool:
        """Rasa's check, in constant time (kept for callers of the stock API)."""
        algorithm, _, _ = (hub_signature_header or "").partition("=")
        if algorithm == "sha256":
            return verify_facebook(app_secret, request_payload, hub_signature_header, None)
        return verify_facebook(app_secret, request_payload, None, hub_signature_header)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handler = guarded(on_new_message)
        webhook = webhook_blueprint("concierge_fb_webhook", lambda: self.enabled)

        @webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            if not secrets_match(self.fb_verify, request.args.get("hub.verify_token")):
                return rejected(HTTPStatus.FORBIDDEN, "Invalid hub.verify_token.")
            return response.text(request.args.get("hub.challenge") or "")

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.enabled:
                return disabled(self.name())
            body = request.body or b""
            if not verify_facebook(
                self.fb_secret, body, request.headers.get("X-Hub-Signature-256"), request.headers.get("X-Hub-Signature")
            ):
                logger.warning("Facebook request rejected: bad or missing X-Hub-Signature")
                return rejected(HTTPStatus.FORBIDDEN, "Invalid X-Hub-Signature-256.")
            payload = json_or_none(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
                return rejected(HTTPStatus.BAD_REQUEST, "Expected a page webhook event.")
            events = [
                event
                for entry in payload["entry"]
                if isinstance(entry, dict) and isinstance(entry.get("messaging"), list)
                for event in entry["messaging"]
                if isinstance(event, dict)
            ]
            fresh = [event for event in events if self._first_time(event)]
            if events and not fresh:
                return rejected(HTTPStatus.CONFLICT, "These events were already received.")
            for event in fresh:
                await self._handle_event(event, handler)
            return response.text("success")

        return webhook

    def _first_time(self, event: Mapping[str, Any]) -> bool:
        key = _event_key(event)
        return key is None or self.replays.first_time(key)

    async def _handle_event(self, event: dict[str, Any], handler: Callable[[UserMessage], Awaitable[None]]) -> None:
        sender = (
            str((event.get("sender") or {}).get("id") or "").strip() if isinstance(event.get("sender"), dict) else ""
        )
        if not sender or len(sender) > MAX_SENDER_CHARS:
            return
        out = self.get_output_channel()
        message = event.get("message") if isinstance(event.get("message"), dict) else None
        postback = event.get("postback") if isinstance(event.get("postback"), dict) else None
        if message is not None and message.get("is_echo"):
            return  # the page's own message
        if (
            message is not None
            and isinstance(message.get("quick_reply"), dict)
            and message["quick_reply"].get("payload")
        ):
            text: Optional[str] = str(message["quick_reply"]["payload"])
        elif message is not None and isinstance(message.get("text"), str):
            text = message["text"]
        elif postback is not None and postback.get("payload") is not None:
            text = str(postback["payload"])
        elif message is not None:
            await out.send_text_message(sender, ONLY_TEXT)
            return
        else:
            return  # deliveries, reads and other notifications
        await out.send_action(sender, "mark_seen")
        await out.send_action(sender, "typing_on")
        try:
            await handler(UserMessage(text, out, sender, input_channel=self.name()))
        finally:
            await out.send_action(sender, "typing_off")


def _event_key(event: Mapping[str, Any]) -> Optional[str]:
    """A messaging event's identity: the message id, else sender and timestamp."""
    for part in ("message", "postback"):
        inner = event.get(part)
        if isinstance(inner, dict) and inner.get("mid"):
            return str(inner["mid"])
    sender = event.get("sender") if isinstance(event.get("sender"), dict) else {}
    if event.get("timestamp") and sender.get("id"):
        return f"{sender['id']}:{event['timestamp']}"
    return None
