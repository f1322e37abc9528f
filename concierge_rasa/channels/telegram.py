"""Telegram Bot API channel (``/webhooks/telegram/webhook``), verified by its secret token.

Rasa's connector does not verify Telegram webhooks at all; this one registers the webhook with a
secret token at start-up (``setWebhook``) and refuses requests without it.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, Optional

from aiogram.bot.api import TelegramAPIServer, check_token
from aiogram.utils.exceptions import ValidationError
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from concierge_rasa.channels.guard import MAX_SENDER_CHARS, guarded
from concierge_rasa.channels.webhooks import (
    HTTP_TIMEOUT_S,
    ONLY_TEXT,
    OptionMemory,
    ReplayGuard,
    button_title,
    disabled,
    json_or_none,
    rejected,
    setting,
    telegram_secret,
    verify_telegram,
    webhook_blueprint,
)

logger = logging.getLogger(__name__)

TELEGRAM_API_URL = "https://api.telegram.org"


class ConciergeTelegramOutput(TelegramOutput):
    """Telegram output through the configured Bot API server. Payloads longer than Telegram's
    64-byte ``callback_data`` travel as ``#<set>.<number>`` and are mapped back on the click."""

    def __init__(
        self, access_token: str, api_url: str = TELEGRAM_API_URL, options: Optional[OptionMemory] = None
    ) -> None:
        super(TelegramOutput, self).__init__(  # aiogram's Bot, with the server it should call
            access_token, server=TelegramAPIServer.from_base(api_url), timeout=HTTP_TIMEOUT_S
        )
        self.options = options or OptionMemory()

    async def send_text_with_buttons(
        self,
        recipient_id: str,
        text: str,
        buttons: list[dict[str, Any]],
        button_type: Optional[str] = "inline",
        **kwargs: Any,
    ) -> None:
        payloads = [str(b.get("payload", "")) for b in buttons]
        short = buttons
        if any(len(p.encode("utf-8")) > 64 for p in payloads):
            tag = secrets.token_hex(4)  # names this set of buttons: an old keyboard's taps stay right
            self.options.remember(
                f"{recipient_id}:{tag}", [(button_title(b, 64), p) for b, p in zip(buttons, payloads, strict=True)]
            )
            short = [
                {**b, "payload": p if len(p.encode("utf-8")) <= 64 else f"#{tag}.{i}"}
                for i, (b, p) in enumerate(zip(buttons, payloads, strict=True), start=1)
            ]
        short = [{**b, "title": button_title(b, 64)} for b in short]
        await super().send_text_with_buttons(recipient_id, text, short, button_type, **kwargs)


class ConciergeTelegramInput(TelegramInput):
    """Telegram Bot API webhook at /webhooks/telegram/webhook, verified by its secret token."""

    @classmethod
    def name(cls) -> str:
        return "telegram"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        token = setting(credentials, "access_token", "TELEGRAM_TOKEN") or ""
        try:
            check_token(token or "0:unset")
        except ValidationError:
            logger.error("Telegram channel off: TELEGRAM_TOKEN is not a bot token (digits:letters)")
            token = ""
        return cls(
            token,
            setting(credentials, "verify", "TELEGRAM_BOT_NAME"),
            setting(credentials, "webhook_url", "TELEGRAM_WEBHOOK_URL"),
            secret_token=setting(credentials, "secret_token", "TELEGRAM_SECRET_TOKEN")
            or (telegram_secret(token) if token else ""),
            api_url=setting(credentials, "api_url", "TELEGRAM_API_URL", TELEGRAM_API_URL) or TELEGRAM_API_URL,
        )

    def __init__(
        self,
        access_token: Optional[str],
        verify: Optional[str],
        webhook_url: Optional[str],
        debug_mode: bool = False,
        *,
        secret_token: str = "",
        api_url: str = TELEGRAM_API_URL,
    ) -> None:
        super().__init__(access_token, verify, webhook_url, debug_mode)
        self.secret_token = secret_token
        self.api_url = api_url
        self.options = OptionMemory()
        self.replays = ReplayGuard(24 * 3600)  # Telegram retries an update for up to a day

    @property
    def enabled(self) -> bool:
        return bool(self.access_token and self.secret_token)

    def get_output_channel(self) -> ConciergeTelegramOutput:
        """Builds the client only; the webhook is registered once the server runs (see blueprint)."""
        return ConciergeTelegramOutput(self.access_token or "0:disabled", self.api_url, self.options)

    async def register_webhook(self, out: ConciergeTelegramOutput) -> bool:
        """``setWebhook`` with the secret token Telegram must send back, then ``getMe`` as a check."""
        if not self.webhook_url:
            logger.warning("Telegram: TELEGRAM_WEBHOOK_URL not set; register the webhook yourself (see README)")
            return False
        try:
            await out.request("setWebhook", {"url": self.webhook_url, "secret_token": self.secret_token})
            me = await out.get_me()
        except Exception as exc:  # noqa: BLE001 - the other channels keep working
            logger.error("Telegram: could not register the webhook: %s", exc)
            return False
        if self.verify and me.username != self.verify:
            logger.warning("Telegram: the token belongs to @%s, not @%s", me.username, self.verify)
        logger.info("Telegram webhook registered for @%s", me.username)
        return True

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handler = guarded(on_new_message)
        webhook = webhook_blueprint("concierge_telegram_webhook", lambda: self.enabled)
        out = self.get_output_channel()

        @webhook.listener("after_server_start")
        async def register(app: Any, loop: Any) -> None:
            if self.enabled:
                await self.register_webhook(out)

        @webhook.route("/webhook", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            if not self.enabled:
                return disabled(self.name())
            if not verify_telegram(self.secret_token, request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
                logger.warning("Telegram request rejected: bad or missing secret token")
                return rejected(HTTPStatus.FORBIDDEN, "Invalid X-Telegram-Bot-Api-Secret-Token.")
            update = json_or_none(request.body or b"")
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                return rejected(HTTPStatus.BAD_REQUEST, "Expected a Telegram Update object.")
            if not self.replays.first_time(str(update["update_id"])):
                return rejected(HTTPStatus.CONFLICT, "This update was already received.")
            text, chat_id = await self._read_update(update, out)
            if chat_id is None or len(chat_id) > MAX_SENDER_CHARS:
                return response.text("success")  # nothing a customer said (e.g. a member update)
            if text is None:
                await out.send_message(chat_id, ONLY_TEXT)
                return response.text("success")
            await handler(UserMessage(text, out, chat_id, input_channel=self.name()))
            return response.text("success")

        return webhook

    async def _read_update(
        self, update: dict[str, Any], out: ConciergeTelegramOutput
    ) -> tuple[Optional[str], Optional[str]]:
        """(text, chat id) of an update: a typed message, an edited one or a button click."""
        callback = update.get("callback_query")
        if isinstance(callback, dict):
            msg = callback.get("message") if isinstance(callback.get("message"), dict) else {}
            chat_id = _chat_id(msg)
            data = str(callback.get("data") or "")
            if data.startswith("#") and "." in data and chat_id is not None:
                tag, _, number = data[1:].partition(".")
                data = self.options.pick(f"{chat_id}:{tag}", number) or data
            try:  # stops the spinner on the customer's button
                await out.answer_callback_query(str(callback.get("id", "")))
            except Exception:  # noqa: BLE001
                logger.debug("answerCallbackQuery failed", exc_info=True)
            return data, chat_id
        msg = update.get("message") or update.get("edited_message")
        if not isinstance(msg, dict):
            return None, None
        chat_id = _chat_id(msg)
        if isinstance(msg.get("text"), str):
            text = msg["text"]
            return ("hi" if text.strip() == "/start" else text), chat_id
        location = msg.get("location")
        if isinstance(location, dict):
            return json.dumps({"lng": location.get("longitude"), "lat": location.get("latitude")}), chat_id
        return None, chat_id


def _chat_id(msg: Mapping[str, Any]) -> Optional[str]:
    chat = msg.get("chat")
    if isinstance(chat, dict) and isinstance(chat.get("id"), (int, str)) and str(chat["id"]).strip():
        return str(chat["id"])
    return None
