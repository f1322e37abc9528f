"""Slack Events API channel (``/webhooks/slack/webhook``): signed requests only, each accepted once.

Rasa's connector accepts the same signed request again within five minutes; this one keeps a
replay cache and ignores Slack's own retries of an event it already handled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Optional

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from concierge_rasa.channels.guard import guarded
from concierge_rasa.channels.webhooks import (
    DEFAULT_REPLAY_WINDOW_S,
    HTTP_TIMEOUT_S,
    ReplayGuard,
    button_title,
    disabled,
    int_setting,
    json_or_none,
    rejected,
    setting,
    verify_slack,
)

logger = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"


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
        buttons = [{**b, "title": button_title(b, 75)} for b in buttons]
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
        channel.replay_window_s = int_setting(
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
