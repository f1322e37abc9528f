"""The socket.io channel on a real Sanic server with real python-socketio clients (Rasa runtime, 3.10).

The channel, its socket.io server and the clients are real; in place of Rasa's agent a small
scripted bot answers through the channel's output (tests/e2e/test_socketio.py runs the real agent).
The clients poll (engine.io's websocket client needs a newer aiohttp than Rasa's pin), which is the
transport rasa-webchat opens with too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from concierge_rasa.channels import guard
from concierge_rasa.channels import socketio as socket_channel

WAIT_S = 5.0  # every wait is bounded: a broken channel fails fast instead of hanging


def run(coro: Awaitable[Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, 60))
    finally:  # end the server's open long-polls and the clients' loops before closing the loop
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedBot:
    """Answers like Rasa's agent would, through the message's output channel, and remembers what it got."""

    def __init__(self) -> None:
        self.seen: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.seen.append(message)
        out, me, text = message.output_channel, message.sender_id, message.text
        if text == "boom":
            raise RuntimeError("the agent failed")
        if text == "silence":
            return
        if text == "buttons":
            await out.send_response(
                me,
                {
                    "text": "Pick one",
                    "buttons": [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
                },
            )
        elif text == "custom":
            await out.send_response(me, {"custom": {"type": "product_cards", "products": [{"id": 7}], "room": "x"}})
        elif text == "custom data":
            await out.send_response(me, {"custom": {"data": {"type": "note", "value": 1}}})
        elif text == "cards":
            await out.send_response(me, {"elements": [{"title": "Mug"}, {"title": "Lamp"}]})
        elif text == "image":
            await out.send_response(me, {"image": "/static/mug.png"})
        else:
            await out.send_response(me, {"text": f"{me}: {text}"})


class Client:
    """A python-socketio client that queues every event it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue = asyncio.Queue()
        self.sio.on("bot_uttered", lambda data: self.events.put_nowait(("bot_uttered", data)))
        self.sio.on("session_confirm", lambda data: self.events.put_nowait(("session_confirm", data)))

    async def connect(self, **kwargs: Any) -> Client:
        await self.sio.connect(self.url, transports=["polling"], wait_timeout=WAIT_S, **kwargs)
        return self

    async def close(self) -> None:
        # abort: an engine.io polling client otherwise waits out the server's ping interval (25 s)
        await self.sio.eio.disconnect(abort=True)

    async def next(self, event: str | None = None) -> Any:
        name, data = await asyncio.wait_for(self.events.get(), WAIT_S)
        if event is not None:
            assert name == event, (name, data)
        return data

    async def session(self, session_id: Any = None) -> str:
        await self.sio.emit("session_request", {"session_id": session_id})
        return await self.next("session_confirm")

    async def say(self, text: Any, session_id: str | None, **extra: Any) -> Any:
        await self.sio.emit("user_uttered", {"message": text, "session_id": session_id, **extra})
        return await self.next("bot_uttered")

    async def nothing_more(self, session_id: Any = None) -> list:
        """Whatever this socket received that the test has not read yet (used to show that nothing is).

        A barrier, not a quiet window: the socket asks for its own session again and collects what
        arrives before the server's ``session_confirm``. The server sends a socket's packets in the
        order it queued them, so a reply queued for this socket before the server handled the
        request (a leak from another socket's turn, a second answer) is here by then, however slow
        the machine; a fixed 0.5 s wait missed a late one and slowed every run."""
        await self.sio.emit("session_request", {"session_id": session_id})
        got = []
        while (item := await asyncio.wait_for(self.events.get(), WAIT_S))[0] != "session_confirm":
            got.append(item)
        return got


@asynccontextmanager
async def serving(bot: Callable[[UserMessage], Awaitable[Any]], **credentials: Any):
    """The channel's blueprint on a real Sanic server on a free port, as `rasa run` mounts it."""
    channel = socket_channel.ConciergeSocketIOInput.from_credentials(
        {"session_persistence": True, "metadata_key": "customData", **credentials}
    )
    app = Sanic(f"socketio-test-{uuid.uuid4().hex[:8]}")
    app.blueprint(channel.blueprint(bot), url_prefix="/webhooks/socketio")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.start_serving()
    clients: list[Client] = []

    async def client(**kwargs: Any) -> Client:
        c = await Client(f"http://127.0.0.1:{port}").connect(**kwargs)
        clients.append(c)
        return c

    try:
        yield client
    finally:
        for c in clients:
            await c.close()
        server.close()
        await server.wait_closed()


@pytest.fixture(autouse=True)
def no_crm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("CONCIERGE_CRM_URL", raising=False)
    # Sanic rewrites its HTTP methods once per process unless in test mode (one app per test here)
    monkeypatch.setattr(Sanic, "test_mode", True)


def test_session_request_confirms_the_id_and_replies_reach_the_sender() -> None:
    bot = ScriptedBot()

    async def scenario() -> None:
        async with serving(bot) as client:
            c = await client()
            assert await c.session("abc123") == "abc123"
            assert await c.say("hi", "abc123") == {"text": "abc123: hi"}
            fresh = await c.session(None)
            assert len(fresh) == 32 and fresh != "abc123"

    run(scenario())
    assert [(m.sender_id, m.input_channel) for m in bot.seen] == [("abc123", "socketio")]


def test_unusable_session_ids_get_a_fresh_one() -> None:
    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            c = await client()
            for bad in ("x" * 500, "has spaces", "", 12345, {"a": 1}, "ünïcode", True, False, ["a"], 1.5):
                got = await c.session(bad)
                assert len(got) == 32 and got != bad
            await c.sio.emit("session_request", "not an object")
            assert len(await c.next("session_confirm")) == 32
            await c.sio.emit("session_request")
            assert len(await c.next("session_confirm")) == 32

    run(scenario())


def test_rich_replies_keep_rasas_payloads() -> None:
    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            c = await client()
            sid = await c.session()
            assert await c.say("buttons", sid) == {
                "text": "Pick one",
                "quick_replies": [
                    {"content_type": "text", "title": "Yes", "payload": "/affirm"},
                    {"content_type": "text", "title": "No", "payload": "/deny"},
                ],
            }
            # a custom payload arrives as itself, and cannot pick the room it goes to
            assert await c.say("custom", sid) == {"type": "product_cards", "products": [{"id": 7}]}
            assert await c.say("custom data", sid) == {"type": "note", "value": 1}
            assert await c.say("cards", sid) == {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "Mug"}, {"title": "Lamp"}]},
                }
            }
            assert await c.say("image", sid) == {"attachment": {"type": "image", "payload": {"src": "/static/mug.png"}}}
            assert await c.nothing_more(sid) == []

    run(scenario())


def test_two_clients_never_see_each_others_replies() -> None:
    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            alice, bob = await client(), await client()
            a, b = await alice.session("alice-session"), await bob.session("bob-session")
            for i in range(5):
                await alice.sio.emit("user_uttered", {"message": f"a{i}", "session_id": a})
                await bob.sio.emit("user_uttered", {"message": f"b{i}", "session_id": b})
            got_a = [await alice.next("bot_uttered") for _ in range(5)]
            got_b = [await bob.next("bot_uttered") for _ in range(5)]
            assert sorted(m["text"] for m in got_a) == [f"alice-session: a{i}" for i in range(5)]
            assert sorted(m["text"] for m in got_b) == [f"bob-session: b{i}" for i in range(5)]
            assert await alice.nothing_more(a) == [] and await bob.nothing_more(b) == []

    run(scenario())


def test_reconnect_with_the_same_session_id_continues_the_conversation() -> None:
    bot = ScriptedBot()

    async def scenario() -> str:
        async with serving(bot) as client:
            first = await client()
            sid = await first.session()
            await first.say("before", sid)
            await first.close()
            again = await client()
            assert await again.session(sid) == sid
            assert await again.say("after", sid) == {"text": f"{sid}: after"}
            return sid

    sid = run(scenario())
    assert [(m.sender_id, m.text) for m in bot.seen] == [(sid, "before"), (sid, "after")]


def test_a_socket_that_switches_session_leaves_the_old_room() -> None:
    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            tab1, tab2 = await client(), await client()
            shared = await tab1.session()  # an id the server issued: the widget keeps it, other tabs reuse it
            await tab2.session(shared)
            # two tabs of one conversation both show the reply
            assert await tab1.say("hello", shared) == {"text": f"{shared}: hello"}
            assert await tab2.next("bot_uttered") == {"text": f"{shared}: hello"}
            await tab2.session("mine-now")  # e.g. the customer logged out in that tab
            assert await tab1.say("still here?", shared) == {"text": f"{shared}: still here?"}
            assert await tab2.nothing_more("mine-now") == []

    run(scenario())


def test_a_message_before_any_session_request_starts_a_session() -> None:
    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            c = await client()
            await c.sio.emit("user_uttered", {"message": "hi"})
            sid = await c.next("session_confirm")
            assert await c.next("bot_uttered") == {"text": f"{sid}: hi"}
            # later messages without a session id stay in that session
            assert await c.say("again", None) == {"text": f"{sid}: again"}

    run(scenario())


def test_malformed_events_get_a_polite_reply_and_the_socket_keeps_working() -> None:
    bot = ScriptedBot()
    unreadable = {"text": socket_channel.UNREADABLE}

    async def scenario() -> None:
        async with serving(bot) as client:
            c = await client()
            sid = await c.session()
            for data in ("just text", ["a", "list"], 42, None, b"\x00\xff binary"):
                await c.sio.emit("user_uttered", data)
                assert await c.next("bot_uttered") == unreadable
            assert await c.say({"nested": "object"}, sid) == unreadable
            assert await c.say(["list"], sid) == unreadable
            # text in odd shapes is cleaned, capped and answered
            assert await c.say("hé\x00llo\x07", sid) == {"text": f"{sid}: héllo"}
            assert await c.say("a" * 200_000, sid) == {"text": f"{sid}: " + "a" * guard.MAX_TEXT_CHARS}
            assert await c.say(b"binary text", sid) == {"text": f"{sid}: binary text"}
            assert await c.say(b"\xff\xfe bad utf-8", sid) == {"text": f"{sid}: \ufffd\ufffd bad utf-8"}
            assert await c.say(12.5, sid) == {"text": f"{sid}: 12.5"}
            await c.sio.emit("user_uttered", ({"message": "multi", "session_id": sid}, "extra", "args"))
            assert await c.next("bot_uttered") == {"text": f"{sid}: multi"}
            # the agent failing or saying nothing still ends the turn with an answer
            assert await c.say("boom", sid) == {"text": guard.APOLOGY}
            assert await c.say("silence", sid) == {"text": guard.APOLOGY}
            assert await c.nothing_more(sid) == []
            assert await c.say("still fine", sid) == {"text": f"{sid}: still fine"}

    run(scenario())
    assert max(len(m.text) for m in bot.seen) == guard.MAX_TEXT_CHARS


def test_custom_data_reaches_the_bot_as_metadata() -> None:
    bot = ScriptedBot()

    async def scenario() -> None:
        async with serving(bot) as client:
            c = await client()
            sid = await c.session()
            await c.say("one", sid, customData={"customer_token": "tok.sig"})
            await c.say("two", sid, customData=json.dumps({"customer_token": "tok2.sig"}))
            await c.say("three", sid, customData="{not json")
            await c.say("four", sid, customData=["not", "a", "dict"])
            await c.say("five", sid, metadata={"customer_token": "wrong key"})

    run(scenario())
    # the channel checks the token itself and keeps only its signed claims (never the token)
    assert [set(m.metadata) for m in bot.seen] == [{"concierge"}] * 5
    assert [m.metadata["concierge"].get("token_rejected") for m in bot.seen] == [True, True, None, None, None]


def test_without_persistence_each_socket_is_its_own_conversation() -> None:
    bot = ScriptedBot()

    async def scenario() -> None:
        async with serving(bot, session_persistence=False) as client:
            c, other = await client(), await client()
            await c.session("ignored-for-routing")
            reply = await c.say("hi", "ignored-for-routing")
            assert reply["text"].endswith(": hi") and not reply["text"].startswith("ignored")
            assert await other.nothing_more() == []

    run(scenario())
    assert bot.seen[0].sender_id != "ignored-for-routing"


def test_a_chosen_session_id_is_not_a_shared_room() -> None:
    """Only ids the server issued name a room: knowing someone's chosen id does not let you hear their replies."""

    async def scenario() -> None:
        async with serving(ScriptedBot()) as client:
            victim, eavesdropper = await client(), await client()
            await victim.session("chosen-id")
            await eavesdropper.session("chosen-id")
            assert await victim.say("my order", "chosen-id") == {"text": "chosen-id: my order"}
            assert await eavesdropper.nothing_more("chosen-id") == []
            issued = await victim.session()
            assert len(issued) == 32 and issued != "chosen-id"
            guessed = issued[:16] + "0" * 16  # right shape, wrong signature: just a chosen id, no room
            await eavesdropper.session(guessed)
            assert await victim.say("secret", issued) == {"text": f"{issued}: secret"}
            assert await eavesdropper.nothing_more(guessed) == []

    run(scenario())
