"""The embedded SQLite tracker store and event broker (Rasa runtime): same rows as Rasa's SQL
classes, each event published once, right after it is stored; WAL so the CRM ingestor can read."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from concierge_rasa.stores import SQLiteEventBroker, SQLiteTrackerStore


def test_each_new_event_is_stored_and_published_once(tmp_path: Path) -> None:
    broker = SQLiteEventBroker(dialect="sqlite", db=str(tmp_path / "events.db"))
    domain = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")
    store = SQLiteTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"), event_broker=broker)
    tracker = DialogueStateTracker.from_events("s1", [ActionExecuted("action_listen")], domain.slots)
    tracker.update(UserUttered("where is 190001?", {"name": "track_order", "confidence": 0.9}))
    asyncio.run(store.save(tracker))
    tracker.update(SlotSet("order_number", "190001"))
    tracker.update(BotUttered("On its way"))
    asyncio.run(store.save(tracker))
    asyncio.run(store.save(tracker))  # nothing new: nothing stored or published
    with sqlite3.connect(tmp_path / "events.db") as conn:
        published = [json.loads(d) for (d,) in conn.execute("SELECT data FROM events ORDER BY id")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with sqlite3.connect(tmp_path / "tracker.db") as conn:
        stored = [json.loads(d) for (d,) in conn.execute("SELECT data FROM events ORDER BY id")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [e["event"] for e in published] == ["action", "user", "slot", "bot"]
    assert [e["event"] for e in stored] == ["action", "user", "slot", "bot"]
    assert all(e["sender_id"] == "s1" for e in published)
    assert published[1]["parse_data"]["intent"]["name"] == "track_order"
    assert asyncio.run(store.retrieve("s1")).get_slot("order_number") == "190001"  # a restart finds it
