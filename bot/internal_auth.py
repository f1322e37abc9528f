"""The action server's gate: only the Rasa server (holder of the shared secret) may call it.

Why: an action call carries the whole tracker, so whoever can post one can claim any slot
and any metadata. Every route but ``GET /health`` needs ``Authorization: Bearer <token>``
(endpoints.yml sends it; the token is ``Settings.action_token``: CONCIERGE_ACTION_TOKEN or
var/action.key), compared in constant time. Well-formed calls only reach rasa_sdk: a body that
is not a JSON action call gets a 400 with a short reason, never a server error or a trace.
"""

from __future__ import annotations

import hmac
import json
import logging
import zlib
from typing import Any

from sanic import response

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
MAX_BODY_BYTES = 8 * 1024 * 1024  # trackers of long conversations are large; far beyond is abuse
MAX_JSON_DEPTH = 64


def bearer_ok(header: Any, token: str) -> bool:
    """True when ``header`` is exactly ``Bearer <token>`` (constant-time comparison)."""
    if not isinstance(header, str) or not token:
        return False
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest(header.strip().encode("utf-8", "replace"), expected)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping once past ``limit`` (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


# What rasa_sdk and the actions index in each kind of event (Rasa's own events always carry them):
# the key must be present and hold one of these types. Other kinds need only their "event" name.
EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "slot": {"name": (str,), "value": (object,)},  # any JSON value, but present (slots_to_validate)
    "action": {"name": (str, type(None))},  # None: an end-to-end bot text (action_text) has no name
}
OPTIONAL_EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "user": {"text": (str, type(None)), "parse_data": (dict,), "input_channel": (str, type(None))},
    "bot": {"text": (str, type(None))},
    "active_loop": {"name": (str, type(None))},
}


def _events_problem(events: list[Any]) -> str | None:
    """Why ``tracker.events`` would crash rasa_sdk or an action (``e["event"]``, ``e["name"]`` in
    Tracker.applied_events / slots_to_validate, used by every form validation); None when usable."""
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            return "'tracker.events' must hold objects"
        kind = event.get("event")
        if not isinstance(kind, str) or not kind:
            return f"'tracker.events[{i}]' has no 'event' name"
        for key, kinds in EVENT_FIELDS.get(kind, {}).items():
            if key not in event or not isinstance(event[key], kinds):
                return f"'tracker.events[{i}]' ({kind}) needs '{key}' of the right type"
        for key, kinds in OPTIONAL_EVENT_FIELDS.get(kind, {}).items():
            if key in event and not isinstance(event[key], kinds):
                return f"'tracker.events[{i}]' ({kind}) has '{key}' of the wrong type"
    return None


def _latest_message_problem(latest: Any) -> str | None:
    """Why ``tracker.latest_message`` would crash an action (``intent.get``, entities read as objects)."""
    if not isinstance(latest, dict):
        return None  # absent; a present non-object is refused with the other tracker keys
    if "intent" in latest and not isinstance(latest["intent"], dict):
        return "'tracker.latest_message.intent' must be an object"
    entities = latest.get("entities", [])
    if not isinstance(entities, list) or any(not isinstance(e, dict) for e in entities):
        return "'tracker.latest_message.entities' must be a list of objects"
    if "text" in latest and not isinstance(latest["text"], (str, type(None))):
        return "'tracker.latest_message.text' must be a string"
    return None


def action_call_problem(body: bytes, content_encoding: str | None) -> str | None:
    """Why ``body`` is not an action call rasa_sdk can run; None when it is."""
    if len(body) > MAX_BODY_BYTES:
        return "body too large"
    if (content_encoding or "").lower() == "deflate":
        try:
            inflater = zlib.decompressobj()
            body = inflater.decompress(body, MAX_BODY_BYTES)
            if inflater.unconsumed_tail:
                return "body too large"
        except zlib.error:
            return "body is not valid deflate data"
    try:
        call = json.loads(body)
    except (ValueError, RecursionError):
        return "body is not JSON"
    if not isinstance(call, dict):
        return "expected a JSON object"
    if _depth(call, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return "body is nested too deeply"
    if not isinstance(call.get("next_action"), str) or not call["next_action"]:
        return "'next_action' must be a non-empty string"
    tracker, domain = call.get("tracker"), call.get("domain", {})
    if not isinstance(tracker, dict) or not isinstance(tracker.get("sender_id"), str):
        return "'tracker' must be an object with a 'sender_id'"
    if not isinstance(domain, dict):
        return "'domain' must be an object"
    checks = {
        "slots": dict,
        "events": list,
        "latest_message": dict,
        "active_loop": dict,
    }
    for key, kind in checks.items():  # Rasa always sends these as objects/lists; null crashes rasa_sdk
        if key in tracker and not isinstance(tracker[key], kind):
            return f"'tracker.{key}' has the wrong type"
    problem = _events_problem(tracker.get("events") or []) or _latest_message_problem(tracker.get("latest_message"))
    if problem:
        return problem
    for key in ("slots", "responses", "forms"):
        if key in domain and not isinstance(domain[key], dict):
            return f"'domain.{key}' has the wrong type"
    if call.get("version") is not None and not isinstance(call["version"], str):
        return "'version' must be a string"
    return None


def install_guard(app: Any, token: str) -> None:
    """Adds the authentication and request checks to a rasa_sdk Sanic app."""
    if not token:
        raise ValueError("the action server needs a token (CONCIERGE_ACTION_TOKEN or var/action.key)")

    @app.on_request
    async def guard(request: Any) -> Any:
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if not bearer_ok(request.headers.get("authorization"), token):
            return response.json({"error": "unauthorized"}, status=401)
        if request.path == "/webhook" and request.method == "POST":
            problem = action_call_problem(request.body or b"", request.headers.get("content-encoding"))
            if problem:
                # a reason, not a traceback: only the Rasa server holds the token, so this is a bug or an attack
                logger.warning("Refused a malformed action call: %s", problem)
                return response.json({"error": f"invalid action call: {problem}"}, status=400)
        return None

    @app.on_response
    async def no_internals(request: Any, resp: Any) -> Any:
        # rasa_sdk's error handler echoes the exception and the request body: log it, never send it
        if resp.status >= 500:
            logger.error("Action server error on %s: %s", request.path, (resp.body or b"")[:2000])
            return response.json({"error": "internal error"}, status=resp.status)
        return None
