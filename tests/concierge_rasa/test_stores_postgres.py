"""The production profile's PostgreSQL tracker store (issue 24) on the local PostgreSQL server: it stores
exactly what Rasa's SQLTrackerStore stores, publishes each stored event once, counts only when it does
not know, and two replicas (two store instances on one database) taking turns on the same
conversations never lose or duplicate an event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event as sa_event

from concierge_rasa.stores import PikaEventBroker, PostgreSQLTrackerStore
from tests.requirements import POSTGRES, RABBITMQ, require_postgres, require_rabbitmq

pytestmark = pytest.mark.postgres

DOMAIN = Domain.from_yaml("slots:\n  order_number:\n    type: text\n    mappings: [{type: custom}]\n")


class RecordingBroker:
    """Keeps what the store publishes, in order (the store's contract with any broker)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.calls = 0

    def publish_many(self, bodies: list[dict[str, Any]]) -> None:
        self.calls += 1
        self.bodies.extend(bodies)


@pytest.fixture
def databases() -> Iterator[Any]:
    """Fresh PostgreSQL databases on the local server, dropped afterwards."""
    require_postgres("the production tracker store is tested on it")
    admin = sa.create_engine(f"postgresql+psycopg2://root@{POSTGRES[0]}:{POSTGRES[1]}/test",
                             isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"concierge_trk_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def store_on(db: str, cls: type = PostgreSQLTrackerStore, broker: Any = None) -> Any:
    return cls(DOMAIN, dialect="postgresql", host=POSTGRES[0], port=POSTGRES[1], db=db, username="root",
               event_broker=broker)


def rows(store: Any) -> list[tuple[str, str, Any, Any, Any, dict]]:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events ORDER BY id")
        ).all()
    return [(s, t, ts, i, a, json.loads(d)) for s, t, ts, i, a, d in found]


def user(text: str) -> UserUttered:
    return UserUttered(text, {"name": "track_order", "confidence": 0.9})


def listen() -> ActionExecuted:
    return ActionExecuted("action_listen")


def new_session() -> list[Event]:
    return [ActionExecuted("action_session_start"), SessionStarted(), listen()]


# (replica, conversation, events of the turn): turns of three conversations, handled by either replica
TURNS: list[tuple[int, str, list[Event]]] = [
    (0, "a", [listen(), user("where is 190001?"), SlotSet("order_number", "190001"), BotUttered("On its way"),
              listen()]),
    (1, "a", [user("thanks"), BotUttered("You're welcome"), listen()]),
    (1, "b", [listen(), user("hello"), BotUttered("Hi"), listen()]),
    (0, "a", [user("and 190002?"), SlotSet("order_number", "190002"), listen()]),
    (0, "b", [user("my refund?"), BotUttered("Let me look"), listen()]),
    (1, "a", []),  # a turn that adds nothing
    (0, "a", [*new_session(), user("back again"), BotUttered("Welcome back"), listen()]),
    (1, "a", [user("still there?"), BotUttered("Yes"), listen()]),
    (1, "c", [listen(), user("hi"), listen()]),
    (0, "b", [*new_session(), user("new day"), listen()]),
    (1, "b", [user("hi again"), BotUttered("Hello again"), listen()]),
    (0, "c", [user("bye"), BotUttered("Bye"), listen()]),
    (1, "a", [user("one more"), listen()]),
]


async def turn(store: Any, sender: str, events: list[Event]) -> None:
    """One message as Rasa handles it under the conversation's lock: retrieve (or create), update, save."""
    tracker = await store.retrieve(sender)
    if tracker is None:
        tracker = await store.create_tracker(sender, append_action_listen=False)
    for e in events:
        tracker.update(e)
    await store.save(tracker)


def test_two_replicas_taking_turns_store_exactly_what_rasa_stores(databases: Any) -> None:
    stock_db, ours_db = databases(), databases()
    broker = RecordingBroker()
    stock = store_on(stock_db, SQLTrackerStore)
    replicas = [store_on(ours_db, broker=broker), store_on(ours_db, broker=broker)]

    async def play() -> None:
        for replica, sender, events in TURNS:
            await turn(stock, sender, events)
            await turn(replicas[replica], sender, events)

    asyncio.run(play())
    expected, got = rows(stock), rows(replicas[0])
    assert len(expected) == 43
    assert got == expected  # nothing lost, nothing twice, same columns and JSON
    assert broker.bodies == [{"sender_id": s, **d} for s, *_, d in got]  # each stored event published once


def test_another_replicas_appends_are_neither_duplicated_nor_lost(databases: Any) -> None:
    """Replica 0 holds a tracker it read; replica 1 then appends to the conversation; replica 0 saves
    its tracker with one more event: its count is that of its own snapshot, so it stores only its
    own new event (Rasa's COUNT would have skipped it: the table grew under it). Then a tracker
    rebuilt from every stored event (as the HTTP API's event routes build one), not one the store
    read: counted, as Rasa does; its one new event stored once."""
    db = databases()
    first, second = store_on(db), store_on(db)

    async def play() -> None:
        await turn(first, "x", [listen(), user("one"), listen()])
        kept = await first.retrieve("x")  # a tracker read by replica 0 ...
        await turn(second, "x", [user("two"), BotUttered("2"), listen()])  # ... then replica 1's turn
        kept.update(user("three"))
        await first.save(kept)
        rebuilt = DialogueStateTracker.from_dict("x", [d for *_, d in rows(first)], DOMAIN.slots)
        rebuilt.update(user("four"))
        await first.save(rebuilt)
        await turn(second, "x", [user("five"), listen()])

    asyncio.run(play())
    stored = rows(first)
    assert [d.get("text") for *_, d in stored if d["event"] == "user"] == ["one", "two", "three", "four", "five"]
    assert len(stored) == 3 + 3 + 1 + 1 + 2


def test_counts_once_per_conversation_and_commits_before_save_returns(databases: Any) -> None:
    db = databases()
    store, reader = store_on(db), store_on(db)
    counts: list[str] = []
    sa_event.listen(store.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_: counts.append(statement) if "count(" in statement.lower() else None)

    async def play() -> None:
        for i in range(6):
            await turn(store, "c", [listen(), user(f"message {i}"), BotUttered(f"reply {i}")])
            # another replica sees the turn as soon as save returned (the lock is released then)
            seen = await reader.retrieve("c")
            assert [e.text for e in seen.events if isinstance(e, UserUttered)][-1] == f"message {i}"

    asyncio.run(play())
    assert len(counts) == 1  # the new conversation's first save (create_tracker); every turn after knew
    assert len(rows(store)) == 18


def test_concurrent_conversations_on_two_replicas(databases: Any) -> None:
    """Twelve conversations at once, each turn on a replica picked in turn, one asyncio lock per
    conversation standing in for the Redis lock: every event of every turn stored once, in order."""
    db = databases()
    broker = RecordingBroker()
    replicas = [store_on(db, broker=broker), store_on(db, broker=broker)]
    locks = {f"s{i}": asyncio.Lock for i in range(12)}

    async def conversation(sender: str, lock: asyncio.Lock, offset: int) -> None:
        for i in range(5):
            async with lock:
                await turn(replicas[(i + offset) % 2], sender, [user(f"{sender}-{i}"), BotUttered(f"r{i}"), listen()])

    async def play() -> None:
        await asyncio.gather(*(conversation(s, make(), n) for n, (s, make) in enumerate(locks.items())))

    asyncio.run(play())
    stored = rows(replicas[0])
    for sender in locks:
        assert [d["text"] for s, *_, d in stored if s == sender and d["event"] == "user"] == [
            f"{sender}-{i}" for i in range(5)
        ]
    assert len(stored) == 12 * 5 * 3
    assert sorted(json.dumps(b, sort_keys=True) for b in broker.bodies) == sorted(
        json.dumps({"sender_id": s, **d}, sort_keys=True) for s, *_, d in stored
    )


def test_pika_broker_publishes_a_saves_events_in_order(databases: Any) -> None:
    """The real RabbitMQ: one save's events reach the queue once each, in order, as Rasa's messages."""
    require_rabbitmq()
    import aio_pika

    db = databases()
    queue = f"concierge_test_{uuid.uuid4().hex[:8]}"

    async def play() -> list[dict]:
        broker = PikaEventBroker(RABBITMQ[0], "guest", "guest", port=RABBITMQ[1], queues=[queue],
                                 event_loop=asyncio.get_running_loop())
        await broker.connect()
        store = store_on(db, broker=broker)
        try:
            await turn(store, "p", [listen(), user("where is 190001?"), SlotSet("order_number", "190001"),
                                    BotUttered("On its way"), listen()])
            connection = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1], login="guest", password="guest")
            got: list[dict] = []
            async with connection:
                channel = await connection.channel()
                q = await channel.declare_queue(queue, durable=True)
                for _ in range(200):  # bounded: the publishing task runs on this loop
                    message = await q.get(no_ack=True, fail=False)
                    if message is None:
                        if len(got) >= 5:
                            break
                        await asyncio.sleep(0.05)
                        continue
                    got.append(json.loads(message.body))
                await q.delete(if_unused=False, if_empty=False)
            return got
        finally:
            await broker.close()

    got = asyncio.run(play())
    assert [(b["sender_id"], b["event"]) for b in got] == [("p", "action"), ("p", "user"), ("p", "slot"),
                                                           ("p", "bot"), ("p", "action")]
    assert got[1]["parse_data"]["intent"]["name"] == "track_order"


def test_the_production_endpoints_build_these_classes(databases: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/production/endpoints.yml, as the production profile reads it, builds these classes."""
    require_rabbitmq()
    from pathlib import Path

    from rasa.core.brokers.broker import EventBroker
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import read_endpoints_from_path

    endpoints = Path(__file__).resolve().parents[2] / "deploy" / "production" / "endpoints.yml"
    env = {"TRACKER_DB_HOST": POSTGRES[0], "TRACKER_DB_PORT": str(POSTGRES[1]), "TRACKER_DB_NAME": databases(),
           "TRACKER_DB_USER": "root", "TRACKER_DB_PASSWORD": "", "RABBITMQ_HOST": RABBITMQ[0],
           "RABBITMQ_PORT": str(RABBITMQ[1]), "RABBITMQ_USER": "guest", "RABBITMQ_PASSWORD": "guest",
           "RABBITMQ_QUEUE": f"concierge_test_{uuid.uuid4().hex[:8]}", "REDIS_HOST": "127.0.0.1",
           "REDIS_PORT": "6379", "REDIS_DB": "0", "ACTION_ENDPOINT_URL": "http://127.0.0.1:1/webhook",
           "CONCIERGE_ACTION_TOKEN": "x"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = read_endpoints_from_path(endpoints)

    async def build() -> tuple[Any, Any]:
        broker = await EventBroker.create(config.event_broker)
        store = TrackerStore.create(config.tracker_store, domain=DOMAIN, event_broker=broker)
        inner = getattr(store, "_tracker_store", store)
        inner = getattr(inner, "_tracker_store", inner)
        await broker.close()
        import aio_pika

        connection = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1], login="guest", password="guest")
        async with connection:  # this run's queue goes
            await (await connection.channel()).queue_delete(env["RABBITMQ_QUEUE"])
        return inner, broker

    inner, broker = asyncio.run(build())
    assert type(inner) is PostgreSQLTrackerStore and type(broker) is PikaEventBroker


# ------------------------------------------------------------------ the outbox: a broker that fails
async def _read_queue(queue: str, count: int, timeout: float = 60.0) -> list[dict]:
    """Consumes `count` messages from `queue` (bounded wait); more arriving within a short grace are kept
    too, so a duplicate would be seen."""
    import aio_pika

    connection = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1], login="guest", password="guest")
    got: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with connection:
        q = await (await connection.channel()).declare_queue(queue, durable=True)
        while loop.time() < deadline:
            message = await q.get(no_ack=True, fail=False)
            if message is not None:
                got.append(json.loads(message.body))
                continue
            if len(got) >= count:  # all there: one more look for a duplicate, then done
                await asyncio.sleep(0.5)
                if (late := await q.get(no_ack=True, fail=False)) is None:
                    break
                got.append(json.loads(late.body))
                continue
            await asyncio.sleep(0.05)
    return got


async def _delete_queue(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1], login="guest", password="guest")
    async with connection:
        await (await connection.channel()).queue_delete(queue)


def outbox_rows(store: Any) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM concierge_event_outbox"))


def stored_bodies(store: Any, senders: set[str]) -> list[tuple[str, str]]:
    return [(s, d["event"]) for s, _, _, _, _, d in rows(store) if s in senders]


async def _until(check: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_broker_down_turns_go_on_and_every_event_arrives_once_in_order(databases: Any) -> None:
    """RabbitMQ unreachable mid-conversation (the link cut, as when its process dies): the turns are
    stored and answered; once it is back, every event reaches the queue, once, in the stored order."""
    require_rabbitmq()
    from tests.faults import TcpProxy

    db, queue = databases(), f"concierge_test_{uuid.uuid4().hex[:8]}"

    async def play() -> tuple[list[dict], list[tuple[str, str]], int]:
        with TcpProxy(RABBITMQ) as proxy:
            broker = PikaEventBroker(RABBITMQ[0], "guest", "guest", port=proxy.port, queues=[queue],
                                     event_loop=asyncio.get_running_loop())
            await broker.connect()
            store = store_on(db, broker=broker)
            store._relay.publish_timeout_s = 2.0
            try:
                await turn(store, "up", [listen(), user("where is 190001?"), BotUttered("On its way"), listen()])
                await _until(lambda: outbox_rows(store) == 0)  # published and confirmed: nothing in flight
                proxy.cut()
                for sender, text in (("down", "hello"), ("up", "and my refund?"), ("down", "anyone there?")):
                    await turn(store, sender, [*([listen()] if sender == "down" and text == "hello" else []),
                                               user(text), BotUttered("Let me look"), listen()])
                waiting = outbox_rows(store)  # stored and committed; the messages wait
                proxy.restore()
                got = await _read_queue(queue, len(rows(store)))
                await _until(lambda: outbox_rows(store) == 0)
                return got, stored_bodies(store, {"up", "down"}), waiting
            finally:
                await store._relay.stop()
                await broker.close()
                await _delete_queue(queue)

    got, stored, waiting = asyncio.run(play())
    assert waiting == 10  # 4 + 3 + 3 events saved while the broker was away
    assert [(b["sender_id"], b["event"]) for b in got] == stored  # each once, in the stored order
    assert len(stored) == 14


KILLED_REPLICA = """
import asyncio, sys
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from concierge_rasa.stores import PikaEventBroker, PostgreSQLTrackerStore

DOMAIN = Domain.from_yaml("slots:\\n  order_number:\\n    type: text\\n    mappings: [{type: custom}]\\n")

async def main(db, port, queue):
    broker = PikaEventBroker("127.0.0.1", "guest", "guest", port=int(port), queues=[queue],
                             event_loop=asyncio.get_running_loop())
    await broker.connect()
    store = PostgreSQLTrackerStore(DOMAIN, dialect="postgresql", host="127.0.0.1", port=5432, db=db,
                                   username="root", event_broker=broker)
    print("connected", flush=True)
    sys.stdin.readline()  # the test cuts RabbitMQ's link, then lets the turns go
    for n in range(3):
        tracker = await store.retrieve("k") or await store.create_tracker("k", append_action_listen=True)
        for e in (UserUttered(f"message {n}", {"name": "greet", "confidence": 1.0}), BotUttered(f"reply {n}"),
                  ActionExecuted("action_listen")):
            tracker.update(e)
        await store.save(tracker)
    print("saved", flush=True)
    await asyncio.sleep(3600)  # killed here, its messages unpublished

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_killed_replicas_unpublished_events_are_sent_by_the_others_once(databases: Any) -> None:
    """A replica saves turns while RabbitMQ is unreachable and is killed (SIGKILL) before it could
    publish: the two replicas left send its events, each once, in order."""
    require_rabbitmq()
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.faults import TcpProxy

    db, queue = databases(), f"concierge_test_{uuid.uuid4().hex[:8]}"
    root = Path(__file__).resolve().parents[2]
    with TcpProxy(RABBITMQ) as proxy:
        child = subprocess.Popen([sys.executable, "-c", KILLED_REPLICA, db, str(proxy.port), queue], cwd=root,
                                 env={**os.environ, "PYTHONPATH": str(root)}, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "connected"
            proxy.cut()
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "saved"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)

    async def survivors() -> tuple[list[dict], int, list[tuple[str, str]]]:
        brokers = [PikaEventBroker(RABBITMQ[0], "guest", "guest", port=RABBITMQ[1], queues=[queue],
                                   event_loop=asyncio.get_running_loop()) for _ in range(2)]
        for broker in brokers:
            await broker.connect()
        stores = [store_on(db, broker=broker) for broker in brokers]
        left = outbox_rows(stores[0])
        try:
            for store in stores:
                assert await store.retrieve("somebody else") is None  # any turn starts the relay
            got = await _read_queue(queue, left)
            await _until(lambda: outbox_rows(stores[0]) == 0)
            return got, left, stored_bodies(stores[0], {"k"})
        finally:
            for store, broker in zip(stores, brokers, strict=True):
                await store._relay.stop()
                await broker.close()
            await _delete_queue(queue)

    got, left, stored = asyncio.run(survivors())
    assert left == len(stored) == 10  # the first action_listen, then 3 turns of 3 events
    assert [(b["sender_id"], b["event"]) for b in got] == stored


# ------------------------------------------------------------------ the database fails
def test_a_save_while_the_database_is_unreachable_is_written_once_when_it_is_back(databases: Any) -> None:
    """The link to PostgreSQL is cut (as in a restart or a failover) between a turn's retrieve and its
    save: the save waits, and when the database is back the turn is stored, every event once, in order.
    Rasa's SQLTrackerStore raised, and the customer's message and the bot's answer were lost."""
    from tests.faults import TcpProxy

    db = databases()

    async def play() -> tuple[list[tuple[str, str]], list[tuple[str, str]], bool]:
        with TcpProxy(POSTGRES) as proxy:
            store = PostgreSQLTrackerStore(DOMAIN, dialect="postgresql", host=POSTGRES[0], port=proxy.port, db=db,
                                           username="root")
            await turn(store, "a", [listen(), user("where is 190001?"), BotUttered("On its way"), listen()])
            tracker = await store.retrieve("a")
            for e in (user("and my refund?"), BotUttered("Let me look"), listen()):
                tracker.update(e)
            proxy.cut()
            saving = asyncio.ensure_future(store.save(tracker))
            await _until(lambda: store._known.get("a") is None or saving.done(), timeout=10)
            waited = not saving.done()  # the save is retrying, not failed
            proxy.restore()
            await asyncio.wait_for(saving, timeout=30)
            expected = [("a", e.as_dict()["event"]) for e in tracker.events]
            found = [(s, d["event"]) for s, _, _, _, _, d in rows(store)]
            store.engine.dispose()
            return expected, found, waited

    expected, found, waited = asyncio.run(play())
    assert waited
    assert found == expected and len(found) == 7


def test_a_save_gives_up_with_an_error_when_the_database_stays_away(databases: Any) -> None:
    """Past write_retry_s the save raises (Rasa answers the request with an error the client can retry);
    nothing half-written is left behind, and the next save stores the whole turn."""
    from tests.faults import TcpProxy

    db = databases()

    async def play() -> tuple[bool, int]:
        with TcpProxy(POSTGRES) as proxy:
            store = PostgreSQLTrackerStore(DOMAIN, dialect="postgresql", host=POSTGRES[0], port=proxy.port, db=db,
                                           username="root", write_retry_s=0.5)
            await turn(store, "b", [listen(), user("hello"), listen()])
            tracker = await store.retrieve("b")
            for e in (user("anyone?"), BotUttered("Yes"), listen()):
                tracker.update(e)
            proxy.cut()
            try:
                await store.save(tracker)
                raised = False
            except sa.exc.OperationalError:
                raised = True
            proxy.restore()
            await store.save(tracker)
            count = len(rows(store))
            store.engine.dispose()
            return raised, count

    raised, count = asyncio.run(play())
    assert raised
    assert count == 6


def test_a_turn_that_begins_while_the_database_is_unreachable_waits_for_it(databases: Any) -> None:
    """The read at the start of a turn waits through a restart instead of failing: Rasa's wrapper would
    have turned the failure into a brand-new conversation (and the turn into one never stored)."""
    from tests.faults import TcpProxy

    db = databases()

    async def play() -> tuple[bool, list[str]]:
        with TcpProxy(POSTGRES) as proxy:
            store = PostgreSQLTrackerStore(DOMAIN, dialect="postgresql", host=POSTGRES[0], port=proxy.port, db=db,
                                           username="root")
            await turn(store, "c", [listen(), user("where is 190001?"), BotUttered("On its way"), listen()])
            store.engine.dispose()  # the next read needs a new connection, as after a restart
            proxy.cut()
            reading = asyncio.ensure_future(store.retrieve("c"))
            await asyncio.sleep(1.0)
            waited = not reading.done()
            proxy.restore()
            tracker = await asyncio.wait_for(reading, timeout=30)
            store.engine.dispose()
            return waited, [e.text for e in tracker.events if isinstance(e, UserUttered)]

    waited, texts = asyncio.run(play())
    assert waited
    assert texts == ["where is 190001?"]


def test_rasas_wrapper_raises_instead_of_starting_over_or_keeping_the_turn_in_memory(databases: Any) -> None:
    """``FailSafeTrackerStore`` (every Rasa agent's wrapper) answered a failed read with None and kept
    a failed save in memory; ``fail_loudly`` lets both errors reach the channels' apology."""
    from rasa.core.tracker_store import FailSafeTrackerStore

    from concierge_rasa.stores import fail_loudly
    from tests.faults import TcpProxy

    db = databases()

    async def play() -> tuple[Any, bool, bool, int]:
        with TcpProxy(POSTGRES) as proxy:
            inner = PostgreSQLTrackerStore(DOMAIN, dialect="postgresql", host=POSTGRES[0], port=proxy.port, db=db,
                                           username="root", write_retry_s=0.3)
            await turn(inner, "d", [listen(), user("hello"), listen()])
            tracker = await inner.retrieve("d")
            tracker.update(user("anyone there?"))
            wrapped = FailSafeTrackerStore(inner)
            inner.engine.dispose()
            proxy.cut()
            rasa_says = await wrapped.retrieve("d")  # Rasa's own behaviour: the conversation is gone
            fail_loudly(wrapped)
            fail_loudly(wrapped)  # idempotent
            read_raised = save_raised = False
            try:
                await wrapped.retrieve("d")
            except sa.exc.OperationalError:
                read_raised = True
            try:
                await wrapped.save(tracker)
            except sa.exc.OperationalError:
                save_raised = True
            kept_in_memory = len(await wrapped.fallback_tracker_store.keys())
            proxy.restore()
            inner.engine.dispose()
            return rasa_says, read_raised, save_raised, kept_in_memory

    rasa_says, read_raised, save_raised, kept_in_memory = asyncio.run(play())
    assert rasa_says is None
    assert read_raised and save_raised
    assert kept_in_memory == 0
