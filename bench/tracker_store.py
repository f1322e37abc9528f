"""Production tracker store benchmark: CPU per turn of Rasa's SQL tracker store + Pika broker vs Concierge's.

    make bench-tracker-store   (or: PYTHONPATH=. .venv-rasa/bin/python bench/tracker_store.py [--copies 20])

Why (issue 24): the production profile (deploy/production) stores trackers in PostgreSQL and publishes
every event to RabbitMQ. Rasa's ``SQLTrackerStore.save`` loads the stored conversation again and
rebuilds a tracker from it to find the events to publish, counts the conversation's rows to find the
ones to store, and schedules one broker task per event; ``concierge_rasa.stores.PostgreSQLTrackerStore``
+ ``PikaEventBroker`` store and publish the same events without those reads.

The turns are Rasa's own events: the 111 events Rasa 3.6.21 published for six real conversations
(``tests/bot/crm/fixtures/rasa_events.jsonl``), cut into turns at each user message, ``--copies`` times
under other sender ids, ``--concurrency`` conversations at a time on one event loop as Rasa runs them.
Each turn is what Rasa does under the conversation's lock: ``retrieve`` (or create), the turn's events,
``save``. Both stores run on the local PostgreSQL (a fresh database per run) and the local RabbitMQ (a
fresh queue per run, deleted after), alternated ``--rounds`` times in one run; a run ends when every
published message is in the queue. Figures: the process's CPU time per turn (every thread), the wall
time of ``save`` (p50/p95) and its CPU time, and whether both stored the same rows and published each event once.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests" / "bot" / "crm" / "fixtures" / "rasa_events.jsonl"
PG = ("127.0.0.1", 5432)
RABBIT = ("127.0.0.1", 5672)


def log(msg: str) -> None:
    print(f"[bench-tracker-store] {msg}", file=sys.stderr, flush=True)


def conversations(copies: int) -> list[tuple[str, list[list[dict]]]]:
    """(sender, turns): the fixture's conversations cut at each user message, ``copies`` times."""
    by_sender: dict[str, list[dict]] = {}
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            event = json.loads(line)
            by_sender.setdefault(event.pop("sender_id"), []).append(event)
    out = []
    for copy in range(copies):
        for sender, events in by_sender.items():
            turns: list[list[dict]] = [[]]
            for event in events:
                if event["event"] == "user" and turns[-1]:
                    turns.append([])
                turns[-1].append(event)
            out.append((f"bench{copy:03d}-{sender}", turns))
    return out


def make_database() -> str:
    import psycopg2

    name = f"concierge_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG[0], port=PG[1], user="root", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return name


def drop_database(name: str) -> None:
    import psycopg2

    admin = psycopg2.connect(host=PG[0], port=PG[1], user="root", dbname="test")
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


async def queue_count(queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect(host=RABBIT[0], port=RABBIT[1], login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True)
        return q.declaration_result.message_count


async def delete_queue(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(host=RABBIT[0], port=RABBIT[1], login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


def unpublished(broker: Any, store: Any) -> int:
    """Messages not yet in the queue: Rasa's broker's publishing tasks, and for Concierge's store the
    rows of its outbox, which its relay publishes after the commit (counted in the turn's CPU too)."""
    waiting = len(broker._background_tasks)  # noqa: SLF001 - Rasa's broker has no public count
    if getattr(store, "_relay", None) is not None:
        import sqlalchemy as sa

        with store.engine.connect() as conn:
            waiting += conn.execute(sa.text("SELECT count(*) FROM concierge_event_outbox")).scalar_one()
    return waiting


async def play(variant: str, convs: list, concurrency: int) -> dict[str, Any]:
    from rasa.core.brokers.pika import PikaEventBroker as RasaPika
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import Event

    from concierge_rasa.stores import PikaEventBroker, PostgreSQLTrackerStore

    domain = Domain.load(str(ROOT / "domain.yml"))
    db, queue = make_database(), f"concierge_bench_{uuid.uuid4().hex[:8]}"
    broker_cls, store_cls = (RasaPika, SQLTrackerStore) if variant == "rasa" else (PikaEventBroker,
                                                                                   PostgreSQLTrackerStore)
    broker = broker_cls(RABBIT[0], "guest", "guest", port=RABBIT[1], queues=[queue],
                        event_loop=asyncio.get_running_loop())
    await broker.connect()
    store = store_cls(domain, dialect="postgresql", host=PG[0], port=PG[1], db=db, username="root",
                      event_broker=broker)
    turns = [(sender, [[Event.from_parameters(e) for e in t] for t in ts]) for sender, ts in convs]
    expected = sum(len(t) for _, ts in turns for t in ts)
    save_s: list[float] = []
    save_cpu: list[float] = []

    async def conversation(sender: str, its_turns: list[list[Event]]) -> None:
        for events in its_turns:
            tracker = await store.retrieve(sender)
            if tracker is None:
                tracker = await store.create_tracker(sender, append_action_listen=False)
            for event in events:
                tracker.update(event)
            t, c = time.perf_counter(), time.process_time()
            await store.save(tracker)  # neither store yields inside save: its CPU is this turn's
            save_s.append(time.perf_counter() - t)
            save_cpu.append(time.process_time() - c)

    sem = asyncio.Semaphore(concurrency)

    async def limited(sender: str, its_turns: list) -> None:
        async with sem:
            await conversation(sender, its_turns)

    try:
        # warm-up (not counted): the first connection, SQLAlchemy's statement caches
        await conversation("warm-up", turns[0][1])
        save_s.clear()
        save_cpu.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(limited(sender, ts) for sender, ts in turns))
        deadline = time.monotonic() + 120
        while unpublished(broker, store) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        published = await queue_count(queue)
        with store.engine.connect() as conn:
            import sqlalchemy as sa

            rows = conn.execute(sa.text("SELECT sender_id, data FROM events WHERE sender_id <> 'warm-up' "
                                        "ORDER BY id")).all()
        stored = sorted((s, d) for s, d in rows)
    finally:
        await broker.close()
        store.engine.dispose()
        await delete_queue(queue)
        drop_database(db)
    warm = sum(len(t) for t in turns[0][1])
    return {
        "variant": variant,
        "turns": sum(len(ts) for _, ts in turns),
        "events": expected,
        "stored": len(stored),
        "published": published - warm,
        "cpu_s": cpu,
        "wall_s": wall,
        "save_cpu_ms_per_turn": 1000 * sum(save_cpu) / len(save_cpu),
        "save_p50_ms": 1000 * statistics.median(save_s),
        "save_p95_ms": 1000 * statistics.quantiles(save_s, n=20)[18],
        "_rows": stored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of the six conversations (20: 120)")
    parser.add_argument("--concurrency", type=int, default=6, help="conversations at a time (bench-latency's 6)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per store, alternated")
    args = parser.parse_args()
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.INFO)  # as `rasa run` does by default (LOG_LEVEL INFO)
    import socket

    for name, address in (("PostgreSQL", PG), ("RabbitMQ", RABBIT)):
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError:
            sys.exit(f"bench-tracker-store: {name} is not running on {address[0]}:{address[1]}")
    convs = conversations(args.copies)
    runs: dict[str, list[dict]] = {"rasa": [], "concierge": []}
    for r in range(args.rounds):
        for variant in runs:
            result = asyncio.run(play(variant, convs, args.concurrency))
            runs[variant].append(result)
            log(f"round {r + 1} {variant}: {1000 * result['cpu_s'] / result['turns']:.2f} ms CPU per turn, "
                f"save p50 {result['save_p50_ms']:.2f} ms, {result['stored']} stored, {result['published']} published")
    same = runs["rasa"][-1]["_rows"] == runs["concierge"][-1]["_rows"]
    complete = all(r["stored"] == r["events"] == r["published"] for rs in runs.values() for r in rs)
    for rs in runs.values():
        for r in rs:
            r.pop("_rows")

    def med(variant: str, key: str, per_turn: bool = False) -> float:
        return statistics.median((1000 * r[key] / r["turns"]) if per_turn else r[key] for r in runs[variant])

    rasa_cpu, ours_cpu = med("rasa", "cpu_s", True), med("concierge", "cpu_s", True)
    turns = runs["rasa"][0]["turns"]
    print(f"\n{turns} turns ({runs['rasa'][0]['events']} events) per run, {args.concurrency} conversations at a time, "
          f"{args.rounds} run(s) per store, medians:")
    print(f"{'store':30} {'CPU ms/turn':>12} {'in save':>8} {'save p50 ms':>12} {'save p95 ms':>12}")
    for name, variant in (("Rasa SQLTrackerStore + Pika", "rasa"), ("Concierge PostgreSQL + Pika", "concierge")):
        print(f"{name:30} {med(variant, 'cpu_s', True):>12.2f} {med(variant, 'save_cpu_ms_per_turn'):>8.2f} "
              f"{med(variant, 'save_p50_ms'):>12.2f} {med(variant, 'save_p95_ms'):>12.2f}")
    print(f"CPU per turn, Concierge / Rasa: {ours_cpu / rasa_cpu:.2f}; same rows stored: {same}; "
          f"every event stored and published once: {complete}")
    print(json.dumps({
        "benchmark": "tracker_store_postgresql",
        "turns": turns,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "cpu_ms_per_turn": {"rasa": round(rasa_cpu, 3), "concierge": round(ours_cpu, 3)},
        "ratio_concierge_rasa": round(ours_cpu / rasa_cpu, 3),
        "save_cpu_ms_per_turn": {"rasa": round(med("rasa", "save_cpu_ms_per_turn"), 3),
                                 "concierge": round(med("concierge", "save_cpu_ms_per_turn"), 3)},
        "save_p50_ms": {"rasa": round(med("rasa", "save_p50_ms"), 3),
                        "concierge": round(med("concierge", "save_p50_ms"), 3)},
        "save_p95_ms": {"rasa": round(med("rasa", "save_p95_ms"), 3),
                        "concierge": round(med("concierge", "save_p95_ms"), 3)},
        "same_rows": same,
        "every_event_stored_and_published_once": complete,
        "runs": runs,
    }))
    if not (same and complete):
        sys.exit("bench-tracker-store: the stores differ in what they stored or published")


if __name__ == "__main__":
    main()
