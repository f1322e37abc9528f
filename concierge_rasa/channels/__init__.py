"""Concierge's input channels for the Rasa server (Rasa runtime only: nothing here imports ``bot``).

Rasa loads each channel by the dotted class path listed in ``credentials.yml``
(``concierge_rasa.channels.rest.ConciergeRestInput``, ...); the webhook of channel ``<name>`` is
``/webhooks/<name>/webhook``.

Layout:

* ``guard.py``: what every channel does with a turn (:func:`~concierge_rasa.channels.guard.guarded`:
  clean text, only the metadata the channels define, replaced by signed server claims, a
  per-sender limit, and at least one reply);
* ``rest.py``, ``socketio.py``: the website's channels (REST webhook, rasa-webchat's socket.io);
* ``webhooks.py``: what the messaging webhooks share (settings from credentials or the
  environment, 4xx/503 answers, each platform's signature check, the replay cache, numbered
  options for platforms without buttons);
* ``slack.py``, ``telegram.py``, ``twilio.py`` (SMS and WhatsApp), ``messenger.py`` (Facebook):
  one module per messaging platform, each a subclass of Rasa's connector.

Adding a channel:

1. A module ``<platform>.py`` with a subclass of Rasa's ``InputChannel`` (or of its connector for
   that platform) whose ``name()`` is the URL name and whose ``blueprint()`` wraps Rasa's handler
   in ``guarded()``. Never build metadata from the platform's payload (it could carry a website
   ``customer_token``); the platform user id only names the conversation.
2. Verify every inbound request before it reaches ``guarded()``: the platform's signature
   algorithm goes in ``webhooks.py`` as a pure function (tested against the platform's documented
   example), compared in constant time (``hmac.compare_digest``, ``secrets_match``); refuse replays
   with a ``ReplayGuard``; answer ``disabled()`` (503) while its secrets are missing, so
   ``credentials.yml`` can list it without stopping the server.
3. Options through ``setting()`` (credentials.yml first, then an environment variable), an
   ``api_url`` option for the platform's API, and the class in ``credentials.yml`` and in
   :data:`CHANNEL_CLASSES` below.
4. Tests: the pure checks in ``tests/concierge_rasa/test_messaging.py``, real webhooks against a
   real Rasa server in ``tests/e2e/test_messaging.py``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # the package itself stays light: a channel's module is imported when it is used
    from rasa.core.channels.channel import InputChannel

# channel name (``InputChannel.name()``, the URL) -> "<module>.<class>" in this package
CHANNEL_CLASSES: dict[str, str] = {
    "rest": "rest.ConciergeRestInput",
    "socketio": "socketio.ConciergeSocketIOInput",
    "slack": "slack.ConciergeSlackInput",
    "telegram": "telegram.ConciergeTelegramInput",
    "twilio": "twilio.ConciergeTwilioInput",
    "facebook": "messenger.ConciergeFacebookInput",
}
MESSAGING_CHANNELS = ("slack", "telegram", "twilio", "facebook")


def _load(path: str) -> type[InputChannel]:
    module, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_channel_class(name: str) -> Optional[type[InputChannel]]:
    """The channel class for a short name (``rest``, ``slack``, ...), or None (used in tests and docs)."""
    path = CHANNEL_CLASSES.get(name)
    return _load(path) if path else None


def __getattr__(name: str) -> Any:  # noqa: ANN401 - a class or AttributeError
    """``concierge_rasa.channels.<Class>`` keeps loading for credentials files written before the
    package split (they named ``concierge_rasa.channels.ConciergeRestInput``)."""
    for path in CHANNEL_CLASSES.values():
        if path.rpartition(".")[2] == name:
            return _load(path)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
