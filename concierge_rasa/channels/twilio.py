"""Twilio SMS and WhatsApp channel (``/webhooks/twilio/webhook``), verified by ``X-Twilio-Signature``.

Rasa's connector does not verify Twilio webhooks and answers a message without ``Body`` with a
500; this one checks the signature over the public URL, refuses replays, and renders buttons as
numbered options ("2" picks the second).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.http.http_client import TwilioHttpClient

from concierge_rasa.channels.guard import MAX_SENDER_CHARS, guarded
from concierge_rasa.channels.webhooks import (
    HTTP_TIMEOUT_S,
    ONLY_TEXT,
    OptionMemory,
    ReplayGuard,
    button_title,
    disabled,
    numeric_titles,
    rejected,
    setting,
    verify_twilio,
    webhook_blueprint,
)
from concierge_rasa.nlu.tokenizer import has_han

logger = logging.getLogger(__name__)

TWILIO_API_URL = "https://api.twilio.com"
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class BaseUrlHttpClient(TwilioHttpClient):
    """Sends the Twilio client's requests to another base URL (a regional proxy, a test server)."""

    def __init__(self, api_url: str, timeout: float = HTTP_TIMEOUT_S) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(api_url.rstrip("/"))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        if (parts.hostname or "").endswith("twilio.com"):
            url = urlunsplit(
                (self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, parts.fragment)
            )
        return super().request(method, url, *args, **kwargs)


class ConciergeTwilioOutput(TwilioOutput):
    """Twilio output: the configured API URL, sends off the event loop, buttons as numbered options."""

    def __init__(
        self,
        account_sid: Optional[str],
        auth_token: Optional[str],
        twilio_number: Optional[str],
        api_url: str = TWILIO_API_URL,
        options: Optional[OptionMemory] = None,
    ) -> None:
        super().__init__(account_sid, auth_token, twilio_number)
        self.http_client = BaseUrlHttpClient(api_url)
        self.options = options or OptionMemory()

    async def _send_message(self, message_data: dict[str, Any]) -> Any:
        try:
            return await asyncio.to_thread(self.messages.create, **message_data)
        except Exception as exc:  # noqa: BLE001 - logged; the webhook still answers Twilio
            logger.error("Twilio: sending failed: %s", exc)
            return None

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        """SMS and WhatsApp have no buttons: one message with numbered options; "2" picks the second."""
        titles = [button_title(b, 80) for b in buttons]
        self.options.remember(
            recipient_id, [(t, str(b.get("payload", ""))) for t, b in zip(titles, buttons, strict=True)]
        )
        chinese = has_han(text)  # the hint in the reply's language
        if numeric_titles(titles):  # e.g. a 1-5 rating: the titles are the answers
            if chinese:
                choices = f"{'、'.join(titles[:-1])}或{titles[-1]}" if len(titles) > 1 else titles[0]
                body = f"{text.strip()}\n（请回复{choices}。）"
            else:
                choices = f"{', '.join(titles[:-1])} or {titles[-1]}" if len(titles) > 1 else titles[0]
                body = f"{text.strip()}\n(Reply {choices}.)"
        else:
            lines = [f"{i}. {t}" for i, t in enumerate(titles, start=1)]
            hint = "（请回复序号。）" if chinese else "(Reply with a number.)"
            body = f"{text.strip()}\n" + "\n".join(lines) + "\n" + hint
        await self._send_message({"to": recipient_id, "from_": self.twilio_number, "body": body[:1600]})


class ConciergeTwilioInput(TwilioInput):
    """Twilio SMS/WhatsApp webhook at /webhooks/twilio/webhook, verified by X-Twilio-Signature."""

    @classmethod
    def name(cls) -> str:
        return "twilio"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(
            setting(credentials, "account_sid", "TWILIO_ACCOUNT_SID"),
            setting(credentials, "auth_token", "TWILIO_AUTH_TOKEN"),
            setting(credentials, "twilio_number", "TWILIO_NUMBER"),
            webhook_url=setting(credentials, "webhook_url", "TWILIO_WEBHOOK_URL"),
            api_url=setting(credentials, "api_url", "TWILIO_API_URL", TWILIO_API_URL) or TWILIO_API_URL,
        )

    def __init__(
        self,
        account_sid: Optional[str],
        auth_token: Optional[str],
        twilio_number: Optional[str],
        debug_mode: bool = False,
        *,
        webhook_url: Optional[str] = None,
        api_url: str = TWILIO_API_URL,
    ) -> None:
        super().__init__(account_sid, auth_token, twilio_number, debug_mode)
        self.webhook_url = webhook_url
        self.api_url = api_url
        self.options = OptionMemory()
        self.replays = ReplayGuard(24 * 3600)

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token)

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: the configured public one (behind a proxy the server sees
        another), else the one this server was called at."""
        if not self.webhook_url:
            return request.url
        if request.query_string and "?" not in self.webhook_url:
            return f"{self.webhook_url}?{request.query_string}"
        return self.webhook_url

    def output_for(self, to: Optional[str]) -> ConciergeTwilioOutput:
        """Replies come from the number the customer wrote to (``whatsapp:+…`` on WhatsApp)."""
        return ConciergeTwilioOutput(
            self.account_sid, self.auth_token, to or self.twilio_number, self.api_url, self.options
        )

    def get_output_channel(self) -> OutputChannel:
        return self.output_for(None)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handler = guarded(on_new_message)
        webhook = webhook_blueprint("concierge_twilio_webhook", lambda: self.enabled)

        @webhook.route("/webhook", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            if not self.enabled:
                return disabled(self.name())
            # Twilio signs every parameter, empty ones too (FromZip=...); Sanic's form drops those.
            is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
            params = (
                parse_qs((request.body or b"").decode("utf-8", "replace"), keep_blank_values=True) if is_form else {}
            )
            if not verify_twilio(
                self.auth_token or "", self.signed_url(request), params, request.headers.get("X-Twilio-Signature")
            ):
                logger.warning("Twilio request rejected: bad or missing X-Twilio-Signature")
                return rejected(HTTPStatus.FORBIDDEN, "Invalid X-Twilio-Signature.")
            form = {name: values[0] for name, values in params.items() if values}
            sid = form.get("MessageSid") or form.get("SmsMessageSid")
            if sid and not self.replays.first_time(sid):
                return rejected(HTTPStatus.CONFLICT, "This message was already received.")
            sender = form.get("From", "").strip()
            if not sender or len(sender) > MAX_SENDER_CHARS:
                return rejected(HTTPStatus.BAD_REQUEST, "'From' is missing.")
            out = self.output_for(form.get("To"))
            text = form.get("Body")
            if form.get("Latitude") and form.get("Longitude"):
                text = json.dumps({"lat": form["Latitude"], "lng": form["Longitude"]})
            if text is None:
                if form.get("MessageStatus") and not form.get("NumMedia"):
                    return twiml()  # a delivery status callback, nothing to answer
                await out.send_text_message(sender, ONLY_TEXT)
                return twiml()
            text = text.replace("¡", "@")  # some carriers turn @ into ¡
            text = self.options.pick(sender, text, consume=True) or text
            await handler(UserMessage(text, out, sender, input_channel=self.name()))
            return twiml()

        return webhook


def twiml() -> HTTPResponse:
    """An empty TwiML answer: the replies go out through the REST API."""
    return response.text(TWIML_EMPTY, content_type="text/xml")
