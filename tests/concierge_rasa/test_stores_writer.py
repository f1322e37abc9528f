"""The embedded tracker store's writer (issue 24): it keeps its connection, batches the queued saves
and knows each conversation's stored count instead of counting on every save; what it stores must
stay exactly what Rasa's own SQLTrackerStore stores for the same turns, sessions and restarts included."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event as sa_event

from concierge_rasa.stores import SQLiteEventBroker, SQLiteTrackerStore

DOMAIN = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")


def user(text: str) -> UserUttered:
    return UserUttered(text, {"name": "track_order", "confidence": 0.9})


def listen() -> ActionExecuted:
    return ActionExecuted("action_listen")


def new_session() -> list[Event]:
    return [ActionExecuted("action_session_start"), SessionStarted(), listen()]


# (conversation, events of the turn); None = the Rasa process restarts (a new store on the same file)
TURNS: list[Any] = [
    ("a", [listen(), user("where is 190001?"), SlotSet("order_number", "190001"), BotUttered("On its way"), listen()]),
    ("b", [listen(), user("hello"), BotUttered("Hi"), listen()]),
    ("a", [user("thanks"), BotUttered("You're welcome"), listen()]),
    ("a", []),  # a save with nothing new
    ("a", [*new_session(), user("back again"), BotUttered("Welcome back"), listen()]),
    ("b", [user("and my refund?"), BotUttered("Let me look"), listen()]),
    ("a", [user("where is 190002?"), SlotSet("order_number", "190002"), listen()]),
    None,
    ("a", [user("still there?"), BotUttered("Yes"), listen()]),
    ("b", [*new_session(), user("new day"), listen()]),
    ("b", [user("hi again"), listen()]),
]


async def play(make_store: Any) -> Any:
    store = make_store()
    for step in TURNS:
        if step is None:
            if hasattr(store, "flush"):
                store.flush(timeout=30)
            store = make_store()
            continue
        sender, events = step
        tracker = await store.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
        for e in events:
            tracker.update(e)
        await store.save(tracker)
    if hasattr(store, "flush"):
        store.flush(timeout=30)
    return store


def rows(db: Path) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT sender_id, type_name, data FROM events ORDER BY id").fetchall()
    return [(s, t, json.loads(d)) for s, t, d in found]


def test_stores_exactly_what_rasas_sql_tracker_store_stores(tmp_path: Path) -> None:
    stock_db, ours_db, events_db = tmp_path / "stock.db", tmp_path / "ours.db", tmp_path / "events.db"
    broker = SQLiteEventBroker(dialect="sqlite", db=str(events_db))
    asyncio.run(play(lambda: SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(stock_db))))
    asyncio.run(play(lambda: SQLiteTrackerStore(DOMAIN, dialect="sqlite", db=str(ours_db), event_broker=broker)))
    stock, ours = rows(stock_db), rows(ours_db)
    assert len(stock) == 34
    assert ours == stock
    with sqlite3.connect(events_db) as conn:
        published = [(s, json.loads(d)) for s, d in conn.execute("SELECT sender_id, data FROM events ORDER BY id")]
    assert published == [(s, {"sender_id": s, **d}) for s, _, d in ours]  # each stored event published once


def test_the_writer_keeps_its_connection_and_counts_once_per_conversation(tmp_path: Path) -> None:
    store = SQLiteTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    connects, counts = [], []
    sa_event.listen(store.engine, "connect", lambda *_: connects.append(threading.current_thread().name))
    sa_event.listen(
        store.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: counts.append(statement) if "count(" in statement.lower() else None,
    )

    async def turns() -> None:
        tracker = DialogueStateTracker("c", DOMAIN.slots)
        for i in range(8):
            tracker.update(user(f"message {i}"))
            tracker.update(BotUttered(f"reply {i}"))
            await store.save(tracker)
            store.flush(timeout=30)

    asyncio.run(turns())
    assert len(counts) == 1  # the first save of the conversation; after that the writer knows
    assert [n for n in connects if n.startswith("concierge-tracker-writer")] == [connects[-1]]
    assert len(rows(tmp_path / "tracker.db")) == 16


def test_saves_queued_behind_a_busy_file_are_all_written_in_order(tmp_path: Path) -> None:
    """Many saves queue up while another writer holds the file; the writer takes them as a batch and
    stores and publishes every event once, in each conversation's order."""
    events_db = tmp_path / "events.db"
    broker = SQLiteEventBroker(dialect="sqlite", db=str(events_db))
    store = SQLiteTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"), event_broker=broker)
    assert asyncio.run(store.retrieve("x")) is None  # the file exists (and is WAL) before it is locked
    blocker = sqlite3.connect(tmp_path / "tracker.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")

    async def queue() -> None:
        trackers = {s: DialogueStateTracker(s, DOMAIN.slots) for s in ("p", "q", "r")}
        for i in range(5):
            for s, tracker in trackers.items():
                tracker.update(user(f"{s}{i}"))
                await store.save(tracker)

    asyncio.run(queue())
    blocker.execute("COMMIT")
    blocker.close()
    store.flush(timeout=30)
    stored = rows(tmp_path / "tracker.db")
    for s in ("p", "q", "r"):
        assert [d["text"] for sender, _, d in stored if sender == s] == [f"{s}{i}" for i in range(5)]
    with sqlite3.connect(events_db) as conn:
        published = [json.loads(d)["text"] for (d,) in conn.execute("SELECT data FROM events ORDER BY id")]
    assert sorted(published) == sorted(d["text"] for _, _, d in stored) and len(published) == 15
