"""The production profile for real: PostgreSQL (customer DB + tracker store), Redis lock store,
RabbitMQ event broker, and two Rasa replicas sharing one conversation.

Skips, naming the service, only when one of the local services is not running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import MODEL, RASA, ROOT, free_port, wait_for

pytestmark = pytest.mark.postgres

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
RABBIT = ("127.0.0.1", 5672)


def reachable(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=2):
            return True
    except OSError:
        return False


def require_services() -> None:
    for name, addr in (("PostgreSQL", PG), ("Redis", REDIS), ("RabbitMQ", RABBIT)):
        if not reachable(addr):
            pytest.skip(f"{name} is not running on {addr[0]}:{addr[1]}; the production profile needs it")


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
    action_port, ports = free_port(), [free_port(), free_port()]
    queue = f"concierge_test_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CONCIERGE_IDENTITY_SECRET": "prod-test-secret",
        "PYTHONPATH": str(ROOT),
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook",
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
    logs = []
    try:
        log = tmp / "actions.log"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bot.action_server", "--port", str(action_port)],
                cwd=ROOT,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        logs.append(log)
        for port in ports:
            log = tmp / f"rasa-{port}.log"
            procs.append(
                subprocess.Popen(
                    [
                        str(RASA),
                        "run",
                        "-m",
                        str(MODEL),
                        "--port",
                        str(port),
                        "-i",
                        "127.0.0.1",
                        "--endpoints",
                        "deploy/production/endpoints.yml",
                        "--credentials",
                        "credentials.yml",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
            logs.append(log)
        wait_for(f"http://127.0.0.1:{action_port}/health", procs[0], logs[0], 120)
        for proc, log, port in zip(procs[1:], logs[1:], ports, strict=True):
            wait_for(f"http://127.0.0.1:{port}/webhooks/rest/", proc, log, 300)
        yield {"ports": ports, "queue": queue, "dbname": dbname, "db_url": db_url}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
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


def say(port: int, sender: str, text: str) -> str:
    resp = requests.post(
        f"http://127.0.0.1:{port}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60
    )
    resp.raise_for_status()
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
    import pika

    a, _ = prod["ports"]
    me = f"prod-{uuid.uuid4().hex[:8]}"
    say(a, me, "hello")
    conn = pika.BlockingConnection(pika.ConnectionParameters(RABBIT[0], RABBIT[1]))
    channel = conn.channel()
    seen = []
    for _ in range(500):
        method, _props, body = channel.basic_get(prod["queue"], auto_ack=True)
        if method is None:
            break
        seen.append(json.loads(body))
    conn.close()
    mine = [e for e in seen if e.get("sender_id") == me]
    assert any(e.get("event") == "user" and e.get("text") == "hello" for e in mine)
    assert any(e.get("event") == "bot" for e in mine)
