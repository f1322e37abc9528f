"""CRM ingestor benchmark: CPU milliseconds per ingested event, spaCy as it ran before vs now.

    make bench-crm-ingest     (or: .venv/bin/python bench/crm_ingest.py [--copies 16] [--rounds 2])

Why: the ingestor was the second process by CPU under `make run` (issue 24), and its NER pass is
the part that grows with the traffic. This builds a broker file as Rasa's SQL event broker writes
it from the 111 events Rasa 3.6.21 published for six real conversations
(``tests/bot/crm/fixtures/rasa_events.jsonl``), copied ``--copies`` times under other sender ids;
each copy's customer messages are other messages of the labelled redaction set
(``data/redaction/labelled.jsonl``, customer role, each used once), and the shop numbers in the
bot's replies differ per copy, so only the fixed replies (greeting, goodbye, fallbacks, FAQ) repeat,
as they do in real traffic. Each run is a fresh process on a fresh copy of a small seeded CRM
database that warms up (spaCy, the catalogue) as ``python -m bot.crm.ingestor`` does, then runs
the ingestor's own loop (``Ingestor.run(once=True)``) over every event; its CPU time in that loop
divided by the events stored is the figure. Variants, alternated ``--rounds`` times in one run:

- ``before``: the spaCy pipeline as it ran before (its shared tok2vec loaded and run, every text
  through NER, no memory of texts seen): ``NerOptions(cache_size=0, drop_unused_tok2vec=False,
  skip_letterless=False)``, and the database looked up per event (``Ingestor.batch_lookups = False``:
  is the event stored, which conversation is open);
- ``spacy_only``: the spaCy defaults (``bot.crm.redaction.NerOptions()``), lookups per event;
- ``after``: both defaults.

One more run of each, under ``py-spy record`` (when installed: ``pip install py-spy``), gives where
the ingestor's time goes inside ``Ingestor.store`` (spaCy, the patterns, event parsing, the
database, the rest). Every variant stores the same rows: the bench checks that the redacted texts of
their CRM databases are identical. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests" / "bot" / "crm" / "fixtures" / "rasa_events.jsonl"
LABELLED = ROOT / "data" / "redaction" / "labelled.jsonl"
# the secret the fixture's website token was signed with (tests/bot/crm/conftest.py): a test value
CAPTURE_SECRET = "capture-secret-0123456789-abcdefghijklmnop"
LEGACY_NER = {"cache_size": 0, "drop_unused_tok2vec": False, "skip_letterless": False}
# variant -> (NerOptions, Ingestor.batch_lookups)
VARIANTS = {
    "before": (LEGACY_NER, False),
    "spacy_only": ({}, False),
    "after": ({}, True),
}
SHOP_NUMBER = re.compile(r"(?<!\d)(\d{6})(?!\d)")
# stages of Ingestor.store in py-spy's stacks (first match wins)
STAGES = [
    ("spacy_ner", ("spacy/", "thinc/", "ner_many (")),
    ("patterns", ("pattern_spans (", "_is_phone (", "merge (", "redact_entities (")),
    ("redaction_other", ("bot/crm/redaction.py",)),
    ("parse_events", ("parse_event (", "_parse (")),
    ("database", ("sqlalchemy/", "sqlite3", "session_scope (")),
]


def log(msg: str) -> None:
    print(f"[bench-crm-ingest] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data
def build_events(copies: int) -> tuple[list[dict], dict]:
    """The fixture's conversations ``copies`` times: other senders, other customer messages, the bot's
    shop numbers shifted per copy. Returns the events and what they hold."""
    fixture = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    pool = [r["text"] for r in rows if r.get("role", "user") == "user"]
    events: list[dict] = []
    used = 0
    for copy in range(copies):
        for event in fixture:
            ev = json.loads(json.dumps(event))
            ev["sender_id"] = f"bench{copy:03d}-{event['sender_id']}"
            text = ev.get("text")
            if ev.get("event") == "user" and isinstance(text, str) and not text.startswith("/"):
                ev["text"] = pool[used % len(pool)]  # a customer message of the labelled set
                used += 1
                if isinstance(ev.get("parse_data"), dict):
                    ev["parse_data"] = {**ev["parse_data"], "text": ev["text"], "entities": []}
            elif ev.get("event") == "bot" and isinstance(text, str) and copy:
                ev["text"] = SHOP_NUMBER.sub(lambda m, c=copy: str(int(m.group(1)) + c), text)
            events.append(ev)
    texts = [e["text"] for e in events if e.get("event") in ("user", "bot") and e.get("text")]
    return events, {
        "events": len(events),
        "texts": len(texts),
        "distinct_texts": len(set(texts)),
        "customer_messages": used,
        "customer_messages_repeated": max(0, used - len(pool)),
    }


def write_broker(path: Path, events: list[dict]) -> None:
    """The table Rasa's SQLEventBroker creates, with one row per event."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255), data TEXT)")
        conn.executemany(
            "INSERT INTO events (sender_id, data) VALUES (?, ?)", [(e["sender_id"], json.dumps(e)) for e in events]
        )


def seed_crm(path: Path) -> None:
    """A small shop (the CRM tests' size); its connections closed, so the file is whole to copy (WAL)."""
    from bot.db.session import get_engine
    from bot.seed import seed

    url = f"sqlite:///{path}"
    seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
    get_engine(url).dispose()


# ---------------------------------------------------------------- one run (a child process)
def child(variant: str, crm: Path, events_db: Path, batch_size: int | None) -> None:
    """One ingestor process: warm up as ``python -m bot.crm.ingestor`` does, then its loop, timed."""
    import threading

    from bot.crm.ingestor import Ingestor
    from bot.crm.redaction import NerOptions, Redactor
    from bot.crm.sources import SQLEventSource

    url = f"sqlite:///{crm}"
    ner, Ingestor.batch_lookups = VARIANTS[variant]
    redactor = Redactor(options=NerOptions(**ner))
    ingestor = Ingestor(
        SQLEventSource(events_db, db_url=url), db_url=url, idle_close_s=10**6, batch_size=batch_size, redactor=redactor
    )
    ingestor.warm_up()
    stop = threading.Event()

    def give_up_on_retry() -> None:  # a failing batch is retried forever: end the run, it is reported
        while not stop.wait(0.5):
            if ingestor.stats.retries:
                stop.set()

    threading.Thread(target=give_up_on_retry, daemon=True).start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stats = ingestor.run(stop, once=True, progress_every_s=10**6)
    stop.set()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        json.dumps(
            {
                "variant": variant,
                "events": stats.events,
                "batches": stats.batches,
                "bad": stats.bad,
                "retries": stats.retries,
                "cpu_s": cpu,
                "wall_s": wall,
                "ner": dict(redactor.ner_stats),
                "pipeline": list(redactor.nlp.pipe_names),
            }
        ),
        flush=True,
    )


def run_child(variant: str, work: Path, crm_seed: Path, events_db: Path, args: argparse.Namespace,
              tag: str, py_spy: str | None = None) -> tuple[dict, Path]:
    crm = work / f"crm-{tag}.db"
    shutil.copyfile(crm_seed, crm)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--crm", str(crm),
           "--events-db", str(events_db)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    raw = work / f"profile-{tag}.txt"
    if py_spy:
        cmd = [py_spy, "record", "--format", "raw", "--rate", "200", "--output", str(raw), "--", *cmd]
    env = {**os.environ, "CONCIERGE_VAR_DIR": str(work / "var"), "CONCIERGE_IDENTITY_SECRET": CAPTURE_SECRET,
           "DATABASE_URL": f"sqlite:///{crm}", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"bench-crm-ingest: the {variant} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1]), crm


def stage_shares(raw: Path) -> dict | None:
    """Shares of the samples inside ``Ingestor.store`` by stage, from a py-spy raw file."""
    if not raw.exists():
        return None
    counts = dict.fromkeys([name for name, _ in STAGES] + ["other"], 0)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "store (bot/crm/ingestor.py" not in stack:
            continue
        stage = next((name for name, marks in STAGES if any(m in stack for m in marks)), "other")
        counts[stage] += int(n)
    total = sum(counts.values())
    return {"samples": total, **{k: round(v / total, 3) for k, v in counts.items()}} if total else None


def crm_texts(crm: Path) -> list[tuple]:
    """What the CRM holds: conversations (and their outcome), turns, the per-message log."""
    with sqlite3.connect(crm) as conn:
        return [
            conn.execute("SELECT id, sender_id, channel, customer_id, started_at, last_event_at, ended_at, outcome, "
                         "turn_count, tasks_completed, escalated, last_fallback FROM conversations "
                         "ORDER BY id").fetchall(),
            conn.execute("SELECT event_key, conversation_id, role, text, entities, action_name FROM turns "
                         "ORDER BY event_key").fetchall(),
            conn.execute("SELECT sender_id, conversation_id, role, text, customer_id, action FROM interactions "
                         "ORDER BY id").fetchall(),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=16, help="copies of the six conversations (16: 1,776 events)")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs per variant, alternated")
    parser.add_argument("--batch-size", type=int, help="events per CRM transaction (default: the settings', 200)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy runs")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--crm", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--events-db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.crm, args.events_db, args.batch_size)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-crm-ingest-"))
    try:
        events, mix = build_events(args.copies)
        events_db, crm_seed = work / "events.db", work / "crm-seed.db"
        write_broker(events_db, events)
        seed_crm(crm_seed)
        log(f"{mix['events']} events ({mix['texts']} texts, {mix['distinct_texts']} distinct) in {events_db}")
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        crms: dict[str, Path] = {}
        for r in range(args.rounds):
            for variant in VARIANTS:
                result, crms[variant] = run_child(variant, work, crm_seed, events_db, args, f"{variant}{r}")
                if result["events"] != mix["events"] or result["bad"] or result["retries"]:
                    sys.exit(f"bench-crm-ingest: the {variant} run stored {result['events']} of {mix['events']} "
                             f"events ({result['bad']} bad, {result['retries']} retries)")
                runs[variant].append(result)
                log(f"round {r + 1} {variant}: {1000 * result['cpu_s'] / result['events']:.2f} ms CPU per event "
                    f"({result['cpu_s']:.2f} s CPU, {result['wall_s']:.2f} s wall, NER {result['ner']})")
        same_rows = all(crm_texts(crms["before"]) == crm_texts(crms[v]) for v in VARIANTS)
        profiles: dict[str, dict | None] = {}
        py_spy = None if args.no_profile else shutil.which("py-spy", path=f"{Path(sys.executable).parent}:"
                                                                           f"{os.environ.get('PATH', '')}")
        if py_spy:
            for variant in ("before", "after"):
                run_child(variant, work, crm_seed, events_db, args, f"{variant}-profiled", py_spy=py_spy)
                profiles[variant] = stage_shares(work / f"profile-{variant}-profiled.txt")
        elif not args.no_profile:
            log("py-spy not installed (pip install py-spy): no breakdown")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def per_event(variant: str) -> float:
        return statistics.median(1000 * r["cpu_s"] / r["events"] for r in runs[variant])

    before, after = per_event("before"), per_event("after")
    print(f"\n{mix['events']} events per run, {args.rounds} run(s) per variant, median CPU per event:")
    print(f"{'variant':11} {'CPU ms/event':>13} {'events/s CPU':>13}  NER texts run / cached / skipped   pipeline")
    for variant in VARIANTS:
        ms, ner = per_event(variant), runs[variant][-1]["ner"]
        print(f"{variant:11} {ms:>13.3f} {1000 / ms:>13.0f}  {ner.get('ner', 0):>9} / {ner.get('cached', 0):>6} / "
              f"{ner.get('skipped', 0):>7}   {'+'.join(runs[variant][-1]['pipeline'])}")
    print(f"after / before: {after / before:.2f}; the CRM databases of every variant hold the same turns: {same_rows}")
    for variant, shares in profiles.items():
        if shares:
            parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if k != "samples")
            print(f"py-spy, inside Ingestor.store ({variant}, {shares['samples']} samples): {parts}")
    print(
        json.dumps(
            {
                "benchmark": "crm_ingest",
                "mix": mix,
                "rounds": args.rounds,
                "batch_size": args.batch_size or "settings",
                "cpu_ms_per_event": {v: round(per_event(v), 3) for v in VARIANTS},
                "ratio_after_before": round(after / before, 3),
                "runs": runs,
                "same_turns": same_rows,
                "profile_store_shares": profiles or None,
            }
        )
    )
    if not same_rows:
        sys.exit("bench-crm-ingest: the two variants stored different turns")


if __name__ == "__main__":
    main()
