"""The embedded SQLite tracker store and event broker (Rasa runtime): same rows as Rasa's SQL
classes, each event published once, right after it is stored; WAL so the CRM ingestor can read."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
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
    store.flush(timeout=30)  # the writes happen behind the reply
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


def test_save_does_not_wait_for_the_database_and_the_next_turn_sees_the_save(tmp_path: Path) -> None:
    """The write is behind the reply: with the tracker file locked by another writer, ``save``
    returns while the lock is still held (it used to block Rasa's event loop until the lock was
    gone), and a ``retrieve`` of the same conversation waits for that save and sees every event.
    Ordering, not a stopwatch: the lock is released only after ``save`` returned (a 20 s timer
    releases it if ``save`` blocks, and the test then fails); the old '< 0.5 s' bound failed on a
    loaded machine and needed a 1.5 s lock."""
    broker = SQLiteEventBroker(dialect="sqlite", db=str(tmp_path / "events.db"))
    domain = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")
    store = SQLiteTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"), event_broker=broker)
    tracker = DialogueStateTracker.from_events("s2", [ActionExecuted("action_listen")], domain.slots)
    tracker.update(UserUttered("where is 190001?", {"name": "track_order", "confidence": 0.9}))
    tracker.update(SlotSet("order_number", "190001"))

    assert asyncio.run(store.retrieve("s2")) is None  # the store's first connection (the file turns WAL)
    blocker = sqlite3.connect(tmp_path / "tracker.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
    lock = threading.Lock()
    released = threading.Event()

    def release() -> None:
        with lock:
            if not released.is_set():
                blocker.execute("COMMIT")
                released.set()

    safety = threading.Timer(20, release)  # only if save blocks: then the assertion below fails
    safety.start()

    async def turn() -> tuple[bool, object, list[str]]:
        await store.save(tracker)
        held_when_save_returned = not released.is_set()
        tracker.update(BotUttered("not saved yet"))  # later changes do not leak into the queued save
        release()  # the other writer finishes; the queued save can now be written
        again = await store.retrieve("s2")
        return held_when_save_returned, again, [e.type_name for e in again.events]

    held_when_save_returned, again, kinds = asyncio.run(turn())
    safety.cancel()
    blocker.close()
    assert held_when_save_returned, "save() waited for the other writer's lock"
    assert again.get_slot("order_number") == "190001" and kinds == ["action", "user", "slot"]
    store.flush(timeout=30)
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert [json.loads(d)["event"] for (d,) in conn.execute("SELECT data FROM events")] == [
            "action",
            "user",
            "slot",
        ]


def test_a_turn_after_a_retrieve_counts_nothing_and_stores_each_event_once(tmp_path: Path) -> None:
    """Issue 24: the rows a turn's retrieve read are what Rasa's COUNT would find at that turn's save,
    so the writer runs none; the events stored are still exactly the tracker's, in order. A retrieve of
    the API (all sessions) tells the writer nothing, so a save after it, when the store knows nothing
    else (as after a restart), counts."""
    import sqlalchemy as sa

    domain = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")
    store = SQLiteTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql.lower()))

    async def turns() -> list[str]:
        assert await store.retrieve("s3") is None  # a new conversation: 0 stored
        tracker = DialogueStateTracker.from_events("s3", [ActionExecuted("action_listen")], domain.slots)
        tracker.update(UserUttered("hi", {"name": "greet", "confidence": 0.9}))
        await store.save(tracker)
        for number in ("190001", "190002"):
            tracker = await store.retrieve("s3")
            tracker.update(UserUttered(f"where is {number}?", {"name": "track_order", "confidence": 0.9}))
            tracker.update(SlotSet("order_number", number))
            tracker.update(BotUttered("On its way"))
            await store.save(tracker)
        store.flush(timeout=30)
        return [e.type_name for e in (await store.retrieve("s3")).events]

    kinds = asyncio.run(turns())
    assert kinds == ["action", "user", "user", "slot", "bot", "user", "slot", "bot"]
    assert not [s for s in statements if "count(" in s]
    with sqlite3.connect(tmp_path / "tracker.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE sender_id = 's3'").fetchone()[0] == 8

    async def api_turn() -> None:
        tracker = await store.retrieve_full_tracker("s3")  # the HTTP API's read: no count handed over
        tracker.update(BotUttered("an agent's note"))
        await store.save(tracker)
        store.flush(timeout=30)

    store._stored.clear()  # as after a restart: only a COUNT can tell
    store._read_counts.clear()
    asyncio.run(api_turn())
    assert [s for s in statements if "count(" in s]
    with sqlite3.connect(tmp_path / "tracker.db") as conn:
        assert [json.loads(d)["event"] for (d,) in conn.execute("SELECT data FROM events ORDER BY id")][-2:] == [
            "bot", "bot"]
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 9
