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

The production profile (several replicas on one PostgreSQL database, RabbitMQ) has its own pair,
``PostgreSQLTrackerStore`` and ``PikaEventBroker``: the same savings, with every save committed
before ``save`` returns (the next message may be handled by another replica)::

    tracker_store: {type: concierge_rasa.stores.PostgreSQLTrackerStore, dialect: postgresql, url: ...}
    event_broker:  {type: concierge_rasa.stores.PikaEventBroker, url: ..., queues: [...]}

With that pair, events reach RabbitMQ through an outbox (``OutboxRelay``): a save writes its events
and their broker messages in one transaction, and a relay publishes the messages with publisher
confirms and deletes each once RabbitMQ has it. A broker that is down, or a replica killed before it
published, loses no event: the messages wait in PostgreSQL and any replica's relay sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import aio_pika
import aiormq
import sqlalchemy as sa
from rasa.core.brokers.pika import PikaEventBroker as RasaPikaEventBroker
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import FailSafeTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import event as sa_event
from sqlalchemy.pool import SingletonThreadPool

from concierge_rasa.retry import while_unreachable

logger = logging.getLogger(__name__)

# The production pair's outbox: the broker messages of stored events not yet confirmed by RabbitMQ.
OUTBOX = sa.Table(
    "concierge_event_outbox",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
OUTBOX_LOCK_KEY = 0x436F6E63  # pg advisory lock: one relay at a time publishes, so messages keep their order


MAX_KNOWN_COUNTS = 10_000  # conversations whose stored-event count a store keeps (a saving, not a record)

UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)  # the link to the database failed


def _raise(error: Exception) -> None:
    raise error


def fail_loudly(store: Optional[TrackerStore]) -> None:
    """Makes Rasa's ``FailSafeTrackerStore`` (every agent's wrapper) raise instead of hiding a failure.

    Why (issue 23, the PostgreSQL restart under load): on an error it answered ``retrieve`` with None,
    so Rasa began a brand-new conversation for the customer, and kept ``save`` in process memory, so
    the turn never reached the database, while the customer saw a normal answer. Raised, the error
    reaches the channels' guard, which apologises: the customer knows to say it again, and nothing
    is stored that the database does not hold. Idempotent; other stores are left alone.
    """
    if isinstance(store, FailSafeTrackerStore) and getattr(store, "_concierge_loud", False) is False:
        store.on_tracker_store_error = _raise  # type: ignore[method-assign]
        store.on_tracker_store_retrieve_error = _raise  # type: ignore[method-assign]
        store._concierge_loud = True  # type: ignore[attr-defined]


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
        """One multi-row insert (issue 24: the ORM's unit of work cost more than the rows)."""
        if not events:
            return
        with self.session_scope() as session:
            session.execute(
                sa.insert(self.SQLBrokerEvent.__table__),
                [{"sender_id": e.get("sender_id"), "data": json.dumps(e)} for e in events],
            )
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
    batch (one commit for the tracker, one ``publish_many`` for the broker, each a multi-row
    insert), and knows how many events each conversation's current session has stored, from its
    own writes and from the rows the turn's ``retrieve`` read, so it runs Rasa's COUNT query only
    when it does not know: a conversation saved without a retrieve before (the HTTP API's), after a
    session starts (Rasa's count is of the events since the latest ``SessionStarted``), after a
    failed write, or when a tracker is shorter than the count. The count is this
    process's: the embedded profile runs one Rasa process on the file (several processes on one
    tracker file are not a supported set-up; production uses PostgreSQLTrackerStore).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concierge-tracker-writer")
        self._pending: dict[str, Future[None]] = {}  # the last queued save of each conversation
        self._pending_lock = threading.Lock()
        # (sender id, the tracker's events, the save's future, the events a retrieve found stored)
        self._queue: deque[tuple[str, list[Any], Future[None], Optional[int]]] = deque()
        self._stored: dict[str, int] = {}  # writer thread only: events stored in the current session
        # events of the current session a retrieve read with nothing queued (handed to the writer with the next save)
        self._read_counts: dict[str, int] = {}

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Queues the tracker's new events for the writer thread (a snapshot: later turns do not leak in)."""
        sender_id = tracker.sender_id
        future: Future[None] = Future()
        with self._pending_lock:
            read = self._read_counts.pop(sender_id, None)
            self._queue.append((sender_id, list(tracker.events), future, read))
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

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        """Rasa's ``_retrieve`` (after the pending save); for the latest session it also tells the
        writer how many events are stored, so the turn's save runs no COUNT: the rows just read are
        what that COUNT would find, as nothing of the conversation is queued (checked after the read)."""
        events = _read_events(self, sender_id, fetch_events_from_all_sessions)
        if not fetch_events_from_all_sessions:
            with self._pending_lock:
                if sender_id not in self._pending:
                    if len(self._read_counts) >= MAX_KNOWN_COUNTS:  # read, never saved (API reads, closed chats)
                        self._read_counts.clear()  # only a saving: their saves count again
                    self._read_counts[sender_id] = len(events)
        if not (self.domain and events):
            return None
        return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)

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
            published = self._write_batch([(sender_id, events, read) for sender_id, events, _, read in batch])
        except Exception as exc:  # noqa: BLE001 - every save of the batch hears it
            for sender_id, _, future, _ in batch:
                self._stored.pop(sender_id, None)  # unknown now: counted again next time
                future.set_exception(exc)
            return
        try:
            self._publish(published)
        except Exception as exc:  # noqa: BLE001 - stored but not published: the saves' callers hear it
            for _, _, future, _ in batch:
                future.set_exception(exc)
            return
        for _, _, future, _ in batch:
            future.set_result(None)

    def _write_batch(self, saves: list[tuple[str, list[Any], Optional[int]]]) -> list[dict[str, Any]]:
        """Stores, in one transaction, the events the database does not have yet; returns them as
        the broker's bodies, in order."""
        bodies: list[dict[str, Any]] = []
        counts: dict[str, Optional[int]] = {}
        with self.session_scope() as session:
            for sender_id, events, read in saves:
                if sender_id in counts:  # an earlier save of this batch
                    stored = counts[sender_id]
                else:
                    stored = read if read is not None else self._stored.get(sender_id)
                if stored is None or stored > len(events):
                    # Rasa's count (same transaction: it sees this batch's earlier rows of the conversation)
                    stored = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).count()
                new_events = events[stored:]
                bodies += _add_events(self, session, sender_id, new_events)
                # a new session changes what Rasa counts (events since its SessionStarted): ask again
                counts[sender_id] = (
                    None if any(isinstance(e, SessionStarted) for e in new_events) else stored + len(new_events)
                )
            session.commit()
        if len(self._stored) >= MAX_KNOWN_COUNTS:  # conversations long over: counted again if they go on
            self._stored.clear()
        for sender_id, count in counts.items():
            if count is None:
                self._stored.pop(sender_id, None)
            else:
                self._stored[sender_id] = count
        return bodies

    def _publish(self, bodies: list[dict[str, Any]]) -> None:
        publish(self.event_broker, bodies)


def publish(broker: Optional[Any], bodies: list[dict[str, Any]]) -> None:
    """The events to the broker, in one call where it takes several (the SQL broker's one insert)."""
    if broker is None or not bodies:
        return
    if hasattr(broker, "publish_many"):
        broker.publish_many(bodies)
    else:
        for body in bodies:
            broker.publish(body)


def _add_events(store: SQLTrackerStore, session: Any, sender_id: str, events: list[Any]) -> list[dict[str, Any]]:
    """Adds the events as Rasa's ``SQLTrackerStore.save`` does (same columns, same JSON), as one
    multi-row insert instead of an ORM object per event (issue 24: the unit of work was most of the
    writer's CPU); returns the broker's bodies."""
    rows, bodies = [], []
    for event in events:
        data = event.as_dict()
        intent = data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY)
        rows.append(
            {
                "sender_id": sender_id,
                "type_name": event.type_name,
                "timestamp": data.get("timestamp"),
                "intent_name": intent,
                "action_name": data.get("name"),
                "data": json.dumps(data),
            }
        )
        bodies.append({"sender_id": sender_id, **data})
    if rows:
        session.execute(sa.insert(store.SQLEvent.__table__), rows)
    return bodies


def _read_events(store: SQLTrackerStore, sender_id: str, fetch_events_from_all_sessions: bool) -> list[dict[str, Any]]:
    """Rasa's ``_retrieve`` query, reading only the JSON column (no ORM object per row)."""
    with store.session_scope() as session:
        query = store._event_query(session, sender_id, fetch_events_from_all_sessions=fetch_events_from_all_sessions)
        return [json.loads(data) for (data,) in query.with_entities(store.SQLEvent.data)]


class PostgreSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store for the production profile: several replicas, one PostgreSQL database.

    Why (issue 24): Rasa's ``save`` first loads the whole stored conversation again and rebuilds a
    tracker from it only to find the events to publish, then runs a COUNT of the conversation's
    events to find the ones to store, then publishes each event as its own broker task. Here
    ``save`` stores the new events and publishes exactly those (after the commit, never an event
    that was not stored), a save's events as one batch (``publish_many``).

    How many events are stored, without counting: the Redis lock store serialises a conversation's
    turns across replicas, and every turn begins with ``retrieve`` under that lock, which reads the
    conversation's rows anyway; their number is what Rasa's COUNT would return until this turn's
    save. It is remembered for the very tracker object ``retrieve`` returned (a weak reference:
    the count belongs to that snapshot, not to the conversation), and moved on by each save of that
    object. A save of any other tracker object (a new conversation's, one the HTTP API built, a
    second ``retrieve`` under the same lock) runs Rasa's COUNT, as Rasa does; so does the save after
    a session start (Rasa counts the events since the latest ``SessionStarted``) or after a failed
    write. A count never outlives the turn in which it was read, so another replica's appends
    between two turns can not make it stale.

    The write runs on the event loop, as Rasa's does, and is committed when ``save`` returns: the
    lock is released after ``save``, and the next turn may run on another replica, which must find
    it. (A writer thread as in ``SQLiteTrackerStore`` was measured: the hop to the thread and back
    cost more CPU than it saved, and a save took 10 ms instead of 1; ``bench/tracker_store.py``.)

    A save or a read that finds the database unreachable (a restart, a failover) tries again for
    ``write_retry_s`` seconds (endpoints.yml, default 15) instead of losing the turn, the save counting
    the stored events again so a commit that reached the database before the link broke is not written
    twice. Past that it raises, and ``fail_loudly`` keeps Rasa's wrapper from hiding it.

    With the project's ``PikaEventBroker`` the broker messages go into the outbox table in the same
    transaction as the events, and ``OutboxRelay`` publishes them (issue 23: Rasa's broker kept the
    messages it could not publish in memory, and dropped those published while it had no exchange).
    """

    def __init__(self, *args: Any, write_retry_s: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # how long a save keeps trying while the database is unreachable (a restart, a failover)
        self.write_retry_s = float(write_retry_s)
        # sender id -> (the tracker object retrieve returned or save stored, its events stored)
        self._known: dict[str, tuple[weakref.ref[DialogueStateTracker], int]] = {}
        self._relay: Optional[OutboxRelay] = None
        if isinstance(self.event_broker, PikaEventBroker):
            _create_outbox(self.engine)
            self._relay = OutboxRelay(self.engine, self.event_broker)

    # ------------------------------------------------------------ what is stored
    def _remember(self, tracker: DialogueStateTracker, stored: Optional[int]) -> None:
        if stored is None:
            self._known.pop(tracker.sender_id, None)
        else:
            self._known[tracker.sender_id] = (weakref.ref(tracker), stored)
        if len(self._known) > MAX_KNOWN_COUNTS:  # trackers read and never saved (API reads): drop the dead ones
            self._known = {k: v for k, v in self._known.items() if v[0]() is not None}

    def _known_count(self, tracker: DialogueStateTracker) -> Optional[int]:
        known = self._known.get(tracker.sender_id)
        if known is None or known[0]() is not tracker or known[1] > len(tracker.events):
            return None
        return known[1]

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        """Rasa's ``_retrieve``; for the latest session it also remembers how many rows it read."""
        if self._relay is not None:
            self._relay.start()  # a replica that only reads still sends what dead replicas left
        events = await self._retrying(self._read, sender_id, fetch_events_from_all_sessions)
        if not (self.domain and events):
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        if not fetch_events_from_all_sessions:
            self._remember(tracker, len(events))
        return tracker

    def _read(self, sender_id: str, fetch_events_from_all_sessions: bool) -> list[dict[str, Any]]:
        return _read_events(self, sender_id, fetch_events_from_all_sessions)

    async def _retrying(self, call: Any, *args: Any, what: str = "a read") -> Any:
        """``call(*args)``, tried again for ``write_retry_s`` while the database is unreachable: a turn
        that begins or ends during a restart waits for it instead of starting afresh or being lost."""
        return await while_unreachable(lambda: call(*args), lambda exc: isinstance(exc, UNREACHABLE),
                                       self.write_retry_s, f"tracker store, {what}")

    # ------------------------------------------------------------ saving
    async def save(self, tracker: DialogueStateTracker) -> None:
        """Stores the tracker's new events (committed when this returns), then publishes them."""
        known = self._known_count(tracker)
        events = list(tracker.events)
        if known is not None and known == len(events):
            return  # nothing new (Rasa would count and commit nothing)

        def write() -> tuple[list[dict[str, Any]], Optional[int]]:
            nonlocal known
            try:
                return self._write(tracker.sender_id, events, known)
            except Exception:
                # unknown now: counted again. After a broken link the commit may have reached the
                # database, so the retry counts the stored events again: nothing is written twice.
                self._remember(tracker, None)
                known = None
                raise

        bodies, stored = await self._retrying(write, what=f"the save of {tracker.sender_id}")
        self._remember(tracker, stored)
        if self._relay is not None:
            self._relay.wake()  # the messages were written with the events
        else:
            self._publish(bodies)

    def _write(
        self, sender_id: str, events: list[Any], known: Optional[int]
    ) -> tuple[list[dict[str, Any]], Optional[int]]:
        """Stores the events the database does not have yet; returns the broker's bodies and the count
        stored after it (None where a session started: Rasa counts the events since the latest one)."""
        with self.session_scope() as session:
            stored = known
            if stored is None:
                stored = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).count()
            new_events = events[stored:]
            bodies = _add_events(self, session, sender_id, new_events)
            if self._relay is not None and bodies:
                session.execute(OUTBOX.insert(), [{"sender_id": sender_id, "body": json.dumps(b)} for b in bodies])
            session.commit()
        after = None if any(isinstance(e, SessionStarted) for e in new_events) else stored + len(new_events)
        return bodies, after

    def _publish(self, bodies: list[dict[str, Any]]) -> None:
        """On the event loop (Rasa's Pika broker schedules its work there)."""
        publish(self.event_broker, bodies)


def _create_outbox(engine: sa.engine.Engine) -> None:
    """Creates the outbox table if missing (replicas starting together: one creates, the others find it)."""
    try:
        OUTBOX.create(engine, checkfirst=True)
    except sa.exc.DBAPIError:
        if not sa.inspect(engine).has_table(OUTBOX.name):
            raise


class OutboxRelay:
    """Publishes the outbox's messages to RabbitMQ in order, each deleted once RabbitMQ confirmed it.

    Why: the events of a turn are committed with their messages, so what the CRM receives can not
    differ from what the tracker store holds, whatever fails in between. A save wakes the relay; it
    also looks every ``poll_s`` for messages other replicas left (one killed before publishing, or
    one that found the broker down). A PostgreSQL advisory lock lets one relay publish at a time, in
    the order the messages were written (a conversation's turns are written in order: the lock
    store serialises them). Delivery is at least once: a relay killed between RabbitMQ's confirm and
    the delete sends that message again, and the CRM ingestor skips events it has stored.
    While RabbitMQ is unreachable the relay retries with a growing pause (up to ``max_backoff_s``);
    turns go on, and their messages wait in the table.
    """

    def __init__(
        self,
        engine: sa.engine.Engine,
        broker: PikaEventBroker,
        *,
        batch: int = 500,
        poll_s: float = 1.0,
        publish_timeout_s: float = 10.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.engine, self.broker = engine, broker
        self.batch, self.poll_s = batch, poll_s
        self.publish_timeout_s, self.max_backoff_s = publish_timeout_s, max_backoff_s
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        """Starts the relay's task on the running loop (once; again if it ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="concierge-outbox-relay")

    def wake(self) -> None:
        """A save wrote messages: publish them now rather than at the next poll."""
        self.start()
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            self._wake.clear()
            try:
                while await self.relay_once() == self.batch:
                    pass  # a full batch: there may be more
                failures = 0
            except Exception as exc:  # noqa: BLE001 - broker or database down: the messages wait
                failures += 1
                logger.warning("outbox relay: publishing failed (%s), retrying; events wait in the outbox",
                               type(exc).__name__)
                await asyncio.sleep(min(self.max_backoff_s, 0.25 * 2 ** min(failures, 8)))

    async def relay_once(self) -> int:
        """One batch: publishes up to ``batch`` messages in order and deletes those RabbitMQ confirmed.
        Returns how many it published (0 also when another replica's relay holds the lock)."""
        failure: Optional[BaseException] = None
        done: list[int] = []
        with self.engine.connect() as conn, conn.begin():
            if not conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(OUTBOX_LOCK_KEY))):
                return 0
            rows = conn.execute(
                sa.select(OUTBOX.c.id, OUTBOX.c.body).order_by(OUTBOX.c.id).limit(self.batch)
            ).all()
            for row_id, body in rows:
                try:
                    await asyncio.wait_for(self.broker.publish_confirmed(body), timeout=self.publish_timeout_s)
                except Exception as exc:  # noqa: BLE001 - the published ones are deleted, then it is raised
                    failure = exc
                    break
                done.append(row_id)
            if done:
                conn.execute(OUTBOX.delete().where(OUTBOX.c.id.in_(done)))
        if failure is not None:
            raise failure
        return len(done)


class PikaEventBroker(RasaPikaEventBroker):
    """Rasa's Pika event broker; a save's events go out in one background task, in order.

    Why (issue 24): Rasa schedules a task per event, and each task deep-copies its event (parse
    data and all) for a debug log line before publishing, also with debug logging off. Same
    messages, same exchange and queues, same keeping of unpublished events for a reconnect.
    """

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        task: asyncio.Task = self._loop.create_task(self._publish_many(list(events)))
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    async def publish_confirmed(self, body: str) -> None:
        """Publishes one message (JSON text) and returns once RabbitMQ confirmed it; raises otherwise."""
        if self._exchange is None:
            raise ConnectionError("not connected to RabbitMQ")
        message = aio_pika.Message(body.encode(), app_id=self.rasa_environment,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        confirmation = await self._exchange.publish(message, "")
        if confirmation is not None and not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise ConnectionError(f"RabbitMQ did not take the message: {type(confirmation).__name__}")

    async def _publish_many(self, events: list[dict[str, Any]]) -> None:
        if self._exchange is None:
            return  # as Rasa's publish: not connected (yet)
        for i, event in enumerate(events):
            try:
                await self._exchange.publish(self._message(event, None), "")
            except Exception:
                logger.error("publishing %d event(s) to RabbitMQ failed", len(events) - i, exc_info=True)
                if self.should_keep_unpublished_messages:
                    self._unpublished_events.extend(events[i:])
                if self.raise_on_failure:
                    await self.close()
                    raise
                return
