"""Intent names that several layers read (the CRM's outcome rules, the dashboard's fallback rate).

A module with no imports, below every package of ``bot``: the CRM ingestor, the services and
the analytics can all import it without importing each other.
"""

from __future__ import annotations

# NLU intents that mean "the bot did not understand the customer"
FALLBACK_INTENTS = frozenset({"nlu_fallback"})
