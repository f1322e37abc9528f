"""Two real Rasa replicas of the production profile (deploy/production/endpoints.yml: PostgreSQL tracker,
Redis lock store, RabbitMQ broker) stay correct when a conversation's traffic is split between them:

- socket.io: a widget connected to replica A hears an agent's reply sent through replica B's HTTP API
  (rooms shared through Redis, CONCIERGE_SOCKETIO_REDIS_URL);
- locks: many messages of one conversation at once, half to each replica, are handled one turn at a
  time and none is lost (concierge_rasa/locks.py).

Skips, naming the service, only when PostgreSQL, Redis or RabbitMQ is not running, and fails instead
under CI=true (tests/requirements.py). Each run has its own database, queue, Redis key prefix and
socket.io channel, so runs at once do not meet.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.requirements import require_postgres, require_rabbitmq, require_redis
from tests.stack import MODEL, RASA, ROOT, PortTaken, free_port, launch, spawn, stop, wait_for

pytestmark = pytest.mark.postgres

PG = ("127.0.0.1", 5432)
REDIS_DB = 4
API_TOKEN = "replicas-test-rasa-api-token"
SENDER_BURST = 30
WAIT_S = 30.0  # bounded waits on a condition (a busy machine), never a fixed sleep


@dataclass
class Replicas:
    ports: list[int]
    db_url: str
    sio_channel: str
    tmp: Path

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"


def _production_endpoints(tmp: Path, lock_prefix: str) -> Path:
    """deploy/production/endpoints.yml with this run's own lock-key prefix."""
    production = (ROOT / "deploy" / "production" / "endpoints.yml").read_text()
    assert "type: concierge_rasa.locks.AtomicRedisLockStore\n" in production
    assert "key_prefix: concierge\n" in production, "the production lock store's key_prefix moved"
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(production.replace("key_prefix: concierge\n", f"key_prefix: {lock_prefix}\n"))
    return endpoints


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    require_postgres("the production profile keeps customers and trackers in it")
    require_redis("the lock store and the shared socket.io rooms need it")
    require_rabbitmq()
    import psycopg2
    import redis
    from psycopg2 import sql

    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first")
    run_id = uuid.uuid4().hex[:8]
    dbname, queue, lock_prefix = f"concierge_replicas_{run_id}", f"concierge_replicas_{run_id}", f"replicas{run_id}"
    admin = psycopg2.connect(host=PG[0], port=PG[1], user="root", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db_url = f"postgresql+psycopg2://root@{PG[0]}:{PG[1]}/{dbname}"
    tmp = tmp_path_factory.mktemp("replicas")
    procs: list[subprocess.Popen] = []
    try:
        from bot.seed import seed

        seed(db_url, progress=None, seed=11, customers=40, products=320, orders=300)
        endpoints = _production_endpoints(tmp, lock_prefix)
        sio_channel = f"concierge-socketio-{run_id}"
        # the race below sends messages the NLU does not understand; with the shipped trigger (two
        # misunderstood messages in a row hand over) the conversation would pause half-way
        shipped = (ROOT / "bot" / "content" / "handoff.yml").read_text()
        assert "  fallbacks: 2 " in shipped
        handoff = tmp / "handoff.yml"
        handoff.write_text(shipped.replace("  fallbacks: 2 ", "  fallbacks: 0 "))
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "CONCIERGE_HANDOFF_CONFIG": str(handoff),
            "CONCIERGE_IDENTITY_SECRET": "replicas-test-secret-at-least-32-characters",
            "CONCIERGE_ACTION_TOKEN": "replicas-test-action-token-at-least-32-chars",
            "PYTHONPATH": str(ROOT),
            "TRACKER_DB_HOST": PG[0], "TRACKER_DB_PORT": str(PG[1]), "TRACKER_DB_NAME": dbname,
            "TRACKER_DB_USER": "root", "TRACKER_DB_PASSWORD": "",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": str(REDIS_DB),
            "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "guest",
            "RABBITMQ_PASSWORD": "guest", "RABBITMQ_QUEUE": queue,
            # what scripts/run_production.sh sets: replicas share socket.io rooms through Redis
            "CONCIERGE_SOCKETIO_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CONCIERGE_SOCKETIO_REDIS_CHANNEL": sio_channel,
            # and rate limits, replay cache, numbered options
            "CONCIERGE_SHARED_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CONCIERGE_SHARED_REDIS_PREFIX": f"{lock_prefix}:shared:",
            # every test client is 127.0.0.1: no limit per address; per sender a burst of SENDER_BURST
            # messages, then one a minute (a flood of one conversation below stays under it)
            "CONCIERGE_RATE_CLIENT_PER_MIN": "100000", "CONCIERGE_RATE_CLIENT_BURST": "100000",
            "CONCIERGE_RATE_SENDER_PER_MIN": "1", "CONCIERGE_RATE_SENDER_BURST": str(SENDER_BURST),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        }
        log = tmp / "actions.log"
        action, action_port = launch(
            lambda p: spawn([sys.executable, "-m", "bot.action_server", "--port", str(p)], env, log), log,
            lambda p: f"http://127.0.0.1:{p}/health", 120)
        procs.append(action)
        env["ACTION_ENDPOINT_URL"] = f"http://127.0.0.1:{action_port}/webhook"

        def replica(i: int) -> Callable[[int], subprocess.Popen]:
            cmd = [str(RASA), "run", "-m", str(MODEL), "-i", "127.0.0.1", "--endpoints", str(endpoints),
                   "--credentials", "credentials.yml", "--enable-api", "--auth-token", API_TOKEN, "--port"]
            return lambda p: spawn([*cmd, str(p)], env, tmp / f"rasa-{i}.log")

        def rest(p: int) -> str:
            return f"http://127.0.0.1:{p}/webhooks/rest/"

        candidates = [free_port(), free_port()]
        started = [replica(i)(p) for i, p in enumerate(candidates)]
        procs += started
        ports = []
        for i, (proc, port) in enumerate(zip(started, candidates, strict=True)):
            try:
                wait_for(rest(port), proc, tmp / f"rasa-{i}.log", 300)
            except PortTaken:
                proc, port = launch(replica(i), tmp / f"rasa-{i}.log", rest, 300)
                procs.append(proc)
            ports.append(port)
        yield Replicas(ports, db_url, sio_channel, tmp)
    finally:
        stop(*procs, timeout=30)
        r = redis.Redis(db=REDIS_DB)
        stale = list(r.scan_iter(match=f"{lock_prefix}*"))
        if stale:
            r.delete(*stale)
        r.close()
        from bot.db.session import get_engine

        get_engine(db_url).dispose()
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,))
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        admin.close()
        try:
            import pika

            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
            conn.channel().queue_delete(queue=queue)
            conn.close()
        except Exception:  # noqa: BLE001, S110 - best-effort clean-up
            pass


def tracker_events(db_url: str, sender: str) -> list[dict]:
    """The sender's events in the replicas' PostgreSQL tracker store, in the order they were stored."""
    import json

    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})
            return [json.loads(data) for (data,) in rows]
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return value


# ------------------------------------------------------------------ socket.io across replicas
async def test_an_agent_reply_sent_through_one_replica_reaches_a_widget_on_the_other(replicas: Replicas) -> None:
    import redis
    import socketio

    # both replicas listen on this run's channel from their start (not from their first socket)
    r = redis.Redis(db=REDIS_DB)
    wait_until(lambda: dict(r.pubsub_numsub(replicas.sio_channel))[replicas.sio_channel.encode()] >= 2,
               "both replicas subscribed to the socket.io channel")
    r.close()

    events: asyncio.Queue = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("bot_uttered", lambda data: events.put_nowait(("bot_uttered", data)))
    client.on("session_confirm", lambda data: events.put_nowait(("session_confirm", data)))
    await client.connect(replicas.url(0), transports=["websocket"], wait_timeout=15)
    try:
        await client.emit("session_request", {"session_id": None})
        name, session_id = await asyncio.wait_for(events.get(), WAIT_S)
        assert name == "session_confirm" and len(session_id) == 32
        # one customer turn on A, so the tracker's latest input channel is socket.io
        await client.emit("user_uttered", {"message": "hello", "session_id": session_id})
        await asyncio.to_thread(
            wait_until,
            lambda: any(e.get("event") == "action" and e.get("name") == "action_listen"
                        for e in tracker_events(replicas.db_url, session_id)[1:]),
            "the customer's turn on replica A ended")

        async def reply_through_b(text: str) -> None:
            event = {"event": "bot", "timestamp": time.time(), "text": text,
                     "metadata": {"from_person": True, "agent": "Dana"}}
            resp = await asyncio.to_thread(
                requests.post, f"{replicas.url(1)}/conversations/{session_id}/tracker/events", json=[event],
                params={"output_channel": "latest", "execute_side_effects": "true", "token": API_TOKEN},
                timeout=WAIT_S)
            assert resp.status_code == 200, resp.text

        async def delivered(text: str) -> None:
            while True:
                name, data = await events.get()
                if name == "bot_uttered" and isinstance(data, dict) and data.get("text") == text:
                    return

        took = []
        for i in range(20):
            text = f"Dana (support): reply {i} of run {uuid.uuid4().hex[:6]}"
            start = time.perf_counter()
            await reply_through_b(text)
            await asyncio.wait_for(delivered(text), WAIT_S)  # a bounded wait on that very message
            took.append(time.perf_counter() - start)
        p50 = statistics.median(took) * 1000
        print(f"\ncross-replica agent reply (HTTP API on B -> widget on A): p50 {p50:.1f} ms, "
              f"max {max(took) * 1000:.1f} ms over {len(took)} replies")
        texts = [e.get("text") for e in tracker_events(replicas.db_url, session_id) if e.get("event") == "bot"]
        assert sum(t.startswith("Dana (support): reply ") for t in texts) == 20
    finally:
        await client.eio.disconnect(abort=True)


# ------------------------------------------------------------------ one conversation, two replicas, at once
def test_messages_of_one_conversation_split_across_replicas_take_turns(replicas: Replicas) -> None:
    """24 messages of one sender at once, alternately to A and B: each user event is followed by its own
    turn (bot reply, action_listen) before the next user event, and none is lost."""
    me = f"race-{uuid.uuid4().hex[:8]}"
    texts = [f"hello number {i}" for i in range(24)]

    def send(i: int) -> int:
        resp = requests.post(f"{replicas.url(i % 2)}/webhooks/rest/webhook",
                             json={"sender": me, "message": texts[i]}, timeout=120)
        return resp.status_code

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        assert list(pool.map(send, range(len(texts)))) == [200] * len(texts)

    events = tracker_events(replicas.db_url, me)
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    assert sorted(events[i]["text"] for i in users) == sorted(texts)  # every message stored, once
    for start, end in zip(users, [*users[1:], len(events)], strict=True):
        turn = events[start + 1:end]
        kinds = [(e.get("event"), e.get("name")) for e in turn]
        assert any(k == "bot" for k, _ in kinds), f"{events[start]['text']!r} got no reply of its own: {kinds}"
        assert kinds[-1] == ("action", "action_listen"), f"turn of {events[start]['text']!r} interleaved: {kinds}"


# ------------------------------------------------------------------ rate limits across replicas
def test_a_senders_rate_limit_holds_across_replicas(replicas: Replicas) -> None:
    """SENDER_BURST messages alternately to A and B are served; the next one is refused by either replica
    (with limits kept in each process, each would have allowed SENDER_BURST of its own)."""
    me = f"rate-{uuid.uuid4().hex[:8]}"

    def send(replica: int) -> requests.Response:
        return requests.post(f"{replicas.url(replica)}/webhooks/rest/webhook",
                             json={"sender": me, "message": "hi"}, timeout=120)

    assert [send(i % 2).status_code for i in range(SENDER_BURST)] == [200] * SENDER_BURST
    refused = [send(0), send(1)]
    assert [r.status_code for r in refused] == [429, 429], [r.text for r in refused]
