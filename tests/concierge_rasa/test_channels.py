"""The hardened channels (Rasa runtime, Python 3.10): input cleaning and the reply guarantee."""

from __future__ import annotations

import asyncio

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from concierge_rasa import channels


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_clean_text_bounds_and_strips_control_characters() -> None:
    assert channels.clean_text(None) == ""
    assert channels.clean_text(b"hi\x00 there") == "hi there"
    assert channels.clean_text("  where\x07 is it?\n") == "where is it?"
    assert len(channels.clean_text("a" * 50_000)) == channels.MAX_TEXT_CHARS
    assert channels.clean_text("😀 ¿dónde?") == "😀 ¿dónde?"
    assert channels.clean_text(12345) == "12345"


def test_clean_metadata_keeps_only_a_small_dict() -> None:
    assert channels.clean_metadata("token") == {}
    assert channels.clean_metadata([1, 2]) == {}
    cleaned = channels.clean_metadata({"customer_token": "x" * 10_000, 5: "bad", "k" * 100: 1})
    assert list(cleaned) == ["customer_token"] and len(cleaned["customer_token"]) == 4096


def test_guarded_apologises_when_the_turn_fails(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("CONCIERGE_CRM_URL", raising=False)

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("action server down")

    out = CollectingOutputChannel()
    run(channels.guarded(broken)(UserMessage("hello", out, "s1")))
    assert [m["text"] for m in out.messages] == [channels.APOLOGY]


def test_guarded_apologises_when_nothing_was_said(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)

    async def silent(message: UserMessage) -> None:
        return None

    out = CollectingOutputChannel()
    run(channels.guarded(silent)(UserMessage("hello", out, "s1")))
    assert [m["text"] for m in out.messages] == [channels.APOLOGY]


def test_guarded_passes_replies_through_and_cleans_the_message(monkeypatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    seen = {}

    async def echo(message: UserMessage) -> None:
        seen["text"], seen["metadata"] = message.text, message.metadata
        await message.output_channel.send_text_message(message.sender_id, "hi!")

    out = CollectingOutputChannel()
    run(channels.guarded(echo)(UserMessage("  hey\x00 ", out, "s1", metadata="not a dict")))
    assert [m["text"] for m in out.messages] == ["hi!"]
    assert seen == {"text": "hey", "metadata": {}}


def test_crm_url_sits_next_to_the_action_server(monkeypatch) -> None:
    monkeypatch.delenv("CONCIERGE_CRM_URL", raising=False)
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:5055/webhook")
    assert channels.crm_url() == "http://127.0.0.1:5055/concierge"
    monkeypatch.setenv("CONCIERGE_CRM_URL", "http://crm:9000/x/")
    assert channels.crm_url() == "http://crm:9000/x"
    monkeypatch.delenv("CONCIERGE_CRM_URL")
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "")
    assert channels.crm_url() is None


def test_rasa_runtime_code_never_imports_bot() -> None:
    import ast
    from pathlib import Path

    root = Path(channels.__file__).resolve().parent
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
    counter = channels.CountingOutputChannel(out)
    run(counter.send_text_message("s1", "first"))
    run(counter.send_response("s1", {"text": "second", "buttons": []}))
    run(counter.send_response("s1", {"image": "x.png"}))
    assert counter.count == 3 and counter.texts == ["first", "second"]
    assert [m.get("text") for m in out.messages] == ["first", "second", None]
