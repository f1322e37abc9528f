"""Action-server results are validated by a cached validator (concierge_rasa/action_results.py) with
Rasa's behaviour: valid results pass, invalid ones are rejected with the error jsonschema.validate
would raise, through a real RemoteAction calling a real HTTP action server."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

import concierge_rasa  # noqa: F401 - importing the package inside the Rasa runtime installs the validator
from concierge_rasa import action_results

VALID = {
    "events": [{"event": "slot", "name": "order_number", "value": "190001", "timestamp": None}],
    "responses": [{"text": "On its way"}],
}
INVALID = [
    {"events": [{"event": "no_such_event"}], "responses": []},  # unknown event type
    {"events": "not a list", "responses": []},
    {"events": [], "responses": ["a string, not an object"]},
    ["not", "an", "object"],
]


def test_installed_when_the_rasa_runtime_imports_the_package() -> None:
    assert RemoteAction._validate_action_result is action_results.validate_action_result


def test_the_validator_is_built_once_per_schema() -> None:
    spec = RemoteAction.action_response_format_spec
    assert action_results.validator_for_spec(spec) is action_results.validator_for_spec(spec)


def test_valid_results_pass() -> None:
    assert RemoteAction("action_x", None)._validate_action_result(VALID) is True
    assert RemoteAction("action_x", None)._validate_action_result({}) is True


@pytest.mark.parametrize("result", INVALID)
def test_invalid_results_raise_what_jsonschema_validate_raises(result: Any) -> None:
    with pytest.raises(jsonschema.ValidationError) as stock:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as ours:
        RemoteAction("action_x", None)._validate_action_result(result)
    assert ours.value.message.startswith(stock.value.message)
    assert "Failed to validate Action server response" in ours.value.message
    assert list(ours.value.absolute_path) == list(stock.value.absolute_path)
    assert ours.value.validator == stock.value.validator


def _run_against_server(body: Any) -> list[Any]:
    """One RemoteAction call to a real HTTP server answering ``body``; returns the action's events."""
    domain = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")
    tracker = DialogueStateTracker.from_events(
        "s1", [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet", "confidence": 1.0})], domain.slots
    )

    async def go() -> list[Any]:
        async def webhook(_request: web.Request) -> web.Response:
            return web.json_response(body)

        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port the OS chose
        try:
            action = RemoteAction("action_check", EndpointConfig(f"http://127.0.0.1:{port}/webhook"))
            return await action.run(
                CollectingOutputChannel(), TemplatedNaturalLanguageGenerator(domain.responses), tracker, domain
            )
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_a_real_action_call_with_a_valid_result_returns_its_events() -> None:
    events = _run_against_server(VALID)
    assert SlotSet("order_number", "190001") in events


def test_a_real_action_call_with_an_invalid_result_is_rejected() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _run_against_server(INVALID[0])


def test_bench_stats_count_each_action_call(tmp_path: Any) -> None:
    """CONCIERGE_BENCH_STATS (make bench-latency only): each call to the action server is counted."""
    import json

    class Counted(RemoteAction):
        pass

    path = tmp_path / "stats.json"
    action_results._count_calls(Counted, str(path))  # noqa: SLF001 - what install() does when the env is set
    domain = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")
    tracker = DialogueStateTracker.from_events("s1", [ActionExecuted("action_listen")], domain.slots)

    async def go() -> None:
        async def webhook(_request: web.Request) -> web.Response:
            return web.json_response(VALID)

        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        try:
            action = Counted("action_check", EndpointConfig(f"http://127.0.0.1:{port}/webhook"))
            for _ in range(3):
                await action.run(
                    CollectingOutputChannel(), TemplatedNaturalLanguageGenerator(domain.responses), tracker, domain
                )
        finally:
            await runner.cleanup()

    asyncio.run(go())
    stats = json.loads(path.read_text())
    assert stats["action_calls"] == 3 and stats["failed_calls"] == 0 and stats["action_wall_ms"] > 0
