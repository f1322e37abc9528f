"""Slack, Telegram, Twilio (SMS and WhatsApp) and Facebook Messenger end to end.

The real Rasa server runs with the shipped credentials.yml, the channels' secrets in its
environment and their API base URLs pointed at a fake platform API on loopback. Each test
posts a webhook in the platform's real format, signed the way the platform signs it, to the
real connector endpoint, and checks what the bot sent back to the platform's API. Rejected
webhooks must leave the conversation's tracker (read through Rasa's HTTP API) untouched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db.models import Customer, Order, Shipment
from tests.e2e.fake_platforms import Call, FakePlatforms
from tests.stack import Servers, start_servers

pytestmark = pytest.mark.e2e

API_TOKEN = "e2e-rasa-api-token"
SLACK_SECRET = "slack-signing-secret-e2e"
SLACK_TOKEN = "xoxb-e2e-token"
TELEGRAM_TOKEN = "123456:E2E-telegram-token"
TELEGRAM_SECRET = "telegram-secret-e2e_0123"
TELEGRAM_HOOK = "https://shop.example.com/webhooks/telegram/webhook"
TWILIO_SID = "AC" + "e2e0" * 8
TWILIO_TOKEN = "twilio-auth-token-e2e"
TWILIO_NUMBER = "+15005550006"
TWILIO_HOOK = "https://shop.example.com/webhooks/twilio/webhook"  # what Twilio calls, behind a proxy
FB_SECRET = "facebook-app-secret-e2e"
FB_PAGE_TOKEN = "EAAB-e2e-page-token"
FB_VERIFY = "fb-verify-e2e"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePlatforms]:
    with FakePlatforms() as platforms:
        yield platforms


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakePlatforms) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("messaging")
    env = {
        # Stores of the embedded profile, in this test's folder (set here in case conftest doesn't).
        "CONCIERGE_TRACKER_DB": str(tmp / "tracker.db"),
        "CONCIERGE_EVENTS_DB": str(tmp / "events.db"),
        "CONCIERGE_IDENTITY_SECRET": "e2e-messaging-identity-secret-0123456789",  # no website tokens here
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SLACK_API_URL": fake.slack_url,
        "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "TELEGRAM_WEBHOOK_URL": TELEGRAM_HOOK,
        "TELEGRAM_API_URL": fake.telegram_url,
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_NUMBER": TWILIO_NUMBER,
        "TWILIO_WEBHOOK_URL": TWILIO_HOOK,
        "TWILIO_API_URL": fake.twilio_url,
        "FACEBOOK_SECRET": FB_SECRET,
        "FACEBOOK_PAGE_ACCESS_TOKEN": FB_PAGE_TOKEN,
        "FACEBOOK_VERIFY": FB_VERIFY,
        "FACEBOOK_API_URL": fake.facebook_url,
    }
    yield from start_servers(tmp, extra_env=env, rasa_args=["--enable-api", "--auth-token", API_TOKEN])


@pytest.fixture(scope="module")
def db(stack: Servers):
    engine = create_engine(stack.db_url)
    yield engine
    engine.dispose()


def uid() -> str:
    return uuid.uuid4().hex[:10]


def user_texts(stack: Servers, conversation: str) -> list[str]:
    """What the tracker recorded the customer saying (Rasa's HTTP API)."""
    resp = requests.get(
        f"{stack.rasa_url}/conversations/{conversation}/tracker", params={"token": API_TOKEN}, timeout=30
    )
    resp.raise_for_status()
    return [e.get("text") or "" for e in resp.json().get("events", []) if e.get("event") == "user"]


def event_count(stack: Servers, conversation: str) -> int:
    resp = requests.get(
        f"{stack.rasa_url}/conversations/{conversation}/tracker", params={"token": API_TOKEN}, timeout=30
    )
    resp.raise_for_status()
    return len(resp.json().get("events", []))


def pick_shipped_order(db) -> tuple[str, str, str]:
    """(order number, owner's email, tracking number) of a shipped order in the seeded database."""
    with Session(db) as s:
        row = s.execute(
            select(Order.number, Customer.email, Shipment.tracking_number)
            .join(Customer, Order.customer_id == Customer.id)
            .join(Shipment, Shipment.order_id == Order.id)
            .where(Order.status == "shipped")
            .order_by(Order.id.desc())
        ).first()
    assert row is not None, "the seed has no shipped order"
    return row[0], row[1], row[2]


# ================================================================== Slack
def slack_event(user: str, channel: str, text: str) -> dict:
    """An Events API ``event_callback`` for a direct message to the app."""
    ts = f"{time.time():.6f}"
    return {
        "token": "verification-token-unused",
        "team_id": "T0E2E",
        "api_app_id": "A0E2E",
        "event": {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "im",
        },
        "type": "event_callback",
        "event_id": "Ev" + uid(),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0E2E", "user_id": "UBOTE2E", "is_bot": True}],
    }


def slack_post(
    stack: Servers, body: bytes, content_type: str = "application/json", *, secret: str = SLACK_SECRET,
    timestamp: int | None = None, signature: str | None = None, sign: bool = True,
) -> requests.Response:  # fmt: skip
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": content_type}
    if sign:
        digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        headers["X-Slack-Request-Timestamp"] = ts
        headers["X-Slack-Signature"] = signature or f"v0={digest}"
    return requests.post(f"{stack.rasa_url}/webhooks/slack/webhook", data=body, headers=headers, timeout=30)


def slack_reply_to(channel: str, contains: str = "") -> Callable[[Call], bool]:
    return lambda c: (
        c.platform == "slack" and c.method == "chat.postMessage" and c.body.get("channel") == channel
        and contains.lower() in json.dumps(c.body).lower()
    )  # fmt: skip


def test_slack_url_verification_and_message(stack: Servers, fake: FakePlatforms) -> None:
    challenge = slack_post(stack, json.dumps({"type": "url_verification", "challenge": "ch-123"}).encode())
    assert challenge.status_code == 200 and challenge.json() == {"challenge": "ch-123"}

    user, channel = "U" + uid().upper(), "D" + uid().upper()
    mark = fake.mark()
    resp = slack_post(stack, json.dumps(slack_event(user, channel, "hi there")).encode())
    assert resp.status_code == 200
    call = fake.wait_for(slack_reply_to(channel, "Concierge"), since=mark)
    assert call.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert "hi there" in user_texts(stack, user)


def test_slack_buttons_as_blocks_and_a_click(stack: Servers, fake: FakePlatforms) -> None:
    user, channel = "U" + uid().upper(), "D" + uid().upper()
    mark = fake.mark()
    slack_post(stack, json.dumps(slack_event(user, channel, "recommend me something")).encode())
    call = fake.wait_for(lambda c: slack_reply_to(channel)(c) and "blocks" in c.body, since=mark)
    blocks = call.body["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert blocks[0]["type"] == "section"
    actions = blocks[1]
    assert actions["type"] == "actions" and 1 <= len(actions["elements"]) <= 5
    button = actions["elements"][0]
    assert button["type"] == "button" and button["text"]["text"] and button["value"].startswith("/")

    # The customer clicks the first button: Slack posts a form-encoded block_actions payload.
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": channel},
        "message": {"ts": f"{time.time():.6f}"},
        "actions": [{"type": "button", "value": button["value"], "action_id": "a1", "block_id": "b1"}],
    }
    mark = fake.mark()
    resp = slack_post(stack, urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    assert resp.status_code == 200
    fake.wait_for(slack_reply_to(channel), since=mark)
    assert button["value"] in user_texts(stack, user)


def test_slack_rejects_bad_missing_stale_and_replayed_signatures(stack: Servers, fake: FakePlatforms) -> None:
    user, channel = "U" + uid().upper(), "D" + uid().upper()
    good = json.dumps(slack_event(user, channel, "hello")).encode()
    mark = fake.mark()
    first = slack_post(stack, good, timestamp=int(time.time()))
    assert first.status_code == 200
    fake.wait_for(slack_reply_to(channel), since=mark)
    before = event_count(stack, user)

    attempts = {
        "wrong secret": slack_post(stack, json.dumps(slack_event(user, channel, "evil-1")).encode(), secret="nope"),
        "missing": slack_post(stack, json.dumps(slack_event(user, channel, "evil-2")).encode(), sign=False),
        "stale": slack_post(
            stack, json.dumps(slack_event(user, channel, "evil-3")).encode(), timestamp=int(time.time()) - 3600
        ),
        "garbage": slack_post(
            stack, json.dumps(slack_event(user, channel, "evil-4")).encode(), signature="v0=" + "0" * 64
        ),
    }
    for name, resp in attempts.items():
        assert resp.status_code == 401, name
    # The same signed request again (captured and replayed within the window) is refused too.
    ts = str(int(time.time()))
    evil = json.dumps(slack_event(user, channel, "evil-5")).encode()
    sig = "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + evil, hashlib.sha256).hexdigest()
    mark = fake.mark()
    assert slack_post(stack, evil, timestamp=int(ts), signature=sig).status_code == 200
    fake.wait_for(slack_reply_to(channel), since=mark)
    after_first = event_count(stack, user)
    assert slack_post(stack, evil, timestamp=int(ts), signature=sig).status_code == 409

    assert event_count(stack, user) == after_first > before
    # Slack's own retry of that event (same event_id, freshly signed) is acknowledged, not handled again.
    assert slack_post(stack, evil, timestamp=int(ts) + 1).status_code == 200
    mark = fake.mark()  # a later message's reply: by then a wrongly handled retry would be in the tracker
    assert slack_post(stack, json.dumps(slack_event(user, channel, "after the retry")).encode()).status_code == 200
    fake.wait_for(slack_reply_to(channel), since=mark)
    texts = user_texts(stack, user)
    assert not any(t.startswith("evil-") and t != "evil-5" for t in texts)
    assert texts.count("evil-5") == 1


# ================================================================== Telegram
def telegram_post(stack: Servers, update: dict, secret: str | None = TELEGRAM_SECRET) -> requests.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return requests.post(f"{stack.rasa_url}/webhooks/telegram/webhook", json=update, headers=headers, timeout=60)


_update_ids = iter(range(int(time.time()) % 100000 * 1000, 10**12))


def telegram_message(chat_id: int, text: str) -> dict:
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": next(_update_ids) % 100000,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Ann", "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }


def telegram_reply_to(chat_id: int, contains: str = "") -> Callable[[Call], bool]:
    return lambda c: (
        c.platform == "telegram" and c.method == "sendMessage" and str(c.body.get("chat_id")) == str(chat_id)
        and contains.lower() in str(c.body.get("text", "")).lower()
    )  # fmt: skip


def test_telegram_registers_its_webhook_with_the_secret_at_start(stack: Servers, fake: FakePlatforms) -> None:
    call = fake.wait_for(lambda c: c.platform == "telegram" and c.method == "setWebhook", timeout=30)
    assert call.path == f"/telegram/bot{TELEGRAM_TOKEN}/setWebhook"
    assert call.body["url"] == TELEGRAM_HOOK
    assert call.body["secret_token"] == TELEGRAM_SECRET
    fake.wait_for(lambda c: c.platform == "telegram" and c.method == "getMe", timeout=30)


def test_telegram_message_and_inline_keyboard_and_a_click(stack: Servers, fake: FakePlatforms) -> None:
    chat = int(uid(), 16) % 10**9
    mark = fake.mark()
    assert telegram_post(stack, telegram_message(chat, "/start")).status_code == 200
    fake.wait_for(telegram_reply_to(chat, "Concierge"), since=mark)

    mark = fake.mark()
    assert telegram_post(stack, telegram_message(chat, "recommend me something")).status_code == 200
    call = fake.wait_for(lambda c: telegram_reply_to(chat)(c) and "reply_markup" in c.body, since=mark)
    keyboard = json.loads(call.body["reply_markup"])["inline_keyboard"]
    buttons = [b for row in keyboard for b in row]
    assert buttons and all(b["text"] and len(b["callback_data"].encode()) <= 64 for b in buttons)

    # The customer taps the first button: Telegram sends a callback_query update.
    mark = fake.mark()
    click = {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": "cb" + uid(),
            "from": {"id": chat, "is_bot": False, "first_name": "Ann"},
            "message": {"message_id": 1, "chat": {"id": chat, "type": "private"}, "date": int(time.time())},
            "chat_instance": "42",
            "data": buttons[0]["callback_data"],
        },
    }
    assert telegram_post(stack, click).status_code == 200
    fake.wait_for(lambda c: c.platform == "telegram" and c.method == "answerCallbackQuery", since=mark)
    fake.wait_for(telegram_reply_to(chat), since=mark)
    said = user_texts(stack, str(chat))[-1]
    assert said.startswith("/product_question"), said  # the button's payload, even when it was too long for Telegram


def test_telegram_rejects_wrong_missing_and_replayed_updates(stack: Servers, fake: FakePlatforms) -> None:
    chat = int(uid(), 16) % 10**9
    update = telegram_message(chat, "hello")
    mark = fake.mark()
    assert telegram_post(stack, update).status_code == 200
    fake.wait_for(telegram_reply_to(chat), since=mark)
    before = event_count(stack, str(chat))

    assert telegram_post(stack, telegram_message(chat, "evil-1"), secret="wrong").status_code == 403
    assert telegram_post(stack, telegram_message(chat, "evil-2"), secret=None).status_code == 403
    assert telegram_post(stack, telegram_message(chat, "evil-3"), secret="").status_code == 403
    assert telegram_post(stack, update).status_code == 409  # the same update again
    assert telegram_post(stack, {"not": "an update"}).status_code == 400

    assert event_count(stack, str(chat)) == before
    assert user_texts(stack, str(chat)) == ["hello"]


def test_telegram_in_chat_verification_answers_the_real_order(stack: Servers, fake: FakePlatforms, db) -> None:
    number, email, tracking = pick_shipped_order(db)
    chat = int(uid(), 16) % 10**9
    mark = fake.mark()
    telegram_post(stack, telegram_message(chat, f"where is my order {number}?"))
    fake.wait_for(telegram_reply_to(chat, "email"), since=mark)
    # The channel's user id proves nothing: without the email nothing about the order is shown.
    assert not fake.since(mark, telegram_reply_to(chat, tracking))

    mark = fake.mark()
    telegram_post(stack, telegram_message(chat, email))
    call = fake.wait_for(telegram_reply_to(chat, number), since=mark)
    assert tracking in call.body["text"] and "on its way" in call.body["text"], call.body  # the real shipment


# ================================================================== Twilio (SMS and WhatsApp)
def twilio_sign(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_params(sender: str, body: str | None, to: str = TWILIO_NUMBER) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
        "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "", "FromCountry": "US",
        "To": to, "ToZip": "", "NumSegments": "1", "MessageSid": sid, "AccountSid": TWILIO_SID, "From": sender,
        "ApiVersion": "2010-04-01",
    }  # fmt: skip
    if body is not None:
        params["Body"] = body
    return params


def twilio_post(
    stack: Servers, params: dict[str, str], *, url: str = TWILIO_HOOK, signature: str | None = None, sign: bool = True
) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = signature or twilio_sign(url, params)
    return requests.post(
        f"{stack.rasa_url}/webhooks/twilio/webhook", data=urlencode(params), headers=headers, timeout=60
    )


def twilio_reply_to(number: str, contains: str = "") -> Callable[[Call], bool]:
    return lambda c: (
        c.platform == "twilio" and c.method == "Messages.json" and c.body.get("To") == number
        and contains.lower() in str(c.body.get("Body", "")).lower()
    )  # fmt: skip


def phone() -> str:
    return "+1415" + str(int(uid(), 16) % 10**7).zfill(7)


def test_twilio_sms_with_numbered_options(stack: Servers, fake: FakePlatforms) -> None:
    me = phone()
    mark = fake.mark()
    resp = twilio_post(stack, twilio_params(me, "hi"))
    assert resp.status_code == 200 and "<Response>" in resp.text
    call = fake.wait_for(twilio_reply_to(me, "Concierge"), since=mark)
    assert call.body["From"] == TWILIO_NUMBER
    assert call.headers["authorization"].startswith("Basic ")
    assert call.path == f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"

    mark = fake.mark()
    twilio_post(stack, twilio_params(me, "recommend me something"))
    call = fake.wait_for(twilio_reply_to(me, "1. "), since=mark)
    assert "2. " in call.body["Body"] and "Reply with a number" in call.body["Body"]

    mark = fake.mark()  # "1" picks the first option: its payload reaches the bot
    twilio_post(stack, twilio_params(me, "1"))
    fake.wait_for(twilio_reply_to(me), since=mark)
    assert user_texts(stack, me)[-1].startswith("/product_question")


def test_twilio_sms_in_chinese_with_numbered_options(stack: Servers, fake: FakePlatforms) -> None:
    """An SMS customer who writes Chinese reads Chinese, the numbered options' hint included."""
    me = phone()
    mark = fake.mark()
    twilio_post(stack, twilio_params(me, "有什么好东西推荐一下吗"))
    call = fake.wait_for(twilio_reply_to(me, "1. "), since=mark)
    body = call.body["Body"]
    assert "2. " in body and body.endswith("（请回复序号。）") and "Reply" not in body
    assert re.search("[\u4e00-\u9fff]{4}", body.split("\n", 1)[0]), body  # the intro is Chinese

    mark = fake.mark()  # "1" picks the first option in Chinese too
    twilio_post(stack, twilio_params(me, "1"))
    fake.wait_for(twilio_reply_to(me), since=mark)
    assert user_texts(stack, me)[-1].startswith("/product_question")


def test_telegram_in_chinese_verifies_and_tracks_in_chinese(stack: Servers, fake: FakePlatforms, db) -> None:
    number, email, tracking = pick_shipped_order(db)
    chat = int(uid(), 16) % 10**9
    mark = fake.mark()
    telegram_post(stack, telegram_message(chat, f"我的订单{number}到哪了？"))
    fake.wait_for(telegram_reply_to(chat, "邮箱"), since=mark)
    assert not fake.since(mark, telegram_reply_to(chat, tracking))  # nothing shown before the email

    mark = fake.mark()
    telegram_post(stack, telegram_message(chat, email))  # no words: the conversation stays Chinese
    call = fake.wait_for(telegram_reply_to(chat, tracking), since=mark)
    assert f"订单#{number}" in call.body["text"] and "已发货" in call.body["text"], call.body


def test_twilio_whatsapp(stack: Servers, fake: FakePlatforms) -> None:
    me, ours = "whatsapp:" + phone(), "whatsapp:+14155238886"
    mark = fake.mark()
    assert twilio_post(stack, twilio_params(me, "hello", to=ours)).status_code == 200
    call = fake.wait_for(twilio_reply_to(me, "Concierge"), since=mark)
    assert call.body["From"] == ours


def test_twilio_message_without_body_gets_a_polite_reply(stack: Servers, fake: FakePlatforms) -> None:
    me = phone()
    params = twilio_params(me, None)
    params.update({"NumMedia": "1", "MediaUrl0": "https://api.twilio.com/media/ME1", "MediaContentType0": "image/jpeg"})
    mark = fake.mark()
    resp = twilio_post(stack, params)
    assert resp.status_code == 200
    call = fake.wait_for(twilio_reply_to(me, "text"), since=mark)
    assert "only read text" in call.body["Body"]
    assert user_texts(stack, me) == []


def test_twilio_rejects_bad_signatures(stack: Servers, fake: FakePlatforms) -> None:
    me = phone()
    params = twilio_params(me, "hello")
    mark = fake.mark()
    assert twilio_post(stack, params).status_code == 200
    fake.wait_for(twilio_reply_to(me), since=mark)
    before = event_count(stack, me)

    # Signed for the server's own address instead of the public URL Twilio calls: refused.
    local = f"{stack.rasa_url}/webhooks/twilio/webhook"
    assert twilio_post(stack, twilio_params(me, "evil-1"), url=local).status_code == 403
    assert twilio_post(stack, twilio_params(me, "evil-2"), sign=False).status_code == 403
    evil = twilio_params(me, "evil-3")
    assert twilio_post(stack, evil, signature=twilio_sign(TWILIO_HOOK, evil, "other-token")).status_code == 403
    tampered = twilio_params(me, "fine")
    sig = twilio_sign(TWILIO_HOOK, tampered)
    assert twilio_post(stack, {**tampered, "Body": "evil-4"}, signature=sig).status_code == 403
    assert twilio_post(stack, params).status_code == 409  # the same message again

    assert event_count(stack, me) == before
    assert user_texts(stack, me) == ["hello"]


# ================================================================== Facebook Messenger
def fb_event(psid: str, text: str | None = None, quick_reply: str | None = None) -> dict:
    message: dict = {"mid": "m_" + uuid.uuid4().hex, "text": text}
    if quick_reply is not None:
        message["quick_reply"] = {"payload": quick_reply}
    now = int(time.time() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": "PAGE0E2E",
                "time": now,
                "messaging": [
                    {"sender": {"id": psid}, "recipient": {"id": "PAGE0E2E"}, "timestamp": now, "message": message}
                ],
            }
        ],
    }


def fb_post(stack: Servers, event: dict, *, secret: str = FB_SECRET, header: str | None = "256") -> requests.Response:
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    if header == "256":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif header == "1":
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return requests.post(f"{stack.rasa_url}/webhooks/facebook/webhook", data=body, headers=headers, timeout=60)


def fb_reply_to(psid: str, contains: str = "") -> Callable[[Call], bool]:
    return lambda c: (
        c.platform == "facebook" and c.method == "me/messages" and "message" in c.body
        and c.body.get("recipient", {}).get("id") == psid and contains.lower() in json.dumps(c.body).lower()
    )  # fmt: skip


def test_facebook_subscription_check(stack: Servers) -> None:
    url = f"{stack.rasa_url}/webhooks/facebook/webhook"
    ok = requests.get(
        url,
        params={"hub.mode": "subscribe", "hub.verify_token": FB_VERIFY, "hub.challenge": "1158201444"},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}, timeout=10)
    assert bad.status_code == 403


def test_facebook_message_quick_replies_and_a_tap(stack: Servers, fake: FakePlatforms) -> None:
    psid = str(int(uid(), 16))
    mark = fake.mark()
    assert fb_post(stack, fb_event(psid, "hi")).status_code == 200
    call = fake.wait_for(fb_reply_to(psid, "Concierge"), since=mark)
    assert call.query["access_token"] == [FB_PAGE_TOKEN]
    assert call.path.startswith("/facebook/v")
    actions = [c.body["sender_action"] for c in fake.since(mark) if c.body.get("recipient", {}).get("id") == psid
               and "sender_action" in c.body]  # fmt: skip
    assert actions[:2] == ["mark_seen", "typing_on"] and "typing_off" in actions

    mark = fake.mark()  # five recommendations: more than a button template holds, so quick replies
    fb_post(stack, fb_event(psid, "recommend me something"))
    call = fake.wait_for(lambda c: fb_reply_to(psid)(c) and "quick_replies" in c.body["message"], since=mark)
    replies = call.body["message"]["quick_replies"]
    assert 3 < len(replies) <= 13
    assert all(r["content_type"] == "text" and 0 < len(r["title"]) <= 20 for r in replies)

    mark = fake.mark()
    fb_post(stack, fb_event(psid, replies[0]["title"], quick_reply=replies[0]["payload"]))
    fake.wait_for(fb_reply_to(psid), since=mark)
    assert user_texts(stack, psid)[-1] == replies[0]["payload"]


def fb_postback(psid: str, title: str, payload: str) -> dict:
    now = int(time.time() * 1000)
    event = {
        "sender": {"id": psid},
        "recipient": {"id": "PAGE0E2E"},
        "timestamp": now,
        "postback": {"title": title, "payload": payload, "mid": "m_" + uuid.uuid4().hex},
    }
    return {"object": "page", "entry": [{"id": "PAGE0E2E", "time": now, "messaging": [event]}]}


def order_status(db, number: str) -> str:
    with Session(db) as s:
        return s.scalar(select(Order.status).where(Order.number == number))


def test_facebook_verify_in_chat_then_a_button_template_postback(stack: Servers, fake: FakePlatforms, db) -> None:
    """Cancel an order over Messenger: in-chat verification, a Yes/No button template, "No" tapped."""
    with Session(db) as s:
        number, email = s.execute(
            select(Order.number, Customer.email).join(Customer).where(Order.status == "processing").limit(1)
        ).one()
    psid = str(int(uid(), 16))
    mark = fake.mark()
    fb_post(stack, fb_event(psid, f"cancel order {number}"))
    fake.wait_for(fb_reply_to(psid, "email"), since=mark)

    mark = fake.mark()
    fb_post(stack, fb_event(psid, email))
    call = fake.wait_for(lambda c: fb_reply_to(psid)(c) and "attachment" in c.body["message"], since=mark)
    template = call.body["message"]["attachment"]["payload"]
    assert template["template_type"] == "button" and number in template["text"]
    assert [(b["type"], b["payload"]) for b in template["buttons"]] == [("postback", "/affirm"), ("postback", "/deny")]

    mark = fake.mark()
    no = template["buttons"][1]
    assert fb_post(stack, fb_postback(psid, no["title"], no["payload"])).status_code == 200
    fake.wait_for(fb_reply_to(psid), since=mark)
    assert user_texts(stack, psid)[-1] == "/deny"
    assert order_status(db, number) == "processing"


def test_facebook_sha1_signature_still_accepted(stack: Servers, fake: FakePlatforms) -> None:
    psid = str(int(uid(), 16))
    mark = fake.mark()
    assert fb_post(stack, fb_event(psid, "hello"), header="1").status_code == 200
    fake.wait_for(fb_reply_to(psid), since=mark)


def test_facebook_rejects_bad_missing_and_replayed(stack: Servers, fake: FakePlatforms) -> None:
    psid = str(int(uid(), 16))
    event = fb_event(psid, "hello")
    mark = fake.mark()
    assert fb_post(stack, event).status_code == 200
    fake.wait_for(fb_reply_to(psid), since=mark)
    before = event_count(stack, psid)

    assert fb_post(stack, fb_event(psid, "evil-1"), secret="wrong").status_code == 403
    assert fb_post(stack, fb_event(psid, "evil-2"), header=None).status_code == 403
    assert fb_post(stack, fb_event(psid, "evil-3"), secret="wrong", header="1").status_code == 403
    assert fb_post(stack, event).status_code == 409  # the same delivery again

    assert event_count(stack, psid) == before
    assert user_texts(stack, psid) == ["hello"]


def test_health_routes_say_the_channels_are_configured(stack: Servers) -> None:
    for name in ("slack", "telegram", "twilio", "facebook"):
        resp = requests.get(f"{stack.rasa_url}/webhooks/{name}/", timeout=10)
        assert resp.status_code == 200
    for name in ("telegram", "twilio", "facebook"):
        assert requests.get(f"{stack.rasa_url}/webhooks/{name}/", timeout=10).json()["configured"] is True


def test_without_secrets_the_server_starts_and_channels_answer_503(servers: Servers) -> None:
    """The default stack (shipped credentials.yml, no platform keys in its environment): Rasa
    started, REST answers, and each messaging webhook says it is not configured."""
    for name in ("SLACK_SIGNING_SECRET", "TELEGRAM_TOKEN", "TWILIO_AUTH_TOKEN", "FACEBOOK_SECRET"):
        assert not servers.env.get(name), f"{name} is set in the test environment"
    assert "Concierge" in servers.text(f"msg-{uid()}", "hi")
    for name in ("slack", "telegram", "twilio", "facebook"):
        resp = requests.post(f"{servers.rasa_url}/webhooks/{name}/webhook", data=b"{}", timeout=10)
        assert resp.status_code == 503, name
        assert "not configured" in resp.json()["error"]


def test_no_secret_reached_a_platform_message(fake: FakePlatforms) -> None:
    texts = json.dumps([c.body for c in fake.since(0) if c.method != "setWebhook"])
    for secret in (SLACK_SECRET, TELEGRAM_SECRET, TWILIO_TOKEN, FB_SECRET, API_TOKEN):
        assert secret not in texts
