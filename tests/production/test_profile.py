"""The production profile for real: PostgreSQL (customer DB + tracker store), Redis lock store,
RabbitMQ event broker, and two Rasa replicas sharing one conversation.

Skips, naming the service, only when one of the local services is not running, and fails instead
under CI=true (tests/requirements.py). Every run has its own database, queue, Redis lock keys
and server ports, so two runs at once (two checkouts, CI beside a developer) do not meet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.requirements import require_postgres, require_rabbitmq, require_redis
from tests.stack import MODEL, RASA, ROOT, PortTaken, free_port, launch, spawn, stop, wait_for

pytestmark = pytest.mark.postgres

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
RABBIT = ("127.0.0.1", 5672)


def require_services() -> None:
    """All three local services, or a skip naming the missing one (a failure under CI=true)."""
    require_postgres("the production profile keeps customers and trackers in it")
    require_redis()
    require_rabbitmq()


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    require_services()
    import psycopg2
    from psycopg2 import sql

    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first")
    dbname = f"concierge_prod_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=PG[0], port=PG[1], user="root", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db_url = f"postgresql+psycopg2://root@{PG[0]}:{PG[1]}/{dbname}"
    from bot.seed import seed

    seed(db_url, progress=None, seed=11, customers=40, products=320, orders=300)
    tmp = tmp_path_factory.mktemp("prod")
    run_id = uuid.uuid4().hex[:8]
    queue = f"concierge_test_{run_id}"
    # the production endpoints, with this run's own Redis lock-key prefix (the lock store's keys of
    # two runs at once never meet, whatever Redis DB they share)
    lock_prefix = f"concierge_test_{run_id}"
    endpoints = tmp / "endpoints.yml"
    production = (ROOT / "deploy" / "production" / "endpoints.yml").read_text()
    assert "key_prefix: concierge\n" in production, "the production lock store's key_prefix moved"
    endpoints.write_text(production.replace("key_prefix: concierge\n", f"key_prefix: {lock_prefix}\n"))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CONCIERGE_IDENTITY_SECRET": "prod-test-secret-at-least-32-characters-long",
        "CONCIERGE_ACTION_TOKEN": "prod-test-action-token-at-least-32-characters",
        "PYTHONPATH": str(ROOT),
        "TRACKER_DB_HOST": PG[0],
        "TRACKER_DB_PORT": str(PG[1]),
        "TRACKER_DB_NAME": dbname,
        "TRACKER_DB_USER": "root",
        "TRACKER_DB_PASSWORD": "",
        "REDIS_HOST": REDIS[0],
        "REDIS_PORT": str(REDIS[1]),
        "REDIS_DB": "3",
        "RABBITMQ_HOST": RABBIT[0],
        "RABBITMQ_PORT": str(RABBIT[1]),
        "RABBITMQ_USER": "guest",
        "RABBITMQ_PASSWORD": "guest",
        "RABBITMQ_QUEUE": queue,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    }
    procs: list[subprocess.Popen] = []
    try:
        log = tmp / "actions.log"
        action, action_port = launch(
            lambda p: spawn([sys.executable, "-m", "bot.action_server", "--port", str(p)], env, log), log,
            lambda p: f"http://127.0.0.1:{p}/health", 120)
        procs.append(action)
        env["ACTION_ENDPOINT_URL"] = f"http://127.0.0.1:{action_port}/webhook"

        def replica(i: int) -> Callable[[int], subprocess.Popen]:
            cmd = [str(RASA), "run", "-m", str(MODEL), "-i", "127.0.0.1", "--endpoints", str(endpoints),
                   "--credentials", "credentials.yml", "--port"]
            return lambda p: spawn([*cmd, str(p)], env, tmp / f"rasa-{i}.log")

        def rest(p: int) -> str:
            return f"http://127.0.0.1:{p}/webhooks/rest/"

        # both replicas start at once; one whose port was taken starts again on another
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
        # the CRM ingestor consumes the replicas' queue, as scripts/run_production.sh starts it
        crm_log = tmp / "crm.log"
        crm_env = {**env, "CONCIERGE_CRM_SOURCE": "pika"}
        procs.append(spawn([sys.executable, "-m", "bot.crm.ingestor"], crm_env, crm_log))
        yield {"ports": ports, "queue": queue, "dbname": dbname, "db_url": db_url, "crm_log": crm_log}
    finally:
        stop(*procs, timeout=30)
        import redis

        r = redis.Redis(host=REDIS[0], port=REDIS[1], db=int(env["REDIS_DB"]))
        stale = list(r.scan_iter(match=f"{lock_prefix}*"))
        if stale:
            r.delete(*stale)
        r.close()
        from bot.db.session import get_engine

        get_engine(db_url).dispose()
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        admin.close()
        try:
            import pika

            conn = pika.BlockingConnection(pika.ConnectionParameters(RABBIT[0], RABBIT[1]))
            conn.channel().queue_delete(queue=queue)
            conn.close()
        except Exception:  # noqa: BLE001, S110 - best-effort clean-up
            pass


SESSIONS: dict[str, str] = {}  # the REST session credential per sender, sent back as a real client does


def say(port: int, sender: str, text: str) -> str:
    headers = {"X-Concierge-Session": SESSIONS[sender]} if sender in SESSIONS else {}
    resp = requests.post(
        f"http://127.0.0.1:{port}/webhooks/rest/webhook",
        json={"sender": sender, "message": text},
        headers=headers,
        timeout=60,
    )
    resp.raise_for_status()
    if resp.headers.get("X-Concierge-Session"):
        SESSIONS[sender] = resp.headers["X-Concierge-Session"]
    return "\n".join(m.get("text", "") for m in resp.json())


def test_two_replicas_share_one_conversation(prod: dict) -> None:
    a, b = prod["ports"]
    me = f"prod-{uuid.uuid4().hex[:8]}"
    first = say(a, me, "where is my order 190001?")
    assert "email" in first.lower()
    second = say(b, me, "alice.martin@example.com")  # the other replica continues the same form
    assert "#190001" in second and "on its way" in second


def test_customer_data_comes_from_postgresql(prod: dict) -> None:
    from sqlalchemy import create_engine, text

    a, _ = prod["ports"]
    me = f"prod-{uuid.uuid4().hex[:8]}"
    say(a, me, "cancel order 190002")
    say(a, me, "alice.martin@example.com")
    assert "cancelled" in say(a, me, "yes")
    engine = create_engine(prod["db_url"])
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM orders WHERE number = '190002'")).scalar()
        tracked = conn.execute(text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": me}).scalar()
    engine.dispose()
    assert status == "cancelled"
    assert tracked > 5  # the conversation itself is in the PostgreSQL tracker store


def test_events_are_published_to_rabbitmq(prod: dict) -> None:
    """Rasa's Pika broker publishes through the fanout exchange: a queue of the test's own sees
    every event, while the ingestor consumes the profile's queue."""
    import pika

    a, _ = prod["ports"]
    me = f"prod-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.ConnectionParameters(RABBIT[0], RABBIT[1]))
    channel = conn.channel()
    mine_q = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.queue_bind(mine_q, "rasa-exchange")
    say(a, me, "hello")
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(e.get("event") == "bot" for e in seen):
        method, _props, body = channel.basic_get(mine_q, auto_ack=True)
        if method is None:
            time.sleep(0.1)
            continue
        event = json.loads(body)
        if event.get("sender_id") == me:
            seen.append(event)
    conn.close()
    assert any(e.get("event") == "user" and e.get("text") == "hello" for e in seen)
    assert any(e.get("event") == "bot" for e in seen)


def test_conversations_reach_the_crm_through_rabbitmq(prod: dict) -> None:
    """Two replicas, one conversation: the ingestor's rows in PostgreSQL, the customer linked."""
    from sqlalchemy import create_engine, text

    a, b = prod["ports"]
    me = f"prod-{uuid.uuid4().hex[:8]}"
    say(a, me, "where is my order 190001?")
    say(b, me, "alice.martin@example.com")
    engine = create_engine(prod["db_url"])
    row = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT id, customer_id, turn_count, channel FROM conversations WHERE sender_id = :s"),
                    {"s": me},
                ).first()
                users = conn.execute(
                    text(
                        "SELECT text, intent, customer_id FROM turns WHERE conversation_id = :c AND role = 'user' "
                        "ORDER BY event_at"
                    ),
                    {"c": row.id if row else -1},
                ).all()
            if row is not None and row.customer_id == 1 and len(users) == 2:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert row is not None, prod["crm_log"].read_text()[-2000:]
    assert (row.customer_id, row.turn_count, row.channel) == (1, 2, "rest")
    assert [(u.text, u.intent, u.customer_id) for u in users] == [
        ("where is my order 190001?", "track_order", 1),
        ("[EMAIL]", "inform", 1),
    ]
