"""Where the CRM ingestor reads Rasa's events: the SQL broker's table or a RabbitMQ queue.

Both give batches of raw messages and learn about the CRM transaction in two steps:
``save_position`` runs inside it (the SQL source stores its offset there, so rows and offset
commit together) and ``ack`` runs after it committed (RabbitMQ forgets the messages only then).
A batch that could not be written is offered again, whole, by the next ``fetch``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.db import crm_ingest
from bot.db.session import session_scope

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """Raw broker messages in order, and what the source needs to confirm them."""

    messages: list[bytes | str] = field(default_factory=list)
    position: int | None = None  # SQL: the highest row id in the batch
    delivery_tag: int | None = None  # RabbitMQ: the last delivery tag


class EventSource(Protocol):
    name: str

    def fetch(self, max_events: int) -> Batch:
        """Up to ``max_events`` messages (an empty batch when there is nothing new yet)."""

    def save_position(self, session: Session, batch: Batch) -> None:
        """Inside the CRM transaction: remember that the batch is stored."""

    def ack(self, batch: Batch) -> None:
        """After the CRM transaction committed."""

    def wait(self, seconds: float) -> None:
        """Idle (keeps the source's connection alive)."""

    def close(self) -> None: ...


class SQLEventSource:
    """Rasa's SQL event broker (``events(id, sender_id, data)``), read by increasing id.

    Each read is one short SELECT in autocommit mode, so Rasa's inserts are never blocked for
    longer than that read; the offset lives in the CRM database (``crm_ingest_offsets``).
    """

    def __init__(self, path: Path | str, db_url: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.name = f"sql:{self.path}"
        self.db_url = db_url
        self._conn: sqlite3.Connection | None = None
        self._position: int | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None  # Rasa has not created its broker file yet
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            self._conn = conn
        return self._conn

    def _load_position(self) -> int:
        if self._position is None:
            with session_scope(self.db_url) as session:
                self._position = crm_ingest.get_offset(session, self.name)
        return self._position

    def fetch(self, max_events: int) -> Batch:
        conn = self._connect()
        if conn is None:
            return Batch()
        after = self._load_position()
        try:
            rows = conn.execute(
                "SELECT id, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, max_events)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return Batch()  # the file exists but Rasa has not created its table yet
            raise
        if not rows:
            return Batch()
        return Batch(messages=[data for _id, data in rows], position=int(rows[-1][0]))

    def save_position(self, session: Session, batch: Batch) -> None:
        if batch.position is not None:
            crm_ingest.set_offset(session, self.name, batch.position)

    def ack(self, batch: Batch) -> None:
        if batch.position is not None:
            self._position = batch.position

    def reset(self) -> None:
        """Forget the cached offset (re-read it from the CRM database on the next fetch)."""
        self._position = None

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PikaEventSource:
    """A RabbitMQ queue fed by Rasa's Pika broker; acknowledged only after the CRM commit.

    Messages of a batch that could not be written stay unacknowledged: if this process dies
    they go back to the queue, and the CRM's dedupe keys make the redelivery harmless.
    """

    def __init__(
        self,
        queue: str,
        *,
        host: str = "127.0.0.1",
        port: int = 5672,
        username: str = "guest",
        password: str = "guest",  # noqa: S107 - RabbitMQ's local default; settings pass the real one
        inactivity_s: float = 0.05,
    ) -> None:
        self.queue = queue
        self.name = f"pika:{queue}"
        self._params: dict[str, Any] = {"host": host, "port": port, "username": username, "password": password}
        self.inactivity_s = inactivity_s
        self._conn: Any = None
        self._channel: Any = None
        self._consumer: Any = None
        self._held: Batch | None = None  # fetched, not yet acknowledged

    def _connect(self) -> None:
        import pika  # optional: only the production (RabbitMQ) source needs it

        if self._conn is not None and self._conn.is_open:
            return
        params = self._params
        self._conn = pika.BlockingConnection(
            pika.ConnectionParameters(
                host=params["host"],
                port=params["port"],
                credentials=pika.PlainCredentials(params["username"], params["password"]),
                heartbeat=30,
                blocked_connection_timeout=60,
            )
        )
        self._channel = self._conn.channel()
        self._channel.queue_declare(queue=self.queue, durable=True)  # as Rasa's broker declares it
        self._channel.basic_qos(prefetch_count=1000)
        self._consumer = self._channel.consume(self.queue, inactivity_timeout=self.inactivity_s)
        self._held = None

    def fetch(self, max_events: int) -> Batch:
        if self._held is not None and self._held.messages:
            return self._held  # not acknowledged yet: offer the same messages again
        try:
            self._connect()
            batch = Batch()
            for method, _props, body in self._consumer:
                if method is None:
                    break  # nothing more for now
                batch.messages.append(body)
                batch.delivery_tag = method.delivery_tag
                if len(batch.messages) >= max_events:
                    break
        except Exception:  # noqa: BLE001 - a lost connection: unacknowledged messages are redelivered
            logger.warning("RabbitMQ connection lost; reconnecting", exc_info=True)
            self._drop()
            return Batch()
        self._held = batch if batch.messages else None
        return batch

    def save_position(self, session: Session, batch: Batch) -> None:
        """Nothing to store: the queue itself keeps the position."""

    def ack(self, batch: Batch) -> None:
        if batch.delivery_tag is None:
            return
        try:
            self._channel.basic_ack(delivery_tag=batch.delivery_tag, multiple=True)
        except Exception:  # noqa: BLE001 - redelivered later; the dedupe keys make that harmless
            logger.warning("could not acknowledge; the messages will be redelivered", exc_info=True)
            self._drop()
        self._held = None

    def wait(self, seconds: float) -> None:
        if self._conn is not None and self._conn.is_open:
            try:
                self._conn.sleep(seconds)  # keeps heartbeats going while the CRM is away
                return
            except Exception:  # noqa: BLE001
                self._drop()
        time.sleep(seconds)

    def _drop(self) -> None:
        try:
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        except Exception:  # noqa: BLE001, S110 - already gone
            pass
        self._conn = self._channel = self._consumer = None
        self._held = None

    def close(self) -> None:
        if self._channel is not None:
            try:
                self._channel.cancel()  # unacknowledged messages go back to the queue
            except Exception:  # noqa: BLE001, S110
                pass
        self._drop()
