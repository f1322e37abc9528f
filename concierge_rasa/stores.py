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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import sqlalchemy as sa
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import event as sa_event
from sqlalchemy.pool import SingletonThreadPool

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


def _tune(owner: Any) -> None:
    """SQLite: the pragmas on each connection, and connections kept (one per thread) instead of
    SQLAlchemy 1.4's NullPool for files, which opened a new connection, with its pragmas, on every
    write (issue 24: part of the ~26% of the Rasa process's CPU spent by the writer thread)."""
    engine = owner.engine
    if engine.dialect.name != "sqlite":
        return
    if engine.url.database in (None, "", ":memory:"):
        sa_event.listen(engine, "connect", _sqlite_pragmas)
    else:
        kept = sa.create_engine(engine.url, poolclass=SingletonThreadPool)
        sa_event.listen(kept, "connect", _sqlite_pragmas)
        owner.engine = kept
        owner.sessionmaker.configure(bind=kept)
    engine.dispose()  # connections opened while creating the tables reopen with the pragmas


class SQLiteEventBroker(SQLEventBroker):
    """Rasa's SQL event broker; a turn's events go in one transaction (``publish_many``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self)

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

    Cost (issue 24): the writer keeps its connection, takes every save queued when it wakes as one
    batch (one commit for the tracker, one ``publish_many`` for the broker), and knows how many
    events each conversation's current session has stored after its own write, so it runs Rasa's
    COUNT query only when it does not know: the first save of a conversation in this process,
    after a session starts (Rasa's count is of the events since the latest ``SessionStarted``),
    after a failed write, or when a tracker is shorter than the count. The count is this
    process's: the embedded profile runs one Rasa process on the file (several processes on one
    tracker file are not a supported set-up; production uses PostgreSQL and Rasa's own store).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concierge-tracker-writer")
        self._pending: dict[str, Future[None]] = {}  # the last queued save of each conversation
        self._pending_lock = threading.Lock()
        self._queue: deque[tuple[str, list[Any], Future[None]]] = deque()
        self._stored: dict[str, int] = {}  # writer thread only: events stored in the current session

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Queues the tracker's new events for the writer thread (a snapshot: later turns do not leak in)."""
        sender_id = tracker.sender_id
        future: Future[None] = Future()
        with self._pending_lock:
            self._queue.append((sender_id, list(tracker.events), future))
            self._pending[sender_id] = future
            self._writer.submit(self._drain)
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

    def _drain(self) -> None:
        """On the writer thread: every save queued so far, as one batch (later drains find none)."""
        with self._pending_lock:
            batch = list(self._queue)
            self._queue.clear()
        if not batch:
            return
        try:
            published = self._write_batch([(sender_id, events) for sender_id, events, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every save of the batch hears it
            for sender_id, _, future in batch:
                self._stored.pop(sender_id, None)  # unknown now: counted again next time
                future.set_exception(exc)
            return
        try:
            self._publish(published)
        except Exception as exc:  # noqa: BLE001 - stored but not published: the saves' callers hear it
            for _, _, future in batch:
                future.set_exception(exc)
            return
        for _, _, future in batch:
            future.set_result(None)

    def _write_batch(self, saves: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """Stores, in one transaction, the events the database does not have yet; returns them as
        the broker's bodies, in order."""
        bodies: list[dict[str, Any]] = []
        counts: dict[str, Optional[int]] = {}
        with self.session_scope() as session:
            for sender_id, events in saves:
                stored = counts.get(sender_id, self._stored.get(sender_id))
                if stored is None or stored > len(events):
                    # Rasa's count (autoflush: it sees this batch's earlier rows of the conversation)
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
                    bodies.append({"sender_id": sender_id, **data})
                # a new session changes what Rasa counts (events since its SessionStarted): ask again
                counts[sender_id] = (
                    None if any(isinstance(e, SessionStarted) for e in new_events) else stored + len(new_events)
                )
            session.commit()
        for sender_id, count in counts.items():
            if count is None:
                self._stored.pop(sender_id, None)
            else:
                self._stored[sender_id] = count
        return bodies

    def _publish(self, bodies: list[dict[str, Any]]) -> None:
        broker: Optional[Any] = self.event_broker
        if broker is None or not bodies:
            return
        if hasattr(broker, "publish_many"):
            broker.publish_many(bodies)
        else:
            for body in bodies:
                broker.publish(body)
