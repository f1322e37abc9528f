"""Supervisor dashboard request times on a long history (target: every request <= 300 ms).

Seeds a temporary SQLite database: the demo shop (``bot.seed``) plus a bulk-generated CRM
history of a year (>= 100,000 turns in conversations on six channels, tickets, handoffs with
agent timings, CSAT feedback, feedback-topic mentions and customer analytics rows), then times
every dashboard request through the real web app (FastAPI TestClient, real HTTP handling,
templates and JSON) for three filters: the last 30 days, the whole year, and one channel over
the year. The baseline is the same requests on the same data after dropping the indexes of
migration 0006_dashboard_indexes, measured in the same run. Progress on stderr; last line JSON.

Requests carry a real console session (a supervisor logged in through /console/login), so each
one also pays for the session lookup, exactly as in production.

    .venv/bin/python bench/dashboard.py [--conversations 20000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib.util
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from _common import ROOT, emit, percentile_ms, say

CHANNELS = ("socketio", "socketio", "socketio", "rest", "slack", "telegram", "twilio", "facebook")
INTENTS = ("track_order", "cancel_order", "request_refund", "refund_status", "ask_invoice", "change_address",
           "greet", "goodbye", "thank", "affirm", "deny", "human_handoff", "complain", "recommend_product",
           "product_question", "faq_shipping", "faq_returns", "nlu_fallback", "change_email", "newsletter")
INTENT_WEIGHTS = (14, 5, 6, 4, 3, 2, 10, 6, 5, 6, 3, 2, 3, 4, 4, 5, 4, 5, 1, 1)
OUTCOMES = ("resolved", "escalated", "fallback", "abandoned")
OUTCOME_WEIGHTS = (62, 12, 9, 17)
REASONS = ("asked_for_person", "fallbacks", "negative_sentiment", "gold_complaint", "action_failed")
TOPICS = ("late delivery", "damaged item", "refund delay", "wrong item", "missing parcel", "rude courier",
          "broken zip", "slow support")
SEGMENTS = ("loyal big spenders", "at-risk regulars", "new customers", "occasional buyers", "lapsed bargain hunters")
STAGES = ("new", "active", "at_risk", "lapsed", "won_back")
PASSWORD = "bench-supervisor-password"  # a throw-away account in the temporary database


def ts(d: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (string comparisons must agree with its binds)."""
    return d.isoformat(sep=" ", timespec="microseconds")


def generate(db: Path, now: datetime, conversations: int, seed: int = 7) -> dict[str, int]:
    """Bulk-insert a year of CRM history with executemany in one transaction."""
    rng = random.Random(seed)
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    customers = [r[0] for r in con.execute("SELECT id FROM customers ORDER BY id")]
    con.execute("INSERT INTO agents (id, username, display_name, role, password_hash, active, created_at) "
                "VALUES (9001, 'bench-agent', 'Bench Agent', 'agent', 'x', 1, ?)", (ts(now),))
    conv_rows, turn_rows, tickets, handoffs, feedback, mentions = [], [], [], [], [], []
    turn_id = 0
    for cid in range(1, conversations + 1):
        started = now - timedelta(days=365 * rng.random() ** 1.3, seconds=rng.randint(0, 86399))
        channel = rng.choice(CHANNELS)
        customer = rng.choice(customers) if rng.random() < 0.7 else None
        outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
        sender = f"bench-{cid}"
        n_user = max(1, int(rng.expovariate(1 / 3.0)))
        t = started
        csat = None
        for _ in range(n_user):
            intent = rng.choices(INTENTS, INTENT_WEIGHTS)[0]
            mood = (2, 5, 3) if outcome != "escalated" else (5, 4, 1)
            label = rng.choices(("negative", "neutral", "positive"), mood)[0]
            turn_id += 1
            turn_rows.append((turn_id, cid, customer, "user", "user", f"message {turn_id} about {intent}", None,
                              intent, round(rng.uniform(0.3, 1), 3), None, label, round(rng.uniform(0.5, 1), 3), None,
                              ts(t), f"bench-{turn_id}"))
            t += timedelta(seconds=rng.randint(1, 4))
            turn_id += 1
            turn_rows.append((turn_id, cid, customer, "bot", "bot", "Here is what I found.", None, None, None, None,
                              None, None, "utter_answer", ts(t), f"bench-{turn_id}"))
            t += timedelta(seconds=rng.randint(5, 90))
        escalated = outcome == "escalated"
        if outcome == "resolved" and rng.random() < 0.35:
            csat = rng.choices((1, 2, 3, 4, 5), (4, 4, 10, 30, 52))[0]
        conv_rows.append((cid, sender, channel, customer, ts(started), ts(t), ts(t + timedelta(minutes=30)),
                          outcome, 2 * n_user, int(outcome == "resolved"), int(escalated),
                          int(outcome == "fallback"), csat, None))
        if csat is not None:
            feedback.append((sender, customer, csat, "", ts(t + timedelta(seconds=30))))
        if escalated:
            tid = len(tickets) + 1
            tickets.append((tid, f"TK-{tid:06d}", customer, sender, rng.choice(("handoff", "complaint", "refund")),
                            "Customer asked for help", "", "closed", "normal", ts(t)))
            assigned = t + timedelta(seconds=rng.randint(20, 1800))
            first = assigned + timedelta(seconds=rng.randint(10, 600))
            resolved = first + timedelta(seconds=rng.randint(120, 7200))
            status = rng.choices(("resolved", "handed_back", "assigned"), (80, 15, 5))[0]
            handoffs.append((len(handoffs) + 1, tid, sender, channel, customer, rng.choice(REASONS), status, 0.5,
                             9001, "{}", "{}", "[]", "[]", 0, ts(t), ts(assigned), ts(first),
                             ts(resolved) if status != "assigned" else None, ts(resolved)))
        if label == "negative" and rng.random() < 0.5:
            mentions.append(("turn", turn_id - 1, sender, cid, customer, rng.choice(TOPICS), "parcel",
                             f"my parcel problem number {turn_id}", ts(started), ts(now)))
    con.executemany("INSERT INTO conversations (id, sender_id, channel, customer_id, started_at, last_event_at, "
                    "ended_at, outcome, turn_count, tasks_completed, escalated, last_fallback, csat_rating, "
                    "csat_comment) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", conv_rows)
    con.executemany("INSERT INTO turns (id, conversation_id, customer_id, role, event, text, raw_text, intent, "
                    "confidence, entities, sentiment_label, sentiment_probability, action_name, event_at, event_key) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", turn_rows)
    offset = con.execute("SELECT COALESCE(MAX(id), 0) FROM support_tickets").fetchone()[0]
    con.executemany("INSERT INTO support_tickets (id, number, customer_id, sender_id, category, subject, "
                    "description, status, priority, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(r[0] + offset, f"TB-{r[0]:06d}", *r[2:]) for r in tickets])
    con.executemany("INSERT INTO handoffs (id, ticket_id, sender_id, channel, customer_id, reason, status, "
                    "priority_score, agent_id, summary, snapshot, transcript, labels, after_hours, created_at, "
                    "assigned_at, first_response_at, resolved_at, updated_at) VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(h[0], h[1] + offset, *h[2:]) for h in handoffs])
    con.executemany("INSERT INTO feedback (sender_id, customer_id, rating, comment, created_at) "
                    "VALUES (?,?,?,?,?)", feedback)
    con.executemany("INSERT INTO feedback_mentions (source, source_id, sender_id, conversation_id, "
                    "customer_id, topic, aspect, quote, created_at, computed_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    mentions)
    analytics = []
    for c in customers:
        risk = rng.betavariate(2, 5)
        value = round(rng.lognormvariate(4, 1), 2)
        analytics.append((c, rng.choice(SEGMENTS), 0, risk, rng.uniform(0, 6), value, rng.random(),
                          rng.choice(STAGES), rng.random(), rng.uniform(0, 400), rng.randint(0, 40),
                          round(value * rng.uniform(1, 4), 2), ts(now)))
    con.executemany("INSERT INTO customer_analytics (customer_id, segment, segment_index, churn_risk, "
                    "expected_purchases_12m, expected_value_12m, value_percentile, lifecycle_stage, priority_score, "
                    "recency_days, frequency, monetary, computed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", analytics)
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return {"conversations": len(conv_rows), "turns": len(turn_rows), "tickets": len(tickets),
            "handoffs": len(handoffs), "feedback": len(feedback), "mentions": len(mentions),
            "customers": len(customers)}


def dashboard_indexes() -> dict[str, tuple[str, list[str]]]:
    path = ROOT / "bot/migrations/versions/0006_dashboard_indexes.py"
    spec = importlib.util.spec_from_file_location("m0006", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.INDEXES


def requests_for(now: datetime) -> list[tuple[str, str]]:
    """(label, URL) of every dashboard request for three filters."""
    end = now.date()
    filters = {
        "30d": f"start={end - timedelta(days=29)}&end={end}",
        "365d": f"start={end - timedelta(days=364)}&end={end}",
        "365d+socketio": f"start={end - timedelta(days=364)}&end={end}&channel=socketio",
    }
    out = []
    for fname, q in filters.items():
        out.append((f"page[{fname}]", f"/console/dashboard?{q}"))
        for r in ("conversations", "messages", "agents", "csat", "topics"):
            out.append((f"api/{r}[{fname}]", f"/console/dashboard/api/{r}?{q}"))
        out.append((f"csv/messages[{fname}]", f"/console/dashboard/export/messages.csv?{q}"))
    for r in ("segments", "churn", "lifecycle"):
        out.append((f"api/{r}", f"/console/dashboard/api/{r}"))
    return out


def measure(client, reqs: list[tuple[str, str]], repeat: int) -> dict[str, dict[str, float]]:  # noqa: ANN001
    out = {}
    for label, url in reqs:
        t0 = time.perf_counter()
        r = client.get(url)  # the first request (template compile, cold caches) is reported apart
        first = time.perf_counter() - t0
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code} {r.text[:200]}")
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.get(url)
            samples.append(time.perf_counter() - t0)
            assert r.status_code == 200
        out[label] = {"p50_ms": percentile_ms(samples, 50), "p95_ms": percentile_ms(samples, 95),
                      "mean_ms": round(statistics.mean(samples) * 1000, 3), "first_ms": round(first * 1000, 1)}
    return out


def chart(results: dict, baseline: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, ax = plt.subplots(figsize=(9, max(4, len(labels) * 0.28)))
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], [baseline[k]["p95_ms"] for k in labels], 0.4, label="without 0006 indexes",
            color="#9ca3af")
    ax.barh([i - 0.2 for i in y], [results[k]["p95_ms"] for k in labels], 0.4, label="with indexes", color="#2563eb")
    ax.axvline(300, color="#dc2626", ls="--", lw=1, label="target 300 ms")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("p95 request time (ms)")
    ax.set_title("Supervisor dashboard requests on a year of history")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--orders", type=int, default=12000)
    args = ap.parse_args()
    if not 1 <= args.repeat <= 200 or not 100 <= args.conversations <= 500000:
        raise SystemExit("--repeat must be 1..200 and --conversations 100..500000")

    from fastapi.testclient import TestClient

    from bot.db.base import utcnow
    from bot.db.session import session_scope
    from bot.seed import seed
    from bot.settings import load_settings
    from bot.web.app import create_app
    from bot.web.auth import create_agent

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    atexit.register(shutil.rmtree, tmp, True)  # the temporary history goes when the run ends
    db = tmp / "history.db"
    url = f"sqlite:///{db}"
    now = utcnow().replace(microsecond=0)
    t0 = time.perf_counter()
    say(f"seeding the shop ({args.customers} customers, {args.orders} orders) in {db}")
    seed(url, progress=None, customers=args.customers, orders=args.orders)
    say(f"generating {args.conversations} conversations of CRM history")
    counts = generate(db, now, args.conversations)
    seed_s = time.perf_counter() - t0
    say(f"history ready in {seed_s:.1f} s: {counts}")
    partial = counts["turns"] < 100_000  # the target is for a year of history: a smaller one proves nothing
    if partial:
        say("fewer than 100,000 turns: no target verdict (raise --conversations)")

    settings = dataclasses.replace(load_settings(), database_url=url, session_secret="bench-dashboard-" + "x" * 32)
    with session_scope(url) as session:
        create_agent(session, "bench-supervisor", "Bench Supervisor", PASSWORD, "supervisor")
    app = create_app(settings)
    reqs = requests_for(now)
    with TestClient(app) as client:
        form = client.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        r = client.post("/console/login", data={"username": "bench-supervisor", "password": PASSWORD, "csrf": csrf},
                        follow_redirects=False)
        if r.status_code != 303:
            raise SystemExit(f"console log-in failed: HTTP {r.status_code}")
        say(f"timing {len(reqs)} requests x {args.repeat} with the 0006 indexes")
        results = measure(client, reqs, args.repeat)
        con = sqlite3.connect(db)
        for name in dashboard_indexes():
            con.execute(f"DROP INDEX IF EXISTS {name}")
        con.execute("ANALYZE")
        con.commit()
        con.close()
        say("timing the same requests without them (baseline)")
        baseline = measure(client, reqs, args.repeat)

    width = max(len(k) for k in results)
    print(f"{'request':<{width}}  {'p50 ms':>8} {'p95 ms':>8} {'first':>8}   {'baseline p50':>12} {'p95':>8}")
    for k, v in results.items():
        b = baseline[k]
        flag = "" if v["p95_ms"] <= 300 else "  > 300 ms"
        print(f"{k:<{width}}  {v['p50_ms']:8.1f} {v['p95_ms']:8.1f} {v['first_ms']:8.1f}   "
              f"{b['p50_ms']:12.1f} {b['p95_ms']:8.1f}{flag}")
    worst = max(results, key=lambda k: results[k]["p95_ms"])
    worst_base = max(baseline, key=lambda k: baseline[k]["p95_ms"])
    plot = ROOT / "var/bench/dashboard.png"
    chart(results, baseline, plot)
    say(f"chart: {plot}")
    emit({
        "bench": "dashboard", "history": counts, "seed_s": round(seed_s, 1), "repeat": args.repeat,
        "target_ms": 300,
        "all_within_target": None if partial else all(v["p95_ms"] <= 300 for v in results.values()),
        **({"no_verdict_reason": f"{counts['turns']} turns, fewer than 100,000"} if partial else {}),
        "worst_p95_ms": {"request": worst, "ms": results[worst]["p95_ms"]},
        "baseline_worst_p95_ms": {"request": worst_base, "ms": baseline[worst_base]["p95_ms"]},
        "requests": results, "baseline_without_indexes": baseline, "chart": str(plot.relative_to(ROOT)),
    })


if __name__ == "__main__":
    sys.exit(main())
