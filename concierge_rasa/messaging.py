"""Slack, Telegram, Twilio (SMS and WhatsApp) and Facebook Messenger channels.

Why: Rasa 3.6's connectors trust more than they should. Twilio and Telegram webhooks are not
verified at all, Facebook's signature is compared with ``==`` and a bad one still gets HTTP 200,
Slack's accepts the same signed request again within five minutes, and a Twilio message without
``Body`` crashes with a 500. Each platform's API URL is also hard-coded in the client the
connector builds. These subclasses keep Rasa's URLs (``/webhooks/<name>/webhook``), payload
parsing and reply rendering, and add:

* verification of every inbound webhook, rejected with a 4xx before anything reaches the
  conversation: Slack's signing secret with a replay window and a replay cache, Telegram's
  ``X-Telegram-Bot-Api-Secret-Token`` (registered with ``setWebhook`` at start-up), Twilio's
  ``X-Twilio-Signature`` over the public URL the platform calls, Facebook's
  ``X-Hub-Signature-256`` (or ``X-Hub-Signature``) compared in constant time;
* a configurable API base URL per platform (credentials option or environment variable, the real
  platform by default);
* the guarantees of the REST channel (clean text, a polite reply when a turn fails) through
  :func:`concierge_rasa.channels.guarded`;
* a channel whose secrets are missing is switched off (its webhook answers 503) instead of
  stopping the server, so ``credentials.yml`` can list all four channels.

Identity: nothing here turns a platform user id into a customer. The channel id only names the
conversation; customers prove who they are in chat (order number and email), and no platform
payload can carry a website ``customer_token``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

from aiogram.bot.api import TelegramAPIServer, check_token
from aiogram.utils.exceptions import ValidationError
from fbmessenger import MessengerClient
from fbmessenger.elements import Text as FBText
from fbmessenger.quick_replies import QuickReplies, QuickReply
from fbmessenger.sender_actions import SenderAction
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, MessengerBot
from rasa.core.channels.slack import SlackBot, SlackInput
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient
from twilio.http.http_client import TwilioHttpClient

from concierge_rasa.channels import MAX_SENDER_CHARS, clean_text, guarded

logger = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
TELEGRAM_API_URL = "https://api.telegram.org"
TWILIO_API_URL = "https://api.twilio.com"
FACEBOOK_API_URL = "https://graph.facebook.com"
FACEBOOK_API_VERSION = "v21.0"
DEFAULT_REPLAY_WINDOW_S = 300
HTTP_TIMEOUT_S = 10.0
ONLY_TEXT = "Sorry, I can only read text messages here. Please type your question."
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# ------------------------------------------------------------------ configuration
def setting(
    credentials: Optional[Mapping[str, Any]], key: str, env: str, default: Optional[str] = None
) -> Optional[str]:
    """A channel option: credentials.yml first, then the environment variable, then the default.

    Empty values count as unset, so ``make run`` without any platform keys starts fine.
    """
    value = (credentials or {}).get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        value = os.environ.get(env, "")
    value = str(value).strip() if value is not None else ""
    return value or default


def _int_setting(credentials: Optional[Mapping[str, Any]], key: str, env: str, default: int) -> int:
    raw = setting(credentials, key, env)
    try:
        return max(1, int(raw)) if raw else default
    except ValueError:
        logger.warning("%s is not a number; using %s", env, default)
        return default


def disabled(name: str) -> HTTPResponse:
    """What a webhook of a channel without its secrets answers."""
    return response.json(
        {"error": f"The {name} channel is not configured on this server."}, HTTPStatus.SERVICE_UNAVAILABLE
    )


def rejected(status: int, reason: str) -> HTTPResponse:
    return response.json({"error": reason}, status)


# ------------------------------------------------------------------ verification (pure functions)
def json_or_none(raw: str | bytes) -> Any:  # noqa: ANN401
    """The decoded JSON, or None where the body is not JSON (each webhook says what it expected)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: HMAC-SHA256 of ``v0:<timestamp>:<raw body>``."""
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + timestamp.encode("utf-8") + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def verify_slack(
    secret: str, timestamp: Optional[str], signature: Optional[str], body: bytes, *, now: float, window_s: int
) -> bool:
    """True when the signature matches and the timestamp is within ``window_s`` of ``now``."""
    if not secret or not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > window_s:
        return False
    return hmac.compare_digest(slack_signature(secret, timestamp, body), signature)


def hub_signature(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """Facebook's ``X-Hub-Signature-256`` (or sha1 ``X-Hub-Signature``) value for a body."""
    return f"{algorithm}=" + hmac.new(secret.encode("utf-8"), body, getattr(hashlib, algorithm)).hexdigest()


def verify_facebook(secret: str, body: bytes, sig256: Optional[str], sig1: Optional[str]) -> bool:
    """Constant-time check of the SHA-256 signature, or of the SHA-1 one when only that came."""
    if not secret:
        return False
    if sig256:
        return hmac.compare_digest(hub_signature(secret, body, "sha256"), sig256.strip())
    if sig1:
        return hmac.compare_digest(hub_signature(secret, body, "sha1"), sig1.strip())
    return False


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Iterable[str]]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted POST params."""
    data = url
    for name in sorted(params):
        for value in sorted(params[name]):
            data += name + value
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _with_and_without_port(url: str) -> list[str]:
    """Twilio signs the URL as it called it, sometimes with the default port, sometimes without."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        return [url, urlunsplit(parts._replace(netloc=host))]
    port = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{host}:{port}"))]


def verify_twilio(auth_token: str, url: str, params: Mapping[str, Iterable[str]], signature: Optional[str]) -> bool:
    if not auth_token or not signature:
        return False
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, params), signature.strip())
        for candidate in _with_and_without_port(url)
    )


def telegram_secret(access_token: str) -> str:
    """The webhook secret when none is configured: derived from the bot token, which only the
    owner of the bot knows (Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and -)."""
    return hmac.new(access_token.encode("utf-8"), b"concierge-telegram-webhook", hashlib.sha256).hexdigest()


def verify_telegram(expected: str, got: Optional[str]) -> bool:
    return bool(expected) and bool(got) and hmac.compare_digest(expected.encode("utf-8"), got.encode("utf-8"))


class ReplayGuard:
    """Remembers recently accepted request keys (a signature, a message id) for ``ttl_s``.

    In memory, per Rasa process: a platform retry or an attacker's replay of a request this
    process already handled is refused.
    """

    def __init__(self, ttl_s: float, max_keys: int = 20_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str, now: Optional[float] = None) -> bool:
        """True (and remembered) the first time ``key`` is seen within the time to live."""
        now = time.monotonic() if now is None else now
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl_s
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return True


class OptionMemory:
    """The buttons last offered, so a numbered reply ("2") on SMS or a short Telegram callback id
    maps back to the button's payload. Bounded, in memory, forgotten after ``ttl_s``."""

    def __init__(self, max_keys: int = 10_000, ttl_s: float = 3600.0) -> None:
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self._options: OrderedDict[str, tuple[float, list[tuple[str, str]]]] = OrderedDict()

    def remember(self, key: str, buttons: list[tuple[str, str]]) -> None:
        """``buttons``: (title, payload) pairs in the order they were shown."""
        self._options.pop(key, None)
        self._options[key] = (time.monotonic() + self.ttl_s, list(buttons))
        while len(self._options) > self.max_keys:
            self._options.popitem(last=False)

    def pick(self, key: str, reply: str, *, consume: bool = False) -> Optional[str]:
        """The payload the reply chose: a button's exact title, else its 1-based number (unless
        the titles are numbers themselves, like a 1-5 rating). ``consume`` forgets the options:
        on SMS they answer only the very next message."""
        entry = self._options.pop(key, None) if consume else self._options.get(key)
        if not entry or entry[0] < time.monotonic():
            return None
        wanted = reply.strip().casefold()
        for title, payload in entry[1]:
            if title.strip().casefold() == wanted:
                return payload
        choice = wanted.rstrip(".)")
        if not choice.isdigit() or numeric_titles([t for t, _ in entry[1]]):
            return None
        index = int(choice) - 1
        return entry[1][index][1] if 0 <= index < len(entry[1]) else None


def numeric_titles(titles: Iterable[str]) -> bool:
    """True when every title is a number (then numbering the options would be ambiguous)."""
    titles = list(titles)
    return bool(titles) and all(t.strip().isdigit() for t in titles)


def _title(button: Mapping[str, Any], limit: int) -> str:
    title = clean_text(button.get("title")) or clean_text(button.get("payload")) or "?"
    return title if len(title) <= limit else title[: limit - 1] + "…"


# ------------------------------------------------------------------ Slack
class ConciergeSlackBot(SlackBot):
    """Slack output through the configured Web API base URL."""

    def __init__(
        self,
        token: str,
        slack_channel: Optional[str] = None,
        thread_id: Optional[str] = None,
        proxy: Optional[str] = None,
        api_url: str = SLACK_API_URL,
    ) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        base = api_url if api_url.endswith("/") else api_url + "/"
        self.client = AsyncWebClient(token, base_url=base, proxy=proxy, timeout=int(HTTP_TIMEOUT_S))

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        """Slack's button text holds 75 characters at most; longer titles are cut."""
        buttons = [{**b, "title": _title(b, 75)} for b in buttons]
        await super().send_text_with_buttons(recipient_id, text, buttons, **kwargs)


class ConciergeSlackInput(SlackInput):
    """Slack Events API at /webhooks/slack/webhook: signed requests only, each accepted once."""

    @classmethod
    def name(cls) -> str:
        return "slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        channel = cls(
            setting(credentials, "slack_token", "SLACK_BOT_TOKEN") or "",
            setting(credentials, "slack_channel", "SLACK_CHANNEL"),
            credentials.get("proxy"),
            credentials.get("slack_retry_reason_header", "x-slack-retry-reason"),
            credentials.get("slack_retry_number_header", "x-slack-retry-num"),
            credentials.get("errors_ignore_retry"),
            bool(credentials.get("use_threads", False)),
            setting(credentials, "slack_signing_secret", "SLACK_SIGNING_SECRET") or "",
            credentials.get("conversation_granularity", "sender"),
        )
        channel.api_url = setting(credentials, "api_url", "SLACK_API_URL", SLACK_API_URL) or SLACK_API_URL
        channel.replay_window_s = _int_setting(
            credentials, "replay_window_s", "SLACK_REPLAY_WINDOW_S", DEFAULT_REPLAY_WINDOW_S
        )
        channel.replays = ReplayGuard(2 * channel.replay_window_s)
        return channel

    api_url: str = SLACK_API_URL
    replay_window_s: int = DEFAULT_REPLAY_WINDOW_S

    @property
    def enabled(self) -> bool:
        return bool(self.slack_token and self.slack_signing_secret)

    def _validate_credentials(self) -> None:
        """Rasa raises without a signing secret; here the channel is off instead (webhook 503)."""
        self.replays = ReplayGuard(2 * DEFAULT_REPLAY_WINDOW_S)
        self.events = ReplayGuard(3600)  # Slack retries an event within the hour
        if not (self.slack_token and self.slack_signing_secret):
            logger.info("Slack channel off: SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are not both set.")

    def check(self, request: Request) -> Optional[HTTPResponse]:
        """None when the request is authentic and new; otherwise the 4xx/503 to answer."""
        if not self.enabled:
            return disabled(self.name())
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if not verify_slack(
            self.slack_signing_secret,
            timestamp,
            signature,
            request.body or b"",
            now=time.time(),
            window_s=self.replay_window_s,
        ):
            logger.warning("Slack request rejected: bad, missing or expired signature")
            return rejected(HTTPStatus.UNAUTHORIZED, "Invalid or expired X-Slack-Signature.")
        if not self.replays.first_time(f"{timestamp}:{signature}"):
            logger.warning("Slack request rejected: replayed signature")
            return rejected(HTTPStatus.CONFLICT, "This request was already received.")
        return None

    def is_request_from_slack_authentic(self, request: Request) -> bool:
        """Rasa's route asks this after :meth:`check` ran in the blueprint's middleware."""
        return bool(getattr(request.ctx, "concierge_verified", False))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(guarded(on_new_message))

        @webhook.middleware("request")
        async def verify(request: Request) -> Optional[HTTPResponse]:
            if not request.path.rstrip("/").endswith("/webhook"):
                return None
            problem = self.check(request)
            if problem is not None:
                return problem
            request.ctx.concierge_verified = True
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                body = json_or_none(request.body or b"")
                if not isinstance(body, dict):
                    return rejected(HTTPStatus.BAD_REQUEST, "Expected a JSON object.")
                if body.get("type") == "url_verification":  # Slack's one-off check of the URL
                    return response.json({"challenge": str(body.get("challenge", ""))})
                event_id = body.get("event_id")
                if isinstance(event_id, str) and event_id and not self.events.first_time(event_id):
                    # Slack's own retry of an event already handled (new signature, same event): OK, once.
                    return response.text("duplicate event ignored", headers={"X-Slack-No-Retry": "1"})
            elif content_type.startswith("application/x-www-form-urlencoded"):
                payload = json_or_none((request.form or {}).get("payload") or "")
                if not isinstance(payload, dict):
                    return rejected(HTTPStatus.BAD_REQUEST, "Expected an interaction 'payload'.")
            return None

        return webhook

    def get_output_channel(self, channel: Optional[str] = None, thread_id: Optional[str] = None) -> OutputChannel:
        return ConciergeSlackBot(self.slack_token, channel or self.slack_channel, thread_id, self.proxy, self.api_url)


# ------------------------------------------------------------------ Telegram
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
                f"{recipient_id}:{tag}", [(_title(b, 64), p) for b, p in zip(buttons, payloads, strict=True)]
            )
            short = [
                {**b, "payload": p if len(p.encode("utf-8")) <= 64 else f"#{tag}.{i}"}
                for i, (b, p) in enumerate(zip(buttons, payloads, strict=True), start=1)
            ]
        short = [{**b, "title": _title(b, 64)} for b in short]
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
        webhook = Blueprint("concierge_telegram_webhook", __name__)
        out = self.get_output_channel()

        @webhook.listener("after_server_start")
        async def register(app: Any, loop: Any) -> None:
            if self.enabled:
                await self.register_webhook(out)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.enabled})

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


# ------------------------------------------------------------------ Twilio
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
        titles = [_title(b, 80) for b in buttons]
        self.options.remember(
            recipient_id, [(t, str(b.get("payload", ""))) for t, b in zip(titles, buttons, strict=True)]
        )
        if numeric_titles(titles):  # e.g. a 1-5 rating: the titles are the answers
            choices = f"{', '.join(titles[:-1])} or {titles[-1]}" if len(titles) > 1 else titles[0]
            body = f"{text.strip()}\n(Reply {choices}.)"
        else:
            lines = [f"{i}. {t}" for i, t in enumerate(titles, start=1)]
            body = f"{text.strip()}\n" + "\n".join(lines) + "\n(Reply with a number.)"
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
        webhook = Blueprint("concierge_twilio_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.enabled})

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


# ------------------------------------------------------------------ Facebook Messenger
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
            {"type": "postback", "title": _title(b, 20), "payload": str(b.get("payload", ""))[:1000]} for b in buttons
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
                QuickReply(title=_title(q, 20), payload=str(q.get("payload", ""))[:1000]) for q in quick_replies[:13]
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
        webhook = Blueprint("concierge_fb_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.enabled})

        @webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            token = request.args.get("hub.verify_token") or ""
            if not self.fb_verify or not hmac.compare_digest(token.encode("utf-8"), self.fb_verify.encode("utf-8")):
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


CHANNELS: dict[str, type[InputChannel]] = {
    "slack": ConciergeSlackInput,
    "telegram": ConciergeTelegramInput,
    "twilio": ConciergeTwilioInput,
    "facebook": ConciergeFacebookInput,
}
