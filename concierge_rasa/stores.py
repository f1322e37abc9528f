"""The embedded profile's SQLite tracker store and event broker: Rasa's SQL classes, made cheap.

Why: Rasa runs both on its event loop, synchronously, on every turn. Stock, with SQLite in its
default journal mode, that is one fsync'ed commit per event for the broker (about ten a turn)
plus one for the tracker, and a second full load of the tracker only to find which events are
new; under concurrent conversations every other customer waits for those writes. Here both
files use WAL with ``synchronous=NORMAL`` (a commit survives a crash of the process, no fsync
per commit), the tracker store publishes exactly the events it has just stored, and the broker
writes a turn's events in one transaction. Same tables, same rows, same JSON as Rasa's classes
(``events(id, sender_id, data)`` is what the CRM ingestor reads).

endpoints.yml::

    tracker_store: {type: concierge_rasa.stores.SQLiteTrackerStore, dialect: sqlite, db: ...}
    event_broker:  {type: concierge_rasa.stores.SQLiteEventBroker, dialect: sqlite, db: ...}
"""

from __future__ import annotations

import json
import logging
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
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
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
            session.add_all(
                [self.SQLBrokerEvent(sender_id=e.get("sender_id"), data=json.dumps(e)) for e in events]
            )
            session.commit()


class SQLiteTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store that publishes the events it has just stored (no second load)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune(self.engine)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Stores the events the database does not have yet, then publishes the same events."""
        with self.session_scope() as session:
            new_events = list(self._additional_events(session, tracker))
            for event in new_events:
                data = event.as_dict()
                intent = data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY)
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=intent,
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()
        self._publish(tracker.sender_id, new_events)

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
