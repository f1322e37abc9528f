"""The CRM ingestor against real databases: SQLite and the local PostgreSQL.

Rasa's events (fixtures/, as Rasa 3.6.21 published them) go into a broker file with the SQL
broker's table; the ingestor turns them into conversations and turns. Replays store nothing
twice; a PostgreSQL outage during a burst (a TCP proxy the test cuts) loses nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from bot.crm.ingestor import Ingestor
from bot.crm.sources import SQLEventSource
from bot.db.models import Conversation, IngestedEvent, IngestOffset, Interaction, Turn
from bot.db.session import get_engine
from tests.bot.crm.conftest import CAPTURE_SECRET, BrokerFile, rasa_events, renamed, wait_until
from tests.faults import TcpProxy

ROOT = Path(__file__).resolve().parents[3]
STORED_TYPES = {"user", "bot", "action", "slot", "session_started", "restart", "active_loop", "user_featurization"}


@pytest.fixture
def crm_sqlite(tmp_path: Path, identity_secret: str) -> str:
    from bot.seed import seed

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
    return url


def ingest_all(url: str, broker: BrokerFile, **kwargs) -> Ingestor:
    ingestor = Ingestor(SQLEventSource(broker.path, db_url=url), db_url=url, idle_close_s=3600, batch_size=50, **kwargs)
    ingestor.run(threading.Event(), once=True)
    return ingestor


def conversations(url: str) -> dict[str, list[Conversation]]:
    out: dict[str, list[Conversation]] = {}
    with Session(get_engine(url)) as s:
        for conv in s.scalars(select(Conversation).order_by(Conversation.id)):
            out.setdefault(conv.sender_id, []).append(conv)
    return out


def turns(url: str, sender: str) -> list[Turn]:
    with Session(get_engine(url)) as s:
        return list(
            s.scalars(select(Turn).join(Conversation).where(Conversation.sender_id == sender).order_by(Turn.id))
        )


def count(url: str, model) -> int:
    with Session(get_engine(url)) as s:
        return s.scalar(select(func.count()).select_from(model))


def check_the_captured_conversations(url: str) -> None:
    convs = conversations(url)
    assert set(convs) == {"cap-verified", "cap-token", "cap-fallback", "cap-human", "cap-restart"}
    verified = convs["cap-verified"][0]
    assert (verified.channel, verified.customer_id, verified.turn_count) == ("rest", 1, 4)
    # every turn of the conversation is linked to the customer, also those before the verification
    vturns = turns(url, "cap-verified")
    assert vturns and all(t.customer_id == 1 for t in vturns)
    users = [t for t in vturns if t.role == "user"]
    assert [t.intent for t in users] == ["greet", "track_order", "inform", "goodbye"]
    assert all(0 < t.confidence <= 1 for t in users)
    assert users[2].text == "[EMAIL]" and users[2].raw_text is None  # redacted; raw text not kept by default
    assert users[1].entities[0]["value"] == "190001"
    bots = [t for t in vturns if t.role == "bot"]
    assert [t.action_name for t in bots] == ["utter_greet", "track_order_form", "action_track_order", "utter_goodbye"]
    assert any(t.role == "action" and t.action_name == "action_track_order" for t in vturns)
    assert convs["cap-token"][0].customer_id == 2  # the website token
    human = turns(url, "cap-human")
    assert "[PHONE]" in next(t.text for t in human if t.role == "user")
    assert "7946" not in " ".join(t.text for t in human)
    assert [len(convs[s]) for s in ("cap-restart",)] == [2]  # /restart ended the first conversation


def test_sqlite_records_the_conversations(crm_sqlite: str, tmp_path: Path) -> None:
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(rasa_events())
    ingestor = ingest_all(crm_sqlite, broker)
    assert ingestor.stats.events == 111 and ingestor.stats.duplicates == 0
    check_the_captured_conversations(crm_sqlite)
    convs = conversations(crm_sqlite)
    first, second = convs["cap-restart"]
    assert first.outcome == "abandoned" and first.ended_at is not None  # only a greeting, then /restart
    assert second.outcome == "open"
    ingestor.idle_close_s = 1  # the conversations are idle now: their outcome is decided
    assert ingestor.close_idle() == 5
    outcomes = {s: [c.outcome for c in cs] for s, cs in conversations(crm_sqlite).items()}
    assert outcomes == {
        "cap-verified": ["resolved"],
        "cap-token": ["resolved"],
        "cap-fallback": ["escalated"],  # the second fallback opened a ticket
        "cap-human": ["escalated"],
        "cap-restart": ["abandoned", "resolved"],
    }
    # the older per-message log gets the same turns, now with intents and the customer
    with Session(get_engine(crm_sqlite)) as s:
        rows = s.execute(
            select(Interaction.role, Interaction.intent, Interaction.customer_id, Interaction.text)
            .where(Interaction.sender_id == "cap-verified")
            .order_by(Interaction.created_at)
        ).all()
    assert [r.role for r in rows] == ["user", "bot"] * 4
    assert rows[2].intent == "track_order" and all(r.customer_id == 1 for r in rows) and rows[4].text == "[EMAIL]"


def test_replay_stores_nothing_twice(crm_sqlite: str, tmp_path: Path) -> None:
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(rasa_events())
    ingest_all(crm_sqlite, broker)
    before = (count(crm_sqlite, Turn), count(crm_sqlite, Conversation), count(crm_sqlite, Interaction))
    # the whole stream again (a broker that redelivers), and the offset rewound to the start
    broker.publish(rasa_events())
    with get_engine(crm_sqlite).begin() as conn:
        conn.execute(text("UPDATE crm_ingest_offsets SET position = 0"))
    again = ingest_all(crm_sqlite, broker)
    assert again.stats.events == 0 and again.stats.duplicates == 222
    assert (count(crm_sqlite, Turn), count(crm_sqlite, Conversation), count(crm_sqlite, Interaction)) == before
    assert count(crm_sqlite, IngestedEvent) == 111


def test_raw_text_is_kept_only_when_the_setting_says_so(crm_sqlite: str, tmp_path: Path) -> None:
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(rasa_events())
    ingest_all(crm_sqlite, broker, keep_raw_text=True)
    email = next(t for t in turns(crm_sqlite, "cap-verified") if t.intent == "inform")
    assert (email.text, email.raw_text) == ("[EMAIL]", "alice.martin@example.com")


def test_bad_messages_are_skipped_and_the_rest_stored(crm_sqlite: str, tmp_path: Path) -> None:
    import sqlite3

    broker = BrokerFile(tmp_path / "events.db")
    with sqlite3.connect(broker.path) as conn:
        conn.executemany(
            "INSERT INTO events (sender_id, data) VALUES (?, ?)",
            [("x", "not json"), ("x", "[]"), ("x", json.dumps({"sender_id": "x", "event": "user"})), (None, None)],
        )
    broker.publish(rasa_events()[:12])
    ingestor = ingest_all(crm_sqlite, broker)
    assert ingestor.stats.bad == 4 and ingestor.stats.events == 12
    with Session(get_engine(crm_sqlite)) as s:
        assert s.scalar(select(IngestOffset.position)) == broker.max_id()


@pytest.mark.postgres
def test_postgres_records_and_replays_idempotently(pg_database: str, tmp_path: Path, identity_secret: str) -> None:
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(rasa_events())
    first = ingest_all(pg_database, broker)
    assert first.stats.events == 111
    check_the_captured_conversations(pg_database)
    before = count(pg_database, Turn)
    broker.publish(rasa_events())  # replayed by the broker
    with get_engine(pg_database).begin() as conn:
        conn.execute(text("UPDATE crm_ingest_offsets SET position = 0"))
    again = ingest_all(pg_database, broker)
    assert again.stats.events == 0 and count(pg_database, Turn) == before
    assert count(pg_database, IngestedEvent) == 111


@pytest.mark.postgres
def test_postgres_outage_during_a_burst_loses_nothing(
    pg_database: str, pg_proxy: TcpProxy, tmp_path: Path, identity_secret: str
) -> None:
    """The ingestor process writes through a TCP proxy; the test cuts it mid-burst, then restores it."""
    broker = BrokerFile(tmp_path / "events.db")
    conversations_n = 20
    burst = [renamed(rasa_events(), f"burst{i}-") for i in range(conversations_n)]
    expected = 111 * conversations_n
    proxied = pg_database.replace(":5432/", f":{pg_proxy.port}/")
    env = {
        **os.environ,
        "DATABASE_URL": proxied,
        "CONCIERGE_IDENTITY_SECRET": CAPTURE_SECRET,
        "CONCIERGE_EVENTS_DB": str(broker.path),
        "CONCIERGE_CRM_POLL_MS": "20",
        "CONCIERGE_CRM_BATCH_SIZE": "40",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "ingestor.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.crm.ingestor"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        outage_started = -1
        for i, events in enumerate(burst):
            broker.publish(events)
            if i == conversations_n // 3:
                wait_until(lambda: count(pg_database, IngestedEvent) > 0, "the ingestor's first rows")  # it writes ...
                pg_proxy.cut()  # ... when the CRM database goes away, in the middle of the burst
                outage_started = count(pg_database, IngestedEvent)
            time.sleep(0.05)
        # the ingestor keeps failing and backing off (it said so twice), the broker keeps the events
        wait_until(lambda: log.read_text().count("CRM database unavailable") >= 2, "the ingestor to retry twice")
        during = count(pg_database, IngestedEvent)
        pg_proxy.restore()

        def all_stored() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return count(pg_database, IngestedEvent) >= expected

        wait_until(all_stored, f"all {expected} events in the CRM", timeout_s=120, every_s=0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log.read_text()
    assert "CRM database unavailable" in output  # the outage really happened to the ingestor
    assert 0 < outage_started == during < expected  # nothing was written while the database was away
    assert count(pg_database, IngestedEvent) == expected  # every event stored ...
    with get_engine(pg_database).connect() as conn:
        dupes = conn.execute(
            text("SELECT count(*) FROM (SELECT event_key FROM turns GROUP BY event_key HAVING count(*) > 1) d")
        )
        assert dupes.scalar() == 0  # ... exactly once
        per_sender = conn.execute(
            text(
                "SELECT c.sender_id, count(t.id) FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                "GROUP BY c.sender_id"
            )
        ).all()
        assert conn.execute(text("SELECT position FROM crm_ingest_offsets")).scalar() == broker.max_id()
    counts = {}
    for sender, n in per_sender:
        counts.setdefault(sender.split("-", 1)[1], set()).add(n)
    assert all(len(v) == 1 for v in counts.values()), counts  # every copy of a conversation is complete
    assert len(per_sender) == 5 * conversations_n


def test_the_channels_signed_claims_name_the_customer(crm_sqlite: str, tmp_path: Path) -> None:
    """The Concierge channel replaces a website token by claims it signs (the token is never published)."""
    from bot.services.identity import keyring
    from concierge_rasa.security import CLAIMS_KEY, sign_claims

    at = time.time()
    claims = sign_claims({"cid": 3, "exp": int(at) + 600, "session": "s1"}, keyring())
    forged = {**sign_claims({"cid": 4, "exp": int(at) + 600}, keyring()), "cid": 2}  # edited after signing
    expired = sign_claims({"cid": 4, "exp": int(at) - 5}, keyring())

    def user(sender: str, meta: dict, ts: float) -> dict:
        return {"sender_id": sender, "event": "user", "timestamp": ts, "text": "my orders", "metadata": meta}

    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(
        [
            user("claims-ok", {CLAIMS_KEY: claims}, at),
            user("claims-forged", {CLAIMS_KEY: forged}, at),
            user("claims-expired", {CLAIMS_KEY: expired}, at),
        ]
    )
    ingest_all(crm_sqlite, broker)
    convs = conversations(crm_sqlite)
    assert convs["claims-ok"][0].customer_id == 3
    assert convs["claims-forged"][0].customer_id is None
    assert convs["claims-expired"][0].customer_id is None


def test_a_conversation_closed_for_idleness_goes_on_in_the_same_session(crm_sqlite: str, tmp_path: Path) -> None:
    """Idle closing decides an outcome; if the same Rasa session continues, the record does too."""
    events = [e for e in rasa_events() if e["sender_id"] == "cap-verified"]
    split = next(i for i, e in enumerate(events) if e["event"] == "user" and e["text"] == "thanks, bye")
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(events[:split])
    ingestor = ingest_all(crm_sqlite, broker)
    ingestor.idle_close_s = 1
    assert ingestor.close_idle() == 1
    assert conversations(crm_sqlite)["cap-verified"][0].outcome == "resolved"
    broker.publish(events[split:])  # the customer comes back within Rasa's session
    ingest_all(crm_sqlite, broker)
    (conv,) = conversations(crm_sqlite)["cap-verified"]
    assert (conv.ended_at, conv.outcome, conv.turn_count) == (None, "open", 4)


# the captured conversations' personal values: an email (chat verification) and "my phone is +44 20 7946 0958"
EMAIL = "alice.martin@example.com"
EMAIL_FORMS = (EMAIL, EMAIL.split("@")[0], EMAIL.replace("@", "%40"))  # the address, its name part, URL-encoded
# the phone's national number: what is left of every written form once the separators are gone
# (+44 20 7946 0958, 0044-20-7946-0958, (020) 7946 0958, 020.7946.0958, 442079460958)
PHONE_DIGITS = "2079460958"
NUMBER_RUN = re.compile(r"\d(?:[\d\s().\-/]*\d)?")  # digits with the separators phone numbers are written with
INGESTOR_TABLES = ("conversations", "turns", "interactions", "crm_ingested_events", "crm_ingest_offsets")
RETAINED = {("turns", "raw_text")}  # the retention setting's column: empty by default, the raw message when kept
# A personal value can be stored only in a column that holds text (VARCHAR, TEXT, JSON) or, for the
# phone, a whole number; dates, times, floats and flags cannot hold one (a DATETIME's microseconds
# '…49.887946' are not a phone, which the old check of every column for '7946' took them for).
TEXT_TYPES = (sqltypes.String, sqltypes.JSON)
NUMBER_TYPES = (sqltypes.Integer,)
NO_TEXT_TYPES = (sqltypes.DateTime, sqltypes.Date, sqltypes.Time, sqltypes.Float, sqltypes.Numeric, sqltypes.Boolean)


def personal_values_in(value: str) -> list[str]:
    """Which of the captured email and phone ``value`` holds, in any of their written forms."""
    low = value.lower()
    found = ["email"] if any(form in low for form in EMAIL_FORMS) else []
    if any(PHONE_DIGITS in re.sub(r"\D", "", run) for run in NUMBER_RUN.findall(value)):
        found.append("phone")
    return found


def stored_crm_values(url: str) -> list[tuple[str, str, str]]:
    """(table, column, value) of every value that could hold a personal value, in every CRM table the
    ingestor writes. A column of a type not classified above fails the test (it could be a new hiding place)."""
    engine = get_engine(url)
    out = []
    with engine.connect() as conn:
        for table in INGESTOR_TABLES:
            columns = []
            for col in inspect(engine).get_columns(table):
                if (table, col["name"]) in RETAINED or isinstance(col["type"], NO_TEXT_TYPES):
                    continue
                assert isinstance(col["type"], TEXT_TYPES + NUMBER_TYPES), f"unclassified column {table}.{col}"
                columns.append(col["name"])
            names = ", ".join(f'"{c}"' for c in columns)
            for row in conn.execute(text(f"SELECT {names} FROM {table}")):  # noqa: S608 - reflected names
                out += [(table, c, str(v)) for c, v in zip(columns, row, strict=True) if v is not None]
    return out


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("my phone is +44 20 7946 0958", ["phone"]),
        ("call 0044-20-7946-0958", ["phone"]),
        ("(020) 7946 0958", ["phone"]),
        ("020.7946.0958 or Alice.Martin@Example.com", ["email", "phone"]),
        ('{"value": "442079460958"}', ["phone"]),
        ("alice.martin%40example.com", ["email"]),
        ("2026-12-05 06:21:49.887946", []),  # the timestamp the old check took for the phone's '7946'
        ("my phone is [PHONE], email [EMAIL]", []),
        ('[{"entity": "email", "value": "[EMAIL]", "start": 0, "end": 24}]', []),
    ],
)
def test_the_leak_check_finds_each_written_form_and_not_timestamps(value: str, found: list[str]) -> None:
    assert personal_values_in(value) == found


@pytest.mark.parametrize("keep_raw_text", [False, True])
def test_no_stored_crm_column_holds_the_customers_email_or_phone(
    crm_sqlite: str, tmp_path: Path, keep_raw_text: bool
) -> None:
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(rasa_events())
    ingest_all(crm_sqlite, broker, keep_raw_text=keep_raw_text)
    values = stored_crm_values(crm_sqlite)
    assert len(values) > 500
    assert {("turns", "text"), ("turns", "entities"), ("interactions", "text")} <= {(t, c) for t, c, _ in values}
    leaks = [(t, c, v[:80], found) for t, c, v in values if (found := personal_values_in(v))]
    assert leaks == []
    email = next(t for t in turns(crm_sqlite, "cap-verified") if t.intent == "inform")
    assert email.entities == [{"entity": "email", "value": "[EMAIL]", "start": 0, "end": 24}]
    assert email.raw_text == ("alice.martin@example.com" if keep_raw_text else None)
    order = next(t for t in turns(crm_sqlite, "cap-verified") if t.intent == "track_order")
    assert order.entities[0]["value"] == "190001"  # shop identifiers stay


def test_product_names_and_the_agents_name_stay_readable(crm_sqlite: str, tmp_path: Path) -> None:
    from bot.db.models import Product

    with Session(get_engine(crm_sqlite)) as s:
        product = s.scalars(select(Product).order_by(Product.id)).first()
        product.name = "Kestrel S2 Camera Bag"
        s.commit()
    at = 1_790_000_000.0
    events = [
        {"sender_id": "names", "event": "session_started", "timestamp": at},
        {
            "sender_id": "names",
            "event": "user",
            "timestamp": at + 1,
            "text": "is the Kestrel S2 Camera Bag waterproof?",
        },
        {"sender_id": "names", "event": "bot", "timestamp": at + 2, "text": "1x Kestrel S2 Camera Bag, 1x Lumen X9"},
        {
            "sender_id": "names",
            "event": "bot",
            "timestamp": at + 3,
            "text": "Alex (support): Hello Alice Martin, this is Alex.",
            "metadata": {"from_person": True, "agent": "Alex"},
        },
    ]
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(events)
    ingestor = ingest_all(crm_sqlite, broker)
    assert [t.text for t in turns(crm_sqlite, "names") if t.role in ("user", "bot")] == [
        "is the Kestrel S2 Camera Bag waterproof?",
        "1x Kestrel S2 Camera Bag, 1x Lumen X9",
        "Alex (support): Hello [NAME], this is Alex.",
    ]
    # a product added later is known after a refresh
    assert ingestor.redactor.keep_count >= 1
    with Session(get_engine(crm_sqlite)) as s:
        s.scalars(select(Product).order_by(Product.id)).first().name = "Maya Linwood Notebook"
        s.commit()
    ingestor.refresh_catalogue(force=True)
    assert ingestor.redactor.redact("I love the Maya Linwood Notebook") == "I love the Maya Linwood Notebook"


def test_warm_up_loads_the_pipeline_and_the_catalogue_before_the_first_batch(crm_sqlite: str, tmp_path: Path) -> None:
    from bot.crm.redaction import Redactor

    redactor = Redactor()
    ingestor = Ingestor(SQLEventSource(tmp_path / "events.db", db_url=crm_sqlite), db_url=crm_sqlite, redactor=redactor)
    ingestor.warm_up()
    assert redactor._nlp is not None and redactor.keep_count == 40  # noqa: SLF001 - loaded, not lazily later


def test_a_redelivered_event_in_the_same_batch_does_not_shift_the_roles(crm_sqlite: str, tmp_path: Path) -> None:
    at = 1_790_000_100.0
    bot = {"sender_id": "dup", "event": "bot", "timestamp": at + 1, "text": "Your parcel left Memphis, TN."}
    user = {"sender_id": "dup", "event": "user", "timestamp": at + 2, "text": "I moved to Memphis, TN last week"}
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish([{"sender_id": "dup", "event": "session_started", "timestamp": at}, bot, bot, user])
    ingestor = ingest_all(crm_sqlite, broker)
    assert ingestor.stats.duplicates == 1
    stored = [t.text for t in turns(crm_sqlite, "dup") if t.role in ("user", "bot")]
    assert stored[0] == "Your parcel left Memphis, TN."  # the carrier's place in a bot reply stays
    assert stored[1].startswith("I moved to [PLACE]")  # the customer's does not


def test_per_batch_lookups_store_exactly_what_per_event_lookups_stored(tmp_path: Path, identity_secret: str) -> None:
    """Issue 24: the stored keys read once per batch and each sender's open conversation followed
    through the batch give the same conversations, outcomes, turns and log rows as one query per
    event did: batches that cut conversations in the middle, a /restart, redeliveries inside a batch
    and across batches, and a conversation going on after an idle close."""
    from bot.seed import seed

    events = rasa_events()
    stream = events + renamed(events, "b-") + events[40:60] + [events[5]]  # redelivered, in and across batches
    # a /restart, then in the same batch an event that is no session start: the closed conversation reopens
    restart = next(e for e in events if e["event"] == "restart")
    bot = next(e for e in events if e["event"] == "bot" and e["sender_id"] == restart["sender_id"])
    stream += [{**e, "timestamp": restart["timestamp"] + 900 + i} for i, e in enumerate((restart, bot))]
    assert len(stream) % 7 == 0  # both in the last batch
    recorded = []
    for batch_lookups in (False, True):
        url = f"sqlite:///{tmp_path / f'crm-{batch_lookups}.db'}"
        seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
        broker = BrokerFile(tmp_path / f"events-{batch_lookups}.db")
        broker.publish(stream)
        ingestor = Ingestor(SQLEventSource(broker.path, db_url=url), db_url=url, idle_close_s=3600, batch_size=7)
        ingestor.batch_lookups = batch_lookups
        ingestor.run(threading.Event(), once=True)
        with get_engine(url).connect() as conn:  # before the idle close decides every outcome again
            open_now = conn.execute(text("SELECT id, ended_at, outcome FROM conversations ORDER BY id")).all()
        assert ingestor.close_idle() == 10  # the captured conversations are old: all idle now
        late = {**events[-1], "timestamp": events[-1]["timestamp"] + 5000, "text": "one more thing"}
        broker.publish([late])
        ingestor.run(threading.Event(), once=True)
        assert (ingestor.stats.events, ingestor.stats.duplicates) == (225, 21)
        with get_engine(url).connect() as conn:
            recorded.append([
                open_now,
                conn.execute(text("SELECT id, sender_id, channel, customer_id, started_at, last_event_at, ended_at, "
                                  "outcome, turn_count, tasks_completed, escalated, last_fallback FROM conversations "
                                  "ORDER BY id")).all(),
                conn.execute(text("SELECT conversation_id, role, text, intent, entities, action_name, event_key "
                                  "FROM turns ORDER BY id")).all(),
                conn.execute(text("SELECT sender_id, conversation_id, role, text, customer_id, action "
                                  "FROM interactions ORDER BY id")).all(),
            ])
        get_engine(url).dispose()
    per_event, per_batch = recorded
    assert len(per_event[1]) == 12 and per_batch == per_event
