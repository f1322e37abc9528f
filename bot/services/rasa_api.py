"""Rasa's HTTP API as the console uses it: an agent's reply, pause/resume, the CSAT question.

Why through Rasa: the reply goes out on the channel the customer is using (``output_channel=latest``
with ``execute_side_effects``: socket.io pushes it to the widget) and lands in the tracker and the
event stream, so the CRM records it like any bot turn. The API runs only on localhost with
``--enable-api --auth-token``; the token (RASA_API_TOKEN) is sent as Rasa expects, in the query
string, and never logged.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests

from bot.services.errors import ServiceError
from bot.settings import Settings

TIMEOUT_S = 15
TRACKER_TIMEOUT_S = 5  # reading a tracker for the console page
PERSON_KEY = "from_person"  # metadata of a bot event written by a person


class RasaUnavailable(ServiceError):
    code = "rasa_unavailable"
    message = "The chat server didn't accept that; the customer hasn't received it. Try again in a moment."


def _post(settings: Settings, path: str, body: Any, **params: str) -> Any:
    if not settings.rasa_api_token:
        raise RasaUnavailable("no_token", "RASA_API_TOKEN is not set: the console cannot reach the chat.")
    url = f"{settings.rasa_api_url}{path}"
    try:
        resp = requests.post(url, json=body, params={**params, "token": settings.rasa_api_token}, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise RasaUnavailable() from exc
    if resp.status_code >= 300:
        raise RasaUnavailable(f"http_{resp.status_code}")
    return resp.json() if resp.content else None


def tracker_events(settings: Settings, sender_id: str) -> list[dict[str, Any]]:
    """Every event of the conversation's tracker (``include_events=ALL``, so positions never shift).

    Why: the console shows the agent handling a conversation what was really said (the address the
    customer typed, the city of a tracking update); the CRM keeps only a redacted copy. A short
    timeout: the page falls back to that copy rather than hang on a stuck chat server.
    """
    if not settings.rasa_api_token:
        raise RasaUnavailable("no_token", "RASA_API_TOKEN is not set: the console cannot reach the chat.")
    url = f"{settings.rasa_api_url}/conversations/{quote(sender_id, safe='')}/tracker"
    try:
        resp = requests.get(url, params={"include_events": "ALL", "token": settings.rasa_api_token},
                            timeout=TRACKER_TIMEOUT_S)
        body = resp.json() if resp.status_code < 300 else None
    except (requests.RequestException, ValueError) as exc:
        raise RasaUnavailable("unreachable", "The chat server can't be reached.") from exc
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        raise RasaUnavailable(f"http_{resp.status_code}", "The chat server didn't return the conversation.")
    return [e for e in events if isinstance(e, dict)]


def _listen_event() -> dict[str, Any]:
    """The bot waits for the customer, as after any of its turns (the policies expect it)."""
    return {"event": "action", "timestamp": time.time(), "name": "action_listen"}


def _events_path(sender_id: str) -> str:
    return f"/conversations/{quote(sender_id, safe='')}/tracker/events"


def agent_label(display_name: str) -> str:
    return f"{display_name} (support)"


def send_agent_reply(settings: Settings, sender_id: str, agent_name: str, text: str) -> None:
    """The agent's message to the customer, marked as from a person with the agent's name."""
    event = {
        "event": "bot",
        "timestamp": time.time(),
        "text": f"{agent_label(agent_name)}: {text}",
        "metadata": {PERSON_KEY: True, "agent": agent_name},
    }
    _post(settings, _events_path(sender_id), [event], output_channel="latest", execute_side_effects="true")


def resume(settings: Settings, sender_id: str, message: str, *, csat: bool) -> None:
    """Resumes the bot with a closing message; with ``csat`` it then asks the CSAT question (csat_form)."""
    events = [
        {"event": "resume", "timestamp": time.time()},
        {"event": "slot", "timestamp": time.time(), "name": "escalated", "value": not csat},
        {"event": "bot", "timestamp": time.time(), "text": message, "metadata": {"handoff": "closed"}},
    ]
    if not csat:  # the bot now waits for the customer, as after any of its turns (the policies expect it)
        events.append(_listen_event())
    _post(settings, _events_path(sender_id), events, output_channel="latest", execute_side_effects="true")
    if csat:
        path = f"/conversations/{quote(sender_id, safe='')}/execute"
        _post(settings, path, {"name": "csat_form"}, output_channel="latest")
        # /execute runs the form (it asks for the rating, requested_slot=csat_rating) but predicts
        # nothing after it: without action_listen the tracker's latest action is the form itself, so
        # on the customer's answer the rule policy predicts action_listen (a form that just ran waits)
        # and the "5" got no reply; the form only took the message after it.
        _post(settings, _events_path(sender_id), [_listen_event()])
