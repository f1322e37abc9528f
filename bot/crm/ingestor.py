"""CRM ingestor: Rasa's event stream -> conversations and turns in the CRM database.

    python -m bot.crm.ingestor                 # the embedded SQL broker (var/events.db), until Ctrl-C
    python -m bot.crm.ingestor --source pika   # the production profile's RabbitMQ queue
    python -m bot.crm.ingestor --once          # what is there now, then a JSON line of figures

Why its own process: nothing about recording sits between a customer's message and the
reply. Rasa publishes every event to its broker; this reads them in batches and writes each
batch in ONE transaction together with the events' keys (``crm_ingested_events``, a replay
stores nothing twice) and the source's offset. When the CRM database is unavailable the batch
is retried with backoff, the offset does not move and RabbitMQ messages stay unacknowledged,
so an outage delays the record but loses nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from bot.crm import records
from bot.crm.records import BadEvent, RasaEvent
from bot.crm.redaction import Span, apply, get_redactor, redact_entities, tracking_places
from bot.crm.sources import Batch, EventSource, PikaEventSource, SQLEventSource
from bot.db import conversations as repo
from bot.db import crm_ingest
from bot.db import interactions as interactions_repo
from bot.db.base import utcnow
from bot.db.models import Conversation
from bot.db.session import get_engine, session_scope
from bot.services.identity import customer_of_message
from bot.settings import get_settings

logger = logging.getLogger("bot.crm.ingestor")
CATALOGUE_REFRESH_S = 300.0  # how often a running ingestor reloads the product names


@dataclass(frozen=True)
class Redacted:
    """A text as the CRM stores it, and the spans of personal data found in the original."""

    text: str
    spans: list[Span]


@dataclass
class Stats:
    """Counters since start (logged as progress; printed as JSON by ``--once``)."""

    events: int = 0  # stored now
    duplicates: int = 0  # already stored (replays, redeliveries)
    bad: int = 0  # not Rasa events (logged, skipped)
    batches: int = 0
    retries: int = 0
    busy_s: float = 0.0  # time spent turning batches into rows


class Ingestor:
    """Applies batches of raw events to the CRM; one transaction per batch.

    ``batch_lookups`` (issue 24): which events are stored already is read once per batch, each
    sender's open conversation is looked up once per batch and then followed, and the rows actions
    wrote before the ingestor saw their conversation are linked once per sender and batch, after
    its events (an action writes its row before Rasa publishes the action's event, so every row of
    the batch's actions exists when the batch begins; linked at the end, a row goes to the latest
    conversation started before it, even one this batch started after the action's event); False:
    all of it per event, as before (the benchmark's baseline, ``bench/crm_ingest.py``).
    """

    batch_lookups = True

    def __init__(
        self,
        source: EventSource,
        *,
        db_url: str | None = None,
        keep_raw_text: bool | None = None,
        idle_close_s: int | None = None,
        batch_size: int | None = None,
        redactor: object | None = None,
    ) -> None:
        settings = get_settings()
        self.source = source
        self.db_url = db_url
        self.keep_raw_text = settings.crm_keep_raw_text if keep_raw_text is None else keep_raw_text
        self.idle_close_s = idle_close_s or settings.crm_idle_close_s
        self.batch_size = batch_size or settings.crm_batch_size
        self._redactor = redactor
        self._catalogue_at: float | None = None
        self.stats = Stats()

    @property
    def redactor(self):  # noqa: ANN201 - bot.crm.redaction.Redactor, loaded on first use
        if self._redactor is None:
            self._redactor = get_redactor()
        return self._redactor

    # ------------------------------------------------------------ one batch
    def store(self, batch: Batch) -> int:
        """Writes a batch in one transaction, then lets the source acknowledge it. Raises on DB errors."""
        t0 = time.perf_counter()
        events = self._parse(batch.messages)
        redacted = self._redact(events)
        with session_scope(self.db_url) as session:
            stored = self._apply_all(session, events, redacted)
            self.source.save_position(session, batch)
        self.source.ack(batch)
        self.stats.batches += 1
        self.stats.events += stored
        self.stats.busy_s += time.perf_counter() - t0
        return stored

    def _parse(self, messages: Sequence[bytes | str]) -> list[RasaEvent]:
        events = []
        for raw in messages:
            try:
                events.append(records.parse_event(raw))
            except BadEvent as exc:  # kept out of the CRM; the content is not logged (it may be personal)
                self.stats.bad += 1
                logger.warning("skipped a broker message that is not a Rasa event (%s, %d bytes)", exc, len(raw or ""))
        return events

    def warm_up(self) -> None:
        """Loads the spaCy pipeline and the product names before the first batch, so the first
        conversations of a run are not recorded seconds late (the pipeline takes 2-10 s to load)."""
        _ = self.redactor.nlp if hasattr(self.redactor, "nlp") else None
        self.refresh_catalogue(force=True)

    def refresh_catalogue(self, force: bool = False) -> None:
        """Product names are not personal data: the redactor keeps them (loaded once, then every
        ``CATALOGUE_REFRESH_S`` while running, so new products are known without a restart)."""
        now = time.monotonic()
        if not force and self._catalogue_at is not None and now - self._catalogue_at < CATALOGUE_REFRESH_S:
            return
        self._catalogue_at = now
        try:
            names = load_product_names(self.db_url)
            places = load_tracking_places(self.db_url)
        except (OperationalError, DBAPIError) as exc:  # the CRM is down: keep the names known so far
            logger.warning("product names not refreshed (%s)", type(exc).__name__)
            return
        if hasattr(self.redactor, "set_keep_terms"):
            self.redactor.set_keep_terms(names)
        if hasattr(self.redactor, "set_place_terms"):  # tracking places in bot replies are not names
            self.redactor.set_place_terms(places)

    def _redact(self, events: list[RasaEvent]) -> dict[str, Redacted]:
        """Redacted copies of every text in the batch and of its turn's entities (one NER pass,
        outside the DB transaction): nothing the customer typed reaches the CRM unredacted."""
        texts: dict[str, str] = {}
        roles: dict[str, str] = {}
        keep: dict[str, list[str]] = {}
        for ev in events:
            if ev.type in ("user", "bot") and isinstance(ev.data.get("text"), str) and ev.data["text"]:
                texts[ev.key] = ev.data["text"][: records.MAX_TEXT]
                metadata = ev.data.get("metadata") if isinstance(ev.data.get("metadata"), dict) else {}
                agent = metadata.get("agent") if ev.type == "bot" else None
                roles[ev.key] = ev.type
                keep[ev.key] = [agent[:60]] if isinstance(agent, str) and agent.strip() else []
            elif ev.type == "slot" and ev.data.get("name") in records.CSAT_COMMENT_SLOTS:
                value = ev.data.get("value")
                if isinstance(value, str) and value.strip():
                    texts[ev.key] = value.strip()[: records.MAX_TEXT]
                    roles[ev.key] = "user"
                    keep[ev.key] = []
        if not texts:
            return {}
        self.refresh_catalogue()
        keys = list(texts)
        all_spans = self.redactor.spans_many(
            [texts[k] for k in keys], roles=[roles[k] for k in keys], keep=[keep[k] for k in keys]
        )
        return {k: Redacted(apply(texts[k], spans), spans) for k, spans in zip(keys, all_spans, strict=True)}

    def _apply_all(self, session: Session, events: list[RasaEvent], redacted: dict[str, Redacted]) -> int:
        stored = 0
        fresh: set[str] = set()
        if self.batch_lookups:
            known = crm_ingest.seen_many(session, list({ev.key: None for ev in events}))
            is_seen = known.__contains__
        else:
            is_seen = functools.partial(crm_ingest.seen, session)
        open_convs: dict[str, Conversation] = {}  # each sender's open conversation, as this batch left it
        # senders whose actions ran in this batch, in order (linked after it; one at a time without batch_lookups)
        to_link: dict[str, None] | None = {} if self.batch_lookups else None
        for ev in events:
            if ev.key in fresh or is_seen(ev.key):
                self.stats.duplicates += 1
                continue
            fresh.add(ev.key)
            crm_ingest.mark(session, ev.key, ev.sender_id, ev.type, ev.at)
            conv = self._apply(session, ev, redacted.get(ev.key), open_convs.get(ev.sender_id), to_link)
            if self.batch_lookups and conv.ended_at is None:
                open_convs[ev.sender_id] = conv
            else:
                open_convs.pop(ev.sender_id, None)  # closed: looked up again
            stored += 1
        for sender_id in to_link or ():
            repo.link_unlinked(session, sender_id)
        return stored

    def _apply(
        self,
        session: Session,
        ev: RasaEvent,
        found: Redacted | None,
        known_open: Conversation | None = None,
        to_link: dict[str, None] | None = None,
    ) -> Conversation:
        """Applies one event; returns the sender's conversation it went to.

        ``known_open``: the sender's open conversation as an earlier event of this batch left it. Only
        this process creates, closes and reopens conversations, one open per sender at most (a start or
        a reopen happens only when none is open), so it is what the query would return. ``to_link``:
        where an action's sender goes to have its rows linked after the batch (given with ``batch_lookups``)."""
        fx = records.effects_of(ev)
        starts = fx.starts or (ev.type == "action" and ev.data.get("name") == "action_session_start")
        conv = known_open if known_open is not None else repo.open_for_sender(session, ev.sender_id)
        if conv is not None and starts and conv.turn_count > 0:
            self._close(session, conv, conv.last_event_at)  # the previous Rasa session is over
            conv = None
        if conv is None and not starts:
            # closed for idleness, yet the same Rasa session goes on (a restart or a new session
            # always begins with a session start): the conversation is open again
            conv = repo.reopen_latest(session, ev.sender_id)
        if conv is None:
            conv = repo.start(session, ev.sender_id, ev.at, fx.channel)
        if ev.at > conv.last_event_at:
            conv.last_event_at = ev.at
        if fx.channel and not conv.channel:
            conv.channel = fx.channel
        if fx.user_turn:
            conv.turn_count += 1
        if fx.fallback is not None:
            conv.last_fallback = fx.fallback
        if fx.escalated:
            conv.escalated = True
        if fx.task_completed:
            conv.tasks_completed += 1
        if fx.resolved and conv.tasks_completed == 0:
            conv.tasks_completed = 1
        if fx.csat_rating is not None:
            conv.csat_rating = fx.csat_rating
        if fx.csat_comment is not None:
            conv.csat_comment = found.text if found is not None else fx.csat_comment
        customer_id = fx.customer_id
        if customer_id is None and (fx.claims or fx.customer_token):
            customer_id = customer_of_message(ev.data.get("metadata"), fx.customer_token, ev.data["timestamp"])
        if customer_id is not None:
            repo.link_customer(session, conv, customer_id)

        turn = records.turn_of(ev)
        if turn is not None and turn.role == "action":
            # an action's rows (ticket, feedback, handoff...) are written before its event arrives:
            # link those written before this conversation existed (the hub's conversation_id)
            if to_link is not None:
                to_link[ev.sender_id] = None
            else:
                repo.link_unlinked(session, ev.sender_id)
        if turn is not None:
            text = found.text if found is not None else ""
            # entity values repeat the customer's words: redacted as the text was (raw ones stay
            # recoverable from raw_text and the offsets only when the retention setting keeps it)
            entities = redact_entities(turn.entities, turn.text, found.spans if found is not None else [])
            action_name = turn.action_name
            if turn.role == "bot" and action_name is None:
                action_name = repo.last_action(session, conv.id)
            repo.add_turn(
                session,
                conv,
                role=turn.role,
                event=turn.event,
                text=text,
                raw_text=turn.text if self.keep_raw_text and turn.text else None,
                intent=turn.intent,
                confidence=turn.confidence,
                entities=json.loads(entities) if entities else None,
                sentiment_label=turn.sentiment_label,
                sentiment_probability=turn.sentiment_probability,
                action_name=action_name,
                event_at=ev.at,
                event_key=ev.key,
            )
            if turn.role in ("user", "bot"):  # the older per-message log, kept for its readers
                row = interactions_repo.log(
                    session,
                    sender_id=ev.sender_id,
                    conversation_id=conv.id,
                    role=turn.role,
                    text=text,
                    customer_id=conv.customer_id,
                    intent=turn.intent,
                    confidence=turn.confidence,
                    action=action_name,
                    sentiment_label=turn.sentiment_label,
                    sentiment_score=turn.sentiment_probability,
                )
                row.created_at = ev.at
        if fx.ends:
            self._close(session, conv, ev.at)
        return conv

    @staticmethod
    def _close(session: Session, conv: Conversation, at) -> None:  # noqa: ANN001 - datetime
        repo.close(
            session,
            conv,
            at,
            records.outcome(
                escalated=conv.escalated,
                last_fallback=conv.last_fallback,
                tasks_completed=conv.tasks_completed,
                closed=True,
            ),
        )

    def close_idle(self) -> int:
        """Ends conversations without events for ``idle_close_s``: their outcome is decided now."""
        before = utcnow() - timedelta(seconds=self.idle_close_s)
        with session_scope(self.db_url) as session:
            idle = repo.idle(session, before)
            for conv in idle:
                self._close(session, conv, conv.last_event_at)
        return len(idle)

    # ------------------------------------------------------------ the loop
    def run(
        self,
        stop: threading.Event,
        *,
        poll_s: float = 0.1,
        once: bool = False,
        progress_every_s: float = 30.0,
        max_backoff_s: float = 5.0,
    ) -> Stats:
        """Reads and stores until ``stop`` is set (or, with ``once``, until the source is empty)."""
        backoff = 0.0
        last_progress = last_idle_check = time.monotonic()
        logged = 0
        while not stop.is_set():
            try:
                batch = self.source.fetch(self.batch_size)
                if batch.messages:
                    self.store(batch)
                    if backoff:
                        logger.info("CRM database reachable again; catching up")
                    backoff = 0.0
                now = time.monotonic()
                if now - last_idle_check >= min(30.0, self.idle_close_s / 2):
                    last_idle_check = now
                    closed = self.close_idle()
                    if closed:
                        logger.info("closed %d idle conversation(s)", closed)
                if not batch.messages:
                    if once:
                        break
                    self.source.wait(poll_s)
            except Exception as exc:  # noqa: BLE001 - nothing is acknowledged: retry, never drop
                self.stats.retries += 1
                backoff = min(max_backoff_s, max(0.2, backoff * 2))
                if isinstance(exc, (OperationalError, DBAPIError, OSError)):
                    logger.warning(
                        "CRM database unavailable (%s); events wait in the broker, retrying in %.1fs",
                        type(exc).__name__,
                        backoff,
                    )
                else:
                    logger.exception("storing a batch failed; it stays in the broker, retrying in %.1fs", backoff)
                _dispose(self.db_url)
                self.source.wait(backoff)
            now = time.monotonic()
            if now - last_progress >= progress_every_s and self.stats.events != logged:
                logged = self.stats.events
                last_progress = now
                logger.info(
                    "ingested %d events (%d duplicates, %d bad) in %d batches",
                    self.stats.events,
                    self.stats.duplicates,
                    self.stats.bad,
                    self.stats.batches,
                )
        return self.stats


def load_product_names(db_url: str | None = None) -> list[str]:
    """The catalogue's product names (what the redactor keeps), read in a short transaction."""
    with session_scope(db_url) as session:
        return crm_ingest.product_names(session)


def load_tracking_places(db_url: str | None = None) -> list[str]:
    """The tracking table's places (what the redactor keeps in bot replies), read in a short transaction."""
    with session_scope(db_url) as session:
        return tracking_places(session)


def _dispose(db_url: str | None) -> None:
    """Drops pooled connections after an outage, so the next try opens fresh ones."""
    try:
        get_engine(db_url).dispose()
    except Exception:  # noqa: BLE001, S110 - the next attempt reports the problem
        pass


def build_source(kind: str | None = None, db_url: str | None = None) -> EventSource:
    """The source the settings name (CONCIERGE_CRM_SOURCE)."""
    settings = get_settings()
    kind = kind or settings.crm_source
    if kind == "pika":
        return PikaEventSource(
            settings.rabbitmq_queue,
            host=settings.rabbitmq_host,
            port=settings.rabbitmq_port,
            username=settings.rabbitmq_user,
            password=settings.rabbitmq_password,
        )
    return SQLEventSource(settings.events_db, db_url=db_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concierge CRM ingestor: Rasa events -> CRM records")
    parser.add_argument("--source", choices=("sql", "pika"), help="default: CONCIERGE_CRM_SOURCE (sql)")
    parser.add_argument("--once", action="store_true", help="store what is there now, print figures, exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:  # recording may lag a little; live turns of the Rasa and action servers come first
        os.nice(10)
    except OSError:  # pragma: no cover - not permitted here: run at normal priority
        pass
    source = build_source(args.source)
    ingestor = Ingestor(source)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ingestor.warm_up()
    except Exception:  # noqa: BLE001 - the CRM may be down at start: the loop retries and loads on first use
        logger.warning("warm-up failed; the redactor loads on the first batch", exc_info=True)
    logger.info("CRM ingestor reading %s (raw text kept: %s)", source.name, ingestor.keep_raw_text)
    t0 = time.perf_counter()
    try:
        stats = ingestor.run(stop, poll_s=settings.crm_poll_ms / 1000, once=args.once)
    finally:
        source.close()
    elapsed = time.perf_counter() - t0
    logger.info("stopped after %d events", stats.events)
    if args.once:
        print(
            json.dumps(
                {
                    "events": stats.events,
                    "duplicates": stats.duplicates,
                    "bad": stats.bad,
                    "batches": stats.batches,
                    "seconds": round(elapsed, 3),
                    "busy_s": round(stats.busy_s, 3),
                    "events_per_s": round(stats.events / stats.busy_s, 1) if stats.busy_s else None,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
