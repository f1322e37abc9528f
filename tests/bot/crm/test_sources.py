"""Event sources against the real brokers: a RabbitMQ queue fed with Rasa-shaped events (the local
server, 127.0.0.1:5672), acknowledged only after the CRM transaction commits."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import records
from bot.crm.ingestor import Ingestor
from bot.crm.sources import PikaEventSource, SQLEventSource
from bot.db.models import Conversation, IngestedEvent, Turn
from bot.db.session import get_engine
from tests.bot.crm.conftest import BrokerFile, rasa_events, wait_until
from tests.faults import TcpProxy
from tests.requirements import RABBITMQ, require_rabbitmq

RABBIT = RABBITMQ


@pytest.fixture
def queue() -> Iterator[str]:
    require_rabbitmq()
    import pika

    name = f"concierge_crm_test_{uuid.uuid4().hex[:8]}"
    yield name
    conn = pika.BlockingConnection(pika.ConnectionParameters(*RABBIT))
    conn.channel().queue_delete(queue=name)
    conn.close()


def publish(queue: str, events: list[dict]) -> None:
    """As Rasa's Pika broker does: a durable queue, persistent JSON messages."""
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(*RABBIT))
    channel = conn.channel()
    channel.queue_declare(queue=queue, durable=True)
    for event in events:
        channel.basic_publish(
            "", queue, json.dumps(event).encode(), pika.BasicProperties(delivery_mode=2, app_id="rasa")
        )
    conn.close()


def waiting(queue: str) -> int:
    """Messages ready in the queue (unacknowledged ones held by a consumer are not counted)."""
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(*RABBIT))
    count = conn.channel().queue_declare(queue=queue, durable=True, passive=True).method.message_count
    conn.close()
    return count


def stored(url: str, model) -> int:
    with Session(get_engine(url)) as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def crm_sqlite(tmp_path: Path, identity_secret: str) -> str:
    from bot.seed import seed

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
    return url


def test_rabbitmq_events_are_stored_then_acknowledged(queue: str, crm_sqlite: str) -> None:
    publish(queue, rasa_events())
    assert waiting(queue) == 111
    source = PikaEventSource(queue, host=RABBIT[0], port=RABBIT[1])
    try:
        stats = Ingestor(source, db_url=crm_sqlite, batch_size=40).run(threading.Event(), once=True)
    finally:
        source.close()
    assert stats.events == 111 and stored(crm_sqlite, IngestedEvent) == 111
    turns = sum(records.turn_of(records.parse_event(e)) is not None for e in rasa_events())
    assert stored(crm_sqlite, Conversation) == 6 and stored(crm_sqlite, Turn) == turns
    assert waiting(queue) == 0  # acknowledged once stored
    # a redelivery of the same events (a consumer died before its ack) stores nothing twice
    publish(queue, rasa_events())
    source = PikaEventSource(queue, host=RABBIT[0], port=RABBIT[1])
    try:
        again = Ingestor(source, db_url=crm_sqlite).run(threading.Event(), once=True)
    finally:
        source.close()
    assert (again.events, again.duplicates) == (0, 111) and waiting(queue) == 0
    assert stored(crm_sqlite, IngestedEvent) == 111


@pytest.mark.postgres
def test_rabbitmq_messages_wait_while_the_crm_is_down(
    queue: str, pg_database: str, pg_proxy: TcpProxy, identity_secret: str
) -> None:
    publish(queue, rasa_events())
    proxied = pg_database.replace(":5432/", f":{pg_proxy.port}/")
    pg_proxy.cut()  # the CRM database is down before the ingestor starts
    source = PikaEventSource(queue, host=RABBIT[0], port=RABBIT[1])
    ingestor = Ingestor(source, db_url=proxied, batch_size=40)
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,), kwargs={"max_backoff_s": 0.5}, daemon=True)
    worker.start()
    # delivered to the ingestor (prefetch, none acknowledged) and the CRM write failed and was retried
    wait_until(
        lambda: ingestor.stats.retries >= 2 and waiting(queue) == 0,
        "the ingestor to hold the 111 messages and retry the CRM twice",
        every_s=0.2,
    )
    assert ingestor.stats.events == 0
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    source.close()  # the held batch goes back to the queue: nothing was acknowledged
    wait_until(lambda: waiting(queue) == 111, "the unacknowledged batch to be back in the queue", every_s=0.2)
    pg_proxy.restore()  # the CRM is back
    source = PikaEventSource(queue, host=RABBIT[0], port=RABBIT[1])
    try:
        stats = Ingestor(source, db_url=proxied, batch_size=40).run(threading.Event(), once=True)
    finally:
        source.close()
    assert stats.events == 111 and stored(pg_database, IngestedEvent) == 111 and waiting(queue) == 0


def test_sql_source_waits_for_rasa_to_create_its_file(tmp_path: Path, crm_sqlite: str) -> None:
    source = SQLEventSource(tmp_path / "later.db", db_url=crm_sqlite)
    assert source.fetch(10).messages == []  # no file yet: nothing, no error
    BrokerFile(tmp_path / "later.db").publish(rasa_events()[:3])
    batch = source.fetch(10)
    assert len(batch.messages) == 3 and batch.position == 3
    source.close()
