"""The embedded profile's SQLite tracker store and event broker: Rasa's SQL classes, made cheap.

Why: Rasa runs both on its event loop, synchronously, on every turn. Stock, with SQLite in its
default journal mode, that is one fsync'ed commit per event for the broker (about ten a turn)
plus one for the tracker, and a second full load of the tracker only to find which events are
new; under concurrent conversations every other customer waits for those writes. Here both
files use WAL with ``synchronous=NORMAL`` (a commit survives a crash of the process, no fsync
per commit), the tracker store publishes exactly the events it has just stored, and the broker
writes a turn's events in one transaction. Same tables, same rows, same JSON as Rasa's classes
(``events(id, sender_id, data)`` is what the CRM ingestor reads). Both writes run on a writer
thread behind the reply (``SQLiteTrackerStore``: what a crash can lose is said there).

endpoints.yml::

    tracker_store: {type: concierge_rasa.stores.SQLiteTrackerStore, dialect: sqlite, db: ...}
    event_broker:  {type: concierge_rasa.stores.SQLiteEventBroker, dialect: sqlite, db: ...}
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import event as sa_event

logger = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets the CRM ingestor read while Rasa writes; NORMAL skips the fsync of every commit."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # switching needs the write lock (and does not wait for it): only when the file is not WAL yet
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _tune(engine: Any) -> None:
    if engine.dialect.name == "sqlite":
        sa_event.listen(engine, "connect", _sqlite_pragmas)
        engine.dispose()  # connections opened while creating the tables reopen with the pragmas


class SQLiteEventBroker(SQLEventBroker):
    """Rasa's SQL event broker; a turn's events go in one transaction (``publish_many``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self.engine)

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        with self.session_scope() as session:
            session.add_all([self.SQLBrokerEvent(sender_id=e.get("sender_id"), data=json.dumps(e)) for e in events])
            session.commit()


class SQLiteTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, written behind the reply: ``save`` queues the write (the tracker's
    new events, then their publication to the broker) for one writer thread and returns at once.

    Why: the write and the broker's insert ran on Rasa's event loop before the reply went out,
    and every other conversation waited for them too. Correctness: the writer runs saves in the
    order they were queued; ``retrieve`` (and ``keys``) first wait for the conversation's pending
    save, so the next message of a conversation, serialised by Rasa's lock store, always sees the
    tracker its previous message saved. Durability: a clean stop (SIGTERM, Ctrl-C) drains the
    queue before the process exits (the executor's threads are joined at exit); a crash of the
    process (kill -9, out of memory) loses the saves still queued, i.e. the turns of the last
    moments whose replies were already sent (normally one per active conversation, a few ms of
    writes); a committed write survives a process crash (WAL), an OS crash may lose the last
    commits (``synchronous=NORMAL``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self.engine)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concierge-tracker-writer")
        self._pending: dict[str, Future[None]] = {}  # the last queued save of each conversation
        self._pending_lock = threading.Lock()

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Queues the tracker's new events for the writer thread (a snapshot: later turns do not leak in)."""
        sender_id = tracker.sender_id
        events = list(tracker.events)
        with self._pending_lock:
            future = self._writer.submit(self._write, sender_id, events)
            self._pending[sender_id] = future
        future.add_done_callback(functools.partial(self._saved, sender_id))

    def _saved(self, sender_id: str, future: Future[None]) -> None:
        with self._pending_lock:
            if self._pending.get(sender_id) is future:
                del self._pending[sender_id]
        if not future.cancelled() and future.exception() is not None:
            logger.error("storing the tracker of a conversation failed", exc_info=future.exception())

    async def _wait_saved(self, sender_id: Optional[str] = None) -> None:
        with self._pending_lock:
            if sender_id is None:
                futures = list(self._pending.values())
            else:
                futures = [f for f in (self._pending.get(sender_id),) if f is not None]
        if futures:  # a failed save was logged by _saved; what is stored is read after this
            await asyncio.wait([asyncio.wrap_future(f) for f in futures])

    def flush(self, timeout: Optional[float] = None) -> None:
        """Blocks until every queued save is written (tests, shutdown hooks)."""
        self._writer.submit(lambda: None).result(timeout=timeout)

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        await self._wait_saved(sender_id)
        return await super().retrieve(sender_id)

    async def retrieve_full_tracker(self, conversation_id: str) -> Optional[DialogueStateTracker]:
        await self._wait_saved(conversation_id)
        return await super().retrieve_full_tracker(conversation_id)

    async def keys(self) -> Any:
        await self._wait_saved()
        return await super().keys()

    def _write(self, sender_id: str, events: list[Any]) -> None:
        """On the writer thread: stores the events the database does not have yet, then publishes them."""
        with self.session_scope() as session:
            stored = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).count()
            new_events = events[stored:]
            for event in new_events:
                data = event.as_dict()
                intent = data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY)
                session.add(
                    self.SQLEvent(
                        sender_id=sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=intent,
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()
        self._publish(sender_id, new_events)

    def _publish(self, sender_id: str, new_events: list[Any]) -> None:
        broker: Optional[Any] = self.event_broker
        if broker is None or not new_events:
            return
        bodies = [{"sender_id": sender_id, **e.as_dict()} for e in new_events]
        if hasattr(broker, "publish_many"):
            broker.publish_many(bodies)
        else:
            for body in bodies:
                broker.publish(body)
