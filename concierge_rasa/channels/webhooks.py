"""What the messaging webhooks (Slack, Telegram, Twilio, Messenger) share: their settings, their
4xx/503 answers, each platform's signature check, the replay cache and numbered options.

Why one module: every platform webhook does the same things (verify before anything reaches the
conversation, refuse a request it already handled, say 503 when its secrets are missing, map a
"2" back to the second button); written once here, a new platform only adds its own algorithm.
The verification functions are pure (no request objects), so tests check them against each
platform's documented examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from concierge_rasa.channels.guard import clean_text
from concierge_rasa.settings import CHANNEL_PREFIXES, load_rasa_settings
from concierge_rasa.shared_state import RedisError, shared_store

logger = logging.getLogger(__name__)

DEFAULT_REPLAY_WINDOW_S = 300
HTTP_TIMEOUT_S = 10.0
ONLY_TEXT = "Sorry, I can only read text messages here. Please type your question."


# ------------------------------------------------------------------ configuration
def setting(
    credentials: Optional[Mapping[str, Any]], key: str, env: str, default: Optional[str] = None
) -> Optional[str]:
    """A channel option: credentials.yml first, then the environment variable, then the default.

    Empty values count as unset, so ``make run`` without any platform keys starts fine.
    """
    if not env.startswith(CHANNEL_PREFIXES):
        raise ValueError(f"{env}: a channel option's variable starts with one of {CHANNEL_PREFIXES}")
    value = (credentials or {}).get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        # read when the channel is built (not per request), uncached so a changed environment counts
        value = load_rasa_settings().channel_env.get(env, "")
    value = str(value).strip() if value is not None else ""
    return value or default


def int_setting(credentials: Optional[Mapping[str, Any]], key: str, env: str, default: int) -> int:
    """A positive whole-number option (:func:`setting`); a malformed value falls back to ``default``."""
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
    """A refused webhook request: the status and a reason, never a stack trace."""
    return response.json({"error": reason}, status)


# ------------------------------------------------------------------ verification (pure functions)
def webhook_blueprint(name: str, enabled: Callable[[], bool]) -> Blueprint:
    """A messaging channel's blueprint with the route every platform has: ``GET /`` says whether the
    channel is configured (operators and the e2e tests read it; no secret is shown)."""
    webhook = Blueprint(name, __name__)

    @webhook.route("/", methods=["GET"])
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok", "configured": enabled()})

    return webhook


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
    """The signature over the URL Twilio called, with or without its default port."""
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


def secrets_match(expected: Optional[str], got: Optional[str]) -> bool:
    """A shared secret sent back by the platform, compared in constant time; never equal when unset."""
    return bool(expected) and bool(got) and hmac.compare_digest(expected.encode("utf-8"), got.encode("utf-8"))


def verify_telegram(expected: str, got: Optional[str]) -> bool:
    """Telegram's ``X-Telegram-Bot-Api-Secret-Token``: the secret given to ``setWebhook``, sent back."""
    return secrets_match(expected, got)


class ReplayGuard:
    """Remembers recently accepted request keys (a signature, a message id) for ``ttl_s``.

    In memory, per Rasa process: a platform retry or an attacker's replay of a request this
    process already handled is refused. With CONCIERGE_SHARED_REDIS_URL the keys live in Redis
    (``concierge_rasa/shared_state.py``), so a replay on another replica is refused too.
    """

    def __init__(self, ttl_s: float, max_keys: int = 20_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._shared = shared_store()

    def first_time(self, key: str, now: Optional[float] = None) -> bool:
        """True (and remembered) the first time ``key`` is seen within the time to live."""
        if self._shared is not None and now is None:
            try:  # the time to live is part of the key: guards of different windows never share one
                return self._shared.first_time(f"replay:{int(self.ttl_s)}:{key}", self.ttl_s)
            except RedisError:
                logger.warning("Replay cache unreachable (Redis): checked in this process only", exc_info=True)
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
    maps back to the button's payload. Bounded, in memory, forgotten after ``ttl_s``; in Redis with
    CONCIERGE_SHARED_REDIS_URL, so the reply may reach another replica than the options came from."""

    def __init__(self, max_keys: int = 10_000, ttl_s: float = 3600.0) -> None:
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self._options: OrderedDict[str, tuple[float, list[tuple[str, str]]]] = OrderedDict()
        self._shared = shared_store()

    def remember(self, key: str, buttons: list[tuple[str, str]]) -> None:
        """``buttons``: (title, payload) pairs in the order they were shown."""
        if self._shared is not None:
            try:
                self._shared.put_json(f"options:{key}", [list(b) for b in buttons], self.ttl_s)
                return
            except RedisError:
                logger.warning("Options not shared (Redis unreachable): kept in this process", exc_info=True)
        self._options.pop(key, None)
        self._options[key] = (time.monotonic() + self.ttl_s, list(buttons))
        while len(self._options) > self.max_keys:
            self._options.popitem(last=False)

    def pick(self, key: str, reply: str, *, consume: bool = False) -> Optional[str]:
        """The payload the reply chose: a button's exact title, else its 1-based number (unless
        the titles are numbers themselves, like a 1-5 rating). ``consume`` forgets the options:
        on SMS they answer only the very next message."""
        entry = self._options.pop(key, None) if consume else self._options.get(key)
        if self._shared is not None and not entry:
            try:
                shared = self._shared.get_json(f"options:{key}", delete=consume)
            except RedisError:
                logger.warning("Options unreachable (Redis)", exc_info=True)
                shared = None
            entry = (math.inf, [(str(t), str(p)) for t, p in shared]) if isinstance(shared, list) else None
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


def button_title(button: Mapping[str, Any], limit: int) -> str:
    """A button's title as the platform can show it: cleaned, cut to ``limit`` with an ellipsis."""
    title = clean_text(button.get("title")) or clean_text(button.get("payload")) or "?"
    return title if len(title) <= limit else title[: limit - 1] + "…"
