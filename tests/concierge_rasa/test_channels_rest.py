"""The REST channel (concierge_rasa/channels/rest.py) on a real Sanic server: what a body must hold."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from concierge_rasa.channels.rest import ConciergeRestInput


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTION_ENDPOINT_URL", raising=False)
    # Sanic rewrites its HTTP methods once per process unless in test mode (one app per test here)
    monkeypatch.setattr(Sanic, "test_mode", True)


async def post_all(bodies: list[bytes]) -> tuple[list[tuple[int, Any]], list[UserMessage]]:
    """Posts each body to the channel's webhook, mounted as `rasa run` mounts it; (status, JSON) each."""
    seen: list[UserMessage] = []

    async def bot(message: UserMessage) -> None:
        seen.append(message)
        await message.output_channel.send_text_message(message.sender_id, "hi")

    app = Sanic(f"rest-test-{uuid.uuid4().hex[:8]}")
    app.blueprint(ConciergeRestInput().blueprint(bot), url_prefix="/webhooks/rest")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.start_serving()
    try:
        async with aiohttp.ClientSession() as http:
            out = []
            for body in bodies:
                async with http.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
                    out.append((resp.status, await resp.json(content_type=None)))
            return out, seen
    finally:
        server.close()
        await server.wait_closed()


def run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("sender", [True, False, 5, 0, 1.5, None, {"id": "a"}, ["a"], "", "  "])
def test_a_sender_that_is_not_a_string_gets_a_400_with_a_reason(sender: Any) -> None:
    """JSON true/false and numbers used to become the shared conversations "True", "False", "5"."""
    replies, seen = run(post_all([json.dumps({"sender": sender, "message": "hi"}).encode()]))
    assert replies == [(400, {"error": "'sender' must be a non-empty string."})]
    assert seen == []  # never reached the bot


def test_a_string_sender_is_one_conversation() -> None:
    replies, seen = run(post_all([json.dumps({"sender": " alice-1 ", "message": "hi"}).encode()]))
    assert replies == [(200, [{"recipient_id": "alice-1", "text": "hi"}])]
    assert [(m.sender_id, m.text, m.input_channel) for m in seen] == [("alice-1", "hi", "rest")]
