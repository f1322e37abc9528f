"""The hardened channels (Rasa runtime, Python 3.10): input cleaning and the reply guarantee."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ConversationPaused,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)

import concierge_rasa
from concierge_rasa.channels import guard
from concierge_rasa.channels import socketio as socket_channel
from concierge_rasa.limits import POLITE_SLOW_DOWN


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_clean_text_bounds_and_strips_control_characters() -> None:
    assert guard.clean_text(None) == ""
    assert guard.clean_text(b"hi\x00 there") == "hi there"
    assert guard.clean_text("  where\x07 is it?\n") == "where is it?"
    assert len(guard.clean_text("a" * 50_000)) == guard.MAX_TEXT_CHARS
    assert guard.clean_text("😀 ¿dónde?") == "😀 ¿dónde?"
    assert guard.clean_text(12345) == "12345"


def test_clean_metadata_keeps_only_the_keys_the_channels_define() -> None:
    assert guard.clean_metadata("token") == {}
    assert guard.clean_metadata([1, 2]) == {}
    assert guard.clean_metadata({"customer_token": "x" * 10_000, 5: "bad", "k" * 100: 1}) == {}  # oversized
    cleaned = guard.clean_metadata(
        {"customer_token": "a.b", "language": "en", "sentiment": "positive", "concierge": {"cid": 1}, "x": {"y": {}}}
    )
    assert cleaned == {"customer_token": "a.b", "language": "en"}
    assert guard.clean_metadata({"customer_token": {"nested": "a.b"}, "language": ["en"]}) == {}


def test_guarded_apologises_when_the_turn_fails(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("action server down")

    out = CollectingOutputChannel()
    run(guard.guarded(broken)(UserMessage("hello", out, "s1")))
    assert [m["text"] for m in out.messages] == [guard.APOLOGY]


def test_guarded_apologises_when_nothing_was_said(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)

    async def silent(message: UserMessage) -> None:
        return None

    out = CollectingOutputChannel()
    run(guard.guarded(silent)(UserMessage("hello", out, "s1")))
    assert [m["text"] for m in out.messages] == [guard.APOLOGY]


def rasa_turn(store: InMemoryTrackerStore, events_of: Callable[[str], list]) -> Callable:
    """Stands in for Rasa's processor on a real tracker store: logs the events Rasa 3.6 logs for the
    message (recorded from the real agent with the shipped model) and, like Rasa's commands, says nothing."""

    async def handle(message: UserMessage) -> None:
        tracker = await store.get_or_create_tracker(message.sender_id)
        for event in events_of(message.text):
            tracker.update(event)
        await store.save(tracker)

    return handle


def session_start() -> list:
    return [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]


RASA_EVENTS = {  # what the real agent logged for each text, after the tracker's first session start
    "/restart": lambda: [UserUttered("/restart", {"name": "restart"}), ActionExecuted("action_restart"), Restarted(),
                         *session_start()],
    "/session_start": lambda: [UserUttered("/session_start", {"name": "session_start"}), *session_start()],
    "/back": lambda: [UserUttered("/back", {"name": "back"}), ActionExecuted("action_back"), UserUtteranceReverted(),
                      UserUtteranceReverted(), ActionExecuted("action_listen")],
    "hello": lambda: [UserUttered("hello", {"name": "greet"}), ActionExecuted("action_listen")],  # a silent failure
}


@pytest.mark.parametrize(
    ("text", "closing"),
    [("/restart", guard.STARTED_OVER), ("/session_start", guard.STARTED_OVER), ("/back", guard.WENT_BACK),
     ("hello", guard.APOLOGY)],
)
def test_rasas_own_commands_get_an_acknowledgement_not_the_apology(monkeypatch, text: str, closing: str) -> None:
    """/restart and /session_start used to get "Sorry, something went wrong" although nothing failed."""
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    store = InMemoryTrackerStore(Domain.empty())

    async def scenario() -> list:
        out = CollectingOutputChannel()
        tracker = await store.get_or_create_tracker("s1")  # a conversation that had started
        for event in session_start():
            tracker.update(event)
        await store.save(tracker)
        await guard.guarded(rasa_turn(store, lambda t: RASA_EVENTS[t]()), lambda: store)(UserMessage(text, out, "s1"))
        return [m["text"] for m in out.messages]

    assert run(scenario()) == [closing]


def test_a_restart_while_a_person_has_the_conversation_is_acknowledged_and_a_paused_turn_is_silent(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    store = InMemoryTrackerStore(Domain.empty())

    async def scenario(text: str) -> list:
        out = CollectingOutputChannel()
        tracker = await store.get_or_create_tracker("s2")
        for event in [*session_start(), UserUttered("human", {"name": "contact_human_agent"}), ConversationPaused()]:
            tracker.update(event)
        await store.save(tracker)
        events = {"/restart": RASA_EVENTS["/restart"], "still there?": lambda: [UserUttered("still there?")]}[text]
        await guard.guarded(rasa_turn(store, lambda t: events()), lambda: store)(UserMessage(text, out, "s2"))
        return [m["text"] for m in out.messages]

    assert run(scenario("still there?")) == []  # the agent answers
    assert run(scenario("/restart")) == [guard.STARTED_OVER]  # Rasa restarts even a paused conversation


def test_a_failed_turn_is_apologised_for_whatever_the_tracker_says(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    store = InMemoryTrackerStore(Domain.empty())

    async def broken(message: UserMessage) -> None:
        await rasa_turn(store, lambda t: RASA_EVENTS["/restart"]())(message)
        raise RuntimeError("the broker failed after the restart")

    out = CollectingOutputChannel()
    run(guard.guarded(broken, lambda: store)(UserMessage("/restart", out, "s3")))
    assert [m["text"] for m in out.messages] == [guard.APOLOGY]


def test_a_turn_that_fails_after_answering_still_ends_in_the_apology(monkeypatch) -> None:
    """The bot answered, then the tracker store could not save the turn: the customer saw a normal
    answer to a message the conversation does not hold (the PostgreSQL restart under load, issue 23)."""
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)

    async def answered_then_failed(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "Order #190001 is on its way.")
        raise RuntimeError("the tracker store could not save the turn")

    out = CollectingOutputChannel()
    run(guard.guarded(answered_then_failed)(UserMessage("where is 190001", out, "s4")))
    assert [m["text"] for m in out.messages] == ["Order #190001 is on its way.", guard.APOLOGY]


def test_guarded_passes_replies_through_and_cleans_the_message(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    seen = {}

    async def echo(message: UserMessage) -> None:
        seen["text"], seen["metadata"] = message.text, message.metadata
        await message.output_channel.send_text_message(message.sender_id, "hi!")

    out = CollectingOutputChannel()
    run(guard.guarded(echo)(UserMessage("  hey\x00 ", out, "s1", metadata="not a dict")))
    assert [m["text"] for m in out.messages] == ["hi!"]
    assert seen["text"] == "hey" and set(seen["metadata"]) == {"concierge"}  # only the server's signed claims


def test_guarded_names_the_language_a_message_is_clearly_written_in(monkeypatch) -> None:
    """Where the client names no language (REST, messaging platforms), a clear script does; the client's wins."""
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    seen = []

    async def echo(message: UserMessage) -> None:
        seen.append(message.metadata.get("language"))
        await message.output_channel.send_text_message(message.sender_id, "ok")

    out = CollectingOutputChannel()
    for text, metadata in [("can you answer me in English please", None), ("我的订单到哪了", None), ("190003", None),
                           ("can you answer me in English please", {"language": "zh"})]:
        run(guard.guarded(echo)(UserMessage(text, out, "s9", metadata=metadata)))
    assert seen == ["en", "zh", None, "zh"]


def test_guarded_makes_no_call_to_record_the_turn() -> None:
    """Recording goes through Rasa's event broker (bot/crm), never through the channel (issue 17)."""
    from pathlib import Path

    source = "".join(path.read_text() for path in Path(guard.__file__).parent.glob("*.py"))  # every channel
    assert "def guarded(" in source
    assert "crm_post" not in source and "/concierge/" not in source


def test_rasa_runtime_code_never_imports_bot() -> None:
    import ast
    from pathlib import Path

    root = Path(concierge_rasa.__file__).resolve().parent  # the whole Rasa-runtime package
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "bot" or n.startswith(("bot.", "actions")) for n in names), path


def test_counting_channel_keeps_the_texts_it_forwards() -> None:
    out = CollectingOutputChannel()
    counter = guard.CountingOutputChannel(out)
    run(counter.send_text_message("s1", "first"))
    run(counter.send_response("s1", {"text": "second", "buttons": []}))
    run(counter.send_response("s1", {"image": "x.png"}))
    assert counter.count == 3 and counter.texts == ["first", "second"]
    assert [m.get("text") for m in out.messages] == ["first", "second", None]


def test_socket_session_id_accepts_only_short_printable_ids() -> None:
    assert socket_channel.socket_session_id("3f2a9c0d1e") == "3f2a9c0d1e"
    assert socket_channel.socket_session_id("  web-42:alice@shop.example ") == "web-42:alice@shop.example"
    assert socket_channel.socket_session_id("x" * guard.MAX_SENDER_CHARS) == "x" * guard.MAX_SENDER_CHARS
    for bad in ("x" * (guard.MAX_SENDER_CHARS + 1), "", "a b", "a\nb", "ü", "../../etc", None, 42, ["a"], b"abc"):
        assert socket_channel.socket_session_id(bad) is None, bad


def test_socket_metadata_reads_objects_and_json_text_only() -> None:
    assert socket_channel.socket_metadata({"customer_token": "t"}) == {"customer_token": "t"}
    assert socket_channel.socket_metadata('{"customer_token": "t"}') == {"customer_token": "t"}
    assert socket_channel.socket_metadata(b'{"customer_token": "t"}') == {"customer_token": "t"}
    for bad in (None, "", "{broken", "[1, 2]", '"text"', b"\xff\xfe", ["a"], 7, "[" * 100_000):
        assert socket_channel.socket_metadata(bad) == {}, str(bad)[:20]
    too_long = '{"k": "' + "v" * socket_channel.MAX_METADATA_JSON_CHARS + '"}'
    assert socket_channel.socket_metadata(too_long) == {}


def test_parse_user_uttered_reads_rasa_webchat_payloads() -> None:
    payload = {"message": " where is\x00 my order? ", "session_id": "abc", "customData": {"customer_token": "t"}}
    got = socket_channel.parse_user_uttered(payload, "customData")
    assert got == socket_channel.SocketUtterance("where is my order?", "abc", {"customer_token": "t"})
    assert socket_channel.parse_user_uttered({}, "customData") == socket_channel.SocketUtterance("", None, {})
    assert socket_channel.parse_user_uttered({"message": b"hi", "session_id": "x y"}, "customData").text == "hi"
    assert socket_channel.parse_user_uttered({"message": 190001}, "metadata").text == "190001"
    long = socket_channel.parse_user_uttered({"message": "a" * 100_000}, "customData")
    assert len(long.text) == guard.MAX_TEXT_CHARS
    for bad in (None, "hi", b"hi", ["hi"], 3, {"message": {"text": "hi"}}, {"message": ["hi"]}):
        assert socket_channel.parse_user_uttered(bad, "customData") is None, bad


def test_socketio_jwt_check_keeps_rasas_rule() -> None:
    import jwt

    key = "k" * 32
    open_channel = socket_channel.ConciergeSocketIOInput()
    assert open_channel.authorised(None) is True
    locked = socket_channel.ConciergeSocketIOInput.from_credentials({"jwt_key": key})
    assert locked.authorised({"token": jwt.encode({"user": "shop"}, key, algorithm="HS256")}) is True
    assert locked.authorised({"token": jwt.encode({"user": "shop"}, "x" * 32, algorithm="HS256")}) is False
    for bad in (None, {}, {"token": ""}, {"token": 5}, {"token": "not-a-jwt"}, "token", ["token"]):
        assert locked.authorised(bad) is False, bad


def test_the_channels_own_texts_follow_the_conversations_language(monkeypatch) -> None:
    """A Chinese conversation gets the apology, the acknowledgements and the slow-down in Chinese: from the
    tracker's language slot, else the message's metadata, else its script."""
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    domain = Domain.from_dict({"slots": {"language": {"type": "categorical", "values": ["en", "zh"],
                                                      "influence_conversation": False,
                                                      "mappings": [{"type": "custom"}]}}})
    store = InMemoryTrackerStore(domain)

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("action server down")

    def said(handler: Callable, text: str, sender: str, metadata: dict | None = None) -> list:
        out = CollectingOutputChannel()
        run(guard.guarded(handler, lambda: store)(UserMessage(text, out, sender, metadata=metadata)))
        return [m["text"] for m in out.messages]

    assert said(broken, "我的订单到哪了", "z1") == [guard.in_language(guard.APOLOGY, "zh")]
    assert said(broken, "190003", "z2", {"language": "zh-CN"}) == [guard.in_language(guard.APOLOGY, "zh")]
    assert said(broken, "where is my order please", "z3") == [guard.APOLOGY]

    async def chinese_conversation() -> None:
        tracker = await store.get_or_create_tracker("z4")
        for event in [*session_start(), SlotSet("language", "zh"), UserUttered("你好", {"name": "greet"})]:
            tracker.update(event)
        await store.save(tracker)

    run(chinese_conversation())
    silent = said(rasa_turn(store, lambda t: [UserUttered(t)]), "190003", "z4")  # no script: the slot says zh
    assert silent == [guard.in_language(guard.APOLOGY, "zh")] and silent != [guard.APOLOGY]
    restart = said(rasa_turn(store, lambda t: RASA_EVENTS["/restart"]()), "/restart", "z5", {"language": "zh"})
    assert restart == ["好的，我们重新开始。请问有什么可以帮您？"]  # the slot is gone: the widget's metadata says zh
    assert guard.in_language(POLITE_SLOW_DOWN, guard.message_language("等等", None)).startswith("您发得太快了")
    assert guard.in_language(POLITE_SLOW_DOWN, guard.message_language("wait", {"language": "en"})) == POLITE_SLOW_DOWN
