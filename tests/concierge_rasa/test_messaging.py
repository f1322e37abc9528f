"""Webhook verification of the messaging channels, checked against each platform's documented
algorithm computed independently here (tests/e2e/test_messaging.py posts real webhooks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rasa.core.channels.channel import UserMessage

from concierge_rasa.channels import MESSAGING_CHANNELS, get_channel_class
from concierge_rasa.channels.messenger import FACEBOOK_API_VERSION, ConciergeFacebookInput
from concierge_rasa.channels.slack import ConciergeSlackInput
from concierge_rasa.channels.telegram import ConciergeTelegramInput
from concierge_rasa.channels.twilio import BaseUrlHttpClient, ConciergeTwilioInput
from concierge_rasa.channels.webhooks import (
    OptionMemory,
    ReplayGuard,
    numeric_titles,
    slack_signature,
    telegram_secret,
    twilio_signature,
    verify_facebook,
    verify_slack,
    verify_telegram,
    verify_twilio,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


# ------------------------------------------------------------------ Slack
def test_slack_signature_matches_slacks_documented_example() -> None:
    # The worked example of https://api.slack.com/authentication/verifying-requests-from-slack
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert (
        slack_signature(SECRET, "1531420618", body)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )
    assert verify_slack(
        SECRET,
        "1531420618",
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        body,
        now=1531420618 + 10,
        window_s=300,
    )


@pytest.mark.parametrize(
    ("timestamp", "signature", "now"),
    [
        ("1700000000", None, 1700000000),  # missing signature
        (None, "v0=00", 1700000000),  # missing timestamp
        ("1700000000", "v0=" + "0" * 64, 1700000000),  # wrong signature
        ("1700000000", "GOOD", 1700000000 + 301),  # replayed after the window
        ("1700000000", "GOOD", 1700000000 - 301),  # from the future
        ("not-a-number", "GOOD", 1700000000),
    ],
)
def test_slack_rejects(timestamp: str | None, signature: str | None, now: int) -> None:
    body = b'{"type":"event_callback"}'
    if signature == "GOOD":
        signature = slack_signature("s3cret", str(timestamp), body)
    assert not verify_slack("s3cret", timestamp, signature, body, now=now, window_s=300)


def test_slack_signature_covers_the_body() -> None:
    sig = slack_signature("s3cret", "1700000000", b'{"text":"hi"}')
    assert verify_slack("s3cret", "1700000000", sig, b'{"text":"hi"}', now=1700000000, window_s=300)
    assert not verify_slack("s3cret", "1700000000", sig, b'{"text":"ho"}', now=1700000000, window_s=300)
    assert not verify_slack("", "1700000000", sig, b'{"text":"hi"}', now=1700000000, window_s=300)


# ------------------------------------------------------------------ Facebook
def test_facebook_sha256_and_sha1() -> None:
    body = b'{"object":"page","entry":[]}'
    sig256 = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    sig1 = "sha1=" + hmac.new(b"app-secret", body, hashlib.sha1).hexdigest()
    assert verify_facebook("app-secret", body, sig256, None)
    assert verify_facebook("app-secret", body, None, sig1)
    assert verify_facebook("app-secret", body, sig256, sig1)
    # When the SHA-256 header is present it decides, even next to a valid SHA-1 one.
    assert not verify_facebook("app-secret", body, "sha256=" + "0" * 64, sig1)
    assert not verify_facebook("app-secret", body, None, None)
    assert not verify_facebook("app-secret", body + b" ", sig256, None)
    assert not verify_facebook("", body, sig256, None)
    assert ConciergeFacebookInput.validate_hub_signature("app-secret", body, sig256)
    assert ConciergeFacebookInput.validate_hub_signature("app-secret", body, sig1)
    assert not ConciergeFacebookInput.validate_hub_signature("app-secret", body, "md5=abc")


# ------------------------------------------------------------------ Twilio
def twilio_reference(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm: the URL, then each POST param name+value sorted by name."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # The example of https://www.twilio.com/docs/usage/security#validating-requests
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
              "To": "+18005551212"}  # fmt: skip
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_reference("12345", url, params) == expected
    assert twilio_signature("12345", url, {k: [v] for k, v in params.items()}) == expected
    assert verify_twilio("12345", url, {k: [v] for k, v in params.items()}, expected)


def test_twilio_rejects_and_accepts_the_port_variants() -> None:
    params = {"From": ["whatsapp:+14155550100"], "Body": ["hi"], "MessageSid": ["SM1"]}
    url = "https://shop.example.com/webhooks/twilio/webhook"
    sig = twilio_signature("tok", url, params)
    assert verify_twilio("tok", url, params, sig)
    assert verify_twilio("tok", "https://shop.example.com:443/webhooks/twilio/webhook", params, sig)
    assert not verify_twilio("tok", "http://127.0.0.1:5005/webhooks/twilio/webhook", params, sig)
    assert not verify_twilio("tok", url, {**params, "Body": ["hI"]}, sig)
    assert not verify_twilio("other", url, params, sig)
    assert not verify_twilio("tok", url, params, None)
    assert not verify_twilio("", url, params, sig)


# ------------------------------------------------------------------ Telegram
def test_telegram_secret() -> None:
    derived = telegram_secret("123:ABC")
    assert derived == telegram_secret("123:ABC") != telegram_secret("123:ABD")
    assert 1 <= len(derived) <= 256 and derived.isalnum()
    assert verify_telegram(derived, derived)
    assert not verify_telegram(derived, derived[:-1])
    assert not verify_telegram(derived, None)
    assert not verify_telegram("", "")


# ------------------------------------------------------------------ replay cache and options
def test_replay_guard_remembers_until_the_ttl_and_stays_bounded() -> None:
    guard = ReplayGuard(ttl_s=10, max_keys=3)
    assert guard.first_time("a", now=0)
    assert not guard.first_time("a", now=5)
    assert guard.first_time("a", now=11)  # expired, so accepted again (Slack's window is shorter)
    for key in "bcde":
        assert guard.first_time(key, now=12)
    assert len(guard._seen) == 3


def test_option_memory_maps_numbers_and_titles_to_payloads() -> None:
    memory = OptionMemory(max_keys=2)
    memory.remember("+1", [("Yes, cancel it", "/affirm"), ("No, keep it", "/deny")])
    assert memory.pick("+1", "1") == "/affirm"
    assert memory.pick("+1", " 2. ") == "/deny"
    assert memory.pick("+1", "no, KEEP it") == "/deny"
    assert memory.pick("+1", "3") is None
    assert memory.pick("+1", "0") is None
    assert memory.pick("+1", "yes please") is None
    assert memory.pick("+2", "1") is None
    assert memory.pick("+1", "1", consume=True) == "/affirm"
    assert memory.pick("+1", "1") is None  # consumed: SMS options answer the next message only
    memory.remember("+1", [("a", "/a")])
    memory.remember("+2", [("b", "/b")])
    memory.remember("+3", [("c", "/c")])
    assert memory.pick("+1", "1") is None  # evicted: bounded


def test_numeric_titles_are_answers_not_option_numbers() -> None:
    """A 1-5 rating offered as buttons: "5" means five stars, not the fifth button."""
    memory = OptionMemory()
    memory.remember("+1", [(str(n), f"/rate{n}") for n in (5, 4, 3, 2, 1)])
    assert memory.pick("+1", "5") == "/rate5"
    assert memory.pick("+1", "1") == "/rate1"
    assert memory.pick("+1", "6") is None
    assert numeric_titles(["5", "4"]) and not numeric_titles(["5", "four"]) and not numeric_titles([])


# ------------------------------------------------------------------ configuration
ENV = [
    "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TELEGRAM_TOKEN", "TELEGRAM_SECRET_TOKEN", "TELEGRAM_WEBHOOK_URL",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_NUMBER", "TWILIO_WEBHOOK_URL", "FACEBOOK_SECRET",
    "FACEBOOK_PAGE_ACCESS_TOKEN", "FACEBOOK_VERIFY", "SLACK_API_URL", "TELEGRAM_API_URL", "TWILIO_API_URL",
    "FACEBOOK_API_URL",
]  # fmt: skip


@pytest.fixture()
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


async def _never(message: UserMessage) -> None:  # pragma: no cover - never reached
    raise AssertionError("no message may reach the conversation")


@pytest.mark.parametrize("name", MESSAGING_CHANNELS)
def test_without_secrets_a_channel_is_off_but_builds(no_env: None, name: str) -> None:
    """`make run` without platform keys: every channel builds its blueprint (no network call)."""
    for credentials in (None, {}):
        channel = get_channel_class(name).from_credentials(credentials)
        assert channel.name() == name
        assert not channel.enabled
        blueprint = channel.blueprint(_never)
        assert blueprint is not None


def test_settings_come_from_credentials_then_env(no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "from-env")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/slack/api")
    slack = ConciergeSlackInput.from_credentials({"slack_signing_secret": "from-file", "replay_window_s": 60})
    assert slack.enabled and slack.slack_signing_secret == "from-file" and slack.slack_token == "xoxb-env"
    assert slack.replay_window_s == 60
    out = slack.get_output_channel("D1")
    assert out.client.base_url == "http://127.0.0.1:9/slack/api/"

    monkeypatch.setenv("TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9/tg")
    telegram = ConciergeTelegramInput.from_credentials({})
    assert telegram.enabled and telegram.secret_token == telegram_secret("123:abc")
    assert telegram.get_output_channel().server.api_url("123:abc", "getMe") == "http://127.0.0.1:9/tg/bot123:abc/getMe"
    assert not ConciergeTelegramInput.from_credentials({"access_token": "not a token"}).enabled

    facebook = ConciergeFacebookInput.from_credentials(
        {"secret": "s", "page-access-token": "p", "api_url": "http://127.0.0.1:9/fb/"}
    )
    assert facebook.enabled
    assert facebook.get_output_channel().messenger_client.graph_url == f"http://127.0.0.1:9/fb/{FACEBOOK_API_VERSION}"


def test_twilio_client_goes_to_the_configured_base_url(no_env: None) -> None:
    """A real request through the rewritten client lands on a loopback server."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(201)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = BaseUrlHttpClient(f"http://127.0.0.1:{server.server_address[1]}/twilio", timeout=5)
        resp = client.request("POST", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json", data={"x": 1})
    finally:
        server.shutdown()
        server.server_close()
    assert resp.status_code == 201
    assert seen == ["/twilio/2010-04-01/Accounts/AC1/Messages.json"]


def test_twilio_signed_url_uses_the_public_url() -> None:
    class Req:
        url = "http://127.0.0.1:5005/webhooks/twilio/webhook?x=1"
        query_string = "x=1"

    channel = ConciergeTwilioInput("AC1", "tok", "+1", webhook_url="https://shop.example.com/webhooks/twilio/webhook")
    assert channel.signed_url(Req()) == "https://shop.example.com/webhooks/twilio/webhook?x=1"
    assert ConciergeTwilioInput("AC1", "tok", "+1").signed_url(Req()) == Req.url
