"""Latency benchmark: Concierge versus a stock `rasa init` bot, same turns, same machine.

    make bench-latency            (or: .venv/bin/python bench/latency.py --turns 400 --concurrency 8)

Trains the stock bot in a temporary folder, starts both assistants on free local ports,
sends the same number of turns to each over REST from several concurrent conversations,
and prints p50/p95/max latency and turns/s for both plus the ratio. Concierge answers from
a freshly seeded database (a temporary copy, so the benchmark never touches var/), with the
CRM ingestor running as under `make run`; a third bot, Concierge with Rasa's in-memory tracker
and no event broker, shows what the SQLite tracker store and SQL event broker cost. After the
run: the delay from each customer message to its CRM row (p50/p95) and the ingestor's
events/s on the run's events. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
sys.path.insert(0, str(ROOT))

STOCK_SCRIPT = ["hello", "I am feeling sad", "yes", "are you a bot?", "great, thanks", "goodbye"]
CONCIERGE_SCRIPT = [
    "hello",
    "where is my order 190001?",
    "alice.martin@example.com",
    "which payment methods do you accept?",
    "how long does delivery take?",
    "thanks, bye",
]


def log(msg: str) -> None:
    print(f"[bench-latency] {msg}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited early (code {proc.returncode})")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up in {timeout}s")


def rasa_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1", **extra}


def train_stock(workdir: Path) -> Path:
    log("training the stock `rasa init` bot (DIET and TED at their default epochs)...")
    t0 = time.monotonic()
    subprocess.run(
        [str(RASA), "init", "--no-prompt", "--init-dir", str(workdir)],
        cwd=workdir,
        env=rasa_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    model = max((workdir / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    log(f"stock bot trained in {time.monotonic() - t0:.0f}s")
    return model


def conversation(url: str, script: list[str], label: str) -> tuple[list[float], int]:
    """One scripted conversation; returns the latencies (ms) of the answered turns and the number of
    failed ones. A failed turn (HTTP error, empty reply, timeout) is no latency: a fast 500 would
    otherwise lower the p50 and raise turns/s."""
    sender, lat, err = f"bench-{label}-{uuid.uuid4().hex[:8]}", [], 0
    session = requests.Session()
    for text in script:
        t0 = time.perf_counter()
        try:
            resp = session.post(url, json={"sender": sender, "message": text}, timeout=60)
            ok = resp.status_code == 200 and bool(resp.json())
        except (requests.RequestException, ValueError):
            ok = False
        if ok:
            lat.append((time.perf_counter() - t0) * 1000)
        else:
            err += 1
    return lat, err


def summarise(latencies: list[float], errors: int, elapsed: float) -> dict:
    """Figures of the answered turns only; ``errors`` counts the failed ones (they block the targets)."""
    latencies = sorted(latencies)
    if len(latencies) < 2:
        return {"turns": len(latencies), "errors": errors, "p50_ms": None, "p95_ms": None, "max_ms": None,
                "turns_per_s": None}
    q = statistics.quantiles(latencies, n=100)
    return {
        "turns": len(latencies),
        "errors": errors,
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "max_ms": round(latencies[-1], 1),
        "turns_per_s": round(len(latencies) / elapsed, 1),
    }


def verdict(stock: dict, concierge: dict) -> tuple[float | None, float | None, bool | None, str | None]:
    """p50 ratio, throughput ratio, whether both targets are met, and why there is no verdict.
    A run with any failed turn gets no verdict (None plus a reason): its figures are not of the
    same work for both bots."""
    if not stock["p50_ms"] or not concierge["p50_ms"] or not stock["turns_per_s"] or not concierge["turns_per_s"]:
        return None, None, None, "too few answered turns to measure"
    ratio = round(concierge["p50_ms"] / stock["p50_ms"], 2)
    tput = round(concierge["turns_per_s"] / stock["turns_per_s"], 2)
    failed = {name: r["errors"] for name, r in (("stock", stock), ("concierge", concierge)) if r["errors"]}
    if failed:
        return ratio, tput, None, f"failed turns {failed}: no target verdict on an incomplete run"
    return ratio, tput, ratio <= 1.3 and tput >= 0.8, None


def drive_interleaved(
    targets: dict[str, tuple[str, list[str]]], turns: int, concurrency: int, rounds: int = 6
) -> dict[str, dict]:
    """Alternates the bots in rounds so both see the same background load on the machine."""
    per_round = {name: max(1, -(-turns // len(script) // rounds)) for name, (_, script) in targets.items()}
    lat = {name: [] for name in targets}
    errs = dict.fromkeys(targets, 0)
    busy = dict.fromkeys(targets, 0.0)
    for name, (url, script) in targets.items():  # warm-up, not measured
        conversation(url, script, name)
    with ThreadPoolExecutor(concurrency) as pool:
        for r in range(rounds):
            for name, (url, script) in targets.items():
                t0 = time.perf_counter()
                for latencies, e in pool.map(partial(conversation, url, script), [name] * per_round[name]):
                    lat[name] += latencies
                    errs[name] += e
                busy[name] += time.perf_counter() - t0
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {len(v)} turns" for n, v in lat.items()))
    return {name: summarise(lat[name], errs[name], busy[name]) for name in targets}


def crm_figures(db_url: str, events_db: Path, timeout: float = 120) -> dict:
    """Waits until the CRM ingestor has stored every published event, then reads, per customer
    message, the delay from Rasa's event time to its CRM row (``crm_ingested_events.ingested_at``)."""
    import sqlite3

    from sqlalchemy import create_engine, text

    with sqlite3.connect(events_db) as conn:
        published = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM crm_ingested_events")).scalar()
        if stored >= published:
            break
        time.sleep(0.5)
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from bot.db.models import IngestedEvent

    with Session(engine) as session:
        rows = session.execute(
            select(IngestedEvent.event_at, IngestedEvent.ingested_at).where(IngestedEvent.event_type == "user")
        ).all()
        turns = session.execute(text("SELECT count(*) FROM turns WHERE role = 'user'")).scalar()
    engine.dispose()
    delays = sorted((ing - at).total_seconds() * 1000 for at, ing in rows)
    q = statistics.quantiles(delays, n=100) if len(delays) >= 2 else [float("nan")] * 99
    return {
        "published_events": published,
        "stored_events": stored,
        "user_turns_stored": turns,
        "message_to_crm_p50_ms": round(q[49], 1),
        "message_to_crm_p95_ms": round(q[94], 1),
    }


def ingestor_throughput(db_copy: str, events_db: Path, env: dict[str, str]) -> dict:
    """Every event of the run again, into a copy of the CRM taken before it: events/s of one ingestor."""
    out = subprocess.run(
        [sys.executable, "-m", "bot.crm.ingestor", "--once"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": db_copy, "CONCIERGE_EVENTS_DB": str(events_db), "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=360)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--model", default=str(ROOT / "models" / "concierge.tar.gz"))
    parser.add_argument(
        "--stock-dir",
        help="a folder for the stock bot: trained there once, reused when it already holds a model",
    )
    parser.add_argument(
        "--no-broker-baseline",
        action="store_true",
        help="skip the third bot (Concierge with an in-memory tracker and no event broker)",
    )
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"{args.model} missing: run `make train` first")

    import secrets
    import shutil

    from bot.seed import seed

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            stock_dir = Path(args.stock_dir).resolve() if args.stock_dir else tmp / "stock"
            stock_dir.mkdir(parents=True, exist_ok=True)
            trained = sorted((stock_dir / "models").glob("*.tar.gz"))
            stock_model = trained[-1] if trained else train_stock(stock_dir)

            log("seeding a temporary Concierge database...")
            db_path = tmp / "concierge.db"
            db_url = f"sqlite:///{db_path}"
            seed(db_url, progress=None)
            shutil.copy(db_path, tmp / "crm-replay.db")  # for the ingestor's throughput, after the run
            sp, cp, ap, np_ = free_port(), free_port(), free_port(), free_port()
            events_db = tmp / "events.db"
            env = rasa_env(
                DATABASE_URL=db_url,
                PYTHONPATH=str(ROOT),
                ACTION_ENDPOINT_URL=f"http://127.0.0.1:{ap}/webhook",
                CONCIERGE_ACTION_TOKEN=os.environ.get("CONCIERGE_ACTION_TOKEN") or secrets.token_urlsafe(48),
                CONCIERGE_IDENTITY_SECRET=os.environ.get("CONCIERGE_IDENTITY_SECRET") or secrets.token_urlsafe(48),
                CONCIERGE_EVENTS_DB=str(events_db),
                CONCIERGE_TRACKER_DB=str(tmp / "tracker.db"),
                # every simulated customer comes from 127.0.0.1: lift the per-address limits (README "Security")
                CONCIERGE_RATE_CLIENT_PER_MIN="1000000",
                CONCIERGE_RATE_CLIENT_BURST="1000000",
                CONCIERGE_RATE_SENDER_PER_MIN="1000000",
                CONCIERGE_RATE_SENDER_BURST="1000000",
                CONCIERGE_VERIFY_CLIENT_MAX_FAILURES="1000000",
                CONCIERGE_TICKETS_PER_CLIENT_DAY="1000000",
            )
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
            procs.append(
                subprocess.Popen(
                    [str(RASA), "run", "-m", str(stock_model), "--port", str(sp), "-i", "127.0.0.1"],
                    cwd=stock_dir,
                    env=rasa_env(),
                    **quiet,
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot.action_server", "--port", str(ap)], cwd=ROOT, env=env, **quiet
                )
            )
            with (tmp / "ingestor.log").open("w") as ingestor_log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bot.crm.ingestor"],
                        cwd=ROOT,
                        env=env,
                        stdout=ingestor_log,
                        stderr=subprocess.STDOUT,
                    )
                )

            def concierge(port: int, endpoints: str) -> subprocess.Popen:
                command = [str(RASA), "run", "-m", args.model, "--port", str(port), "-i", "127.0.0.1"]
                command += ["--endpoints", endpoints, "--credentials", "credentials.yml"]
                return subprocess.Popen(command, cwd=ROOT, env=env, **quiet)

            procs.append(concierge(cp, "endpoints.yml"))
            targets = {
                "stock": (f"http://127.0.0.1:{sp}/webhooks/rest/webhook", STOCK_SCRIPT),
                "concierge": (f"http://127.0.0.1:{cp}/webhooks/rest/webhook", CONCIERGE_SCRIPT),
            }
            if not args.no_broker_baseline:
                # the same assistant with Rasa's in-memory tracker store and no broker: what recording costs
                bare = tmp / "endpoints-no-broker.yml"
                bare.write_text(
                    "action_endpoint:\n  url: ${ACTION_ENDPOINT_URL}\n  headers:\n"
                    "    Authorization: Bearer ${CONCIERGE_ACTION_TOKEN}\n"
                )
                procs.append(concierge(np_, str(bare)))
                targets["concierge_no_broker"] = (f"http://127.0.0.1:{np_}/webhooks/rest/webhook", CONCIERGE_SCRIPT)
            log("starting the assistants...")
            wait_up(f"http://127.0.0.1:{sp}/", procs[0])
            wait_up(f"http://127.0.0.1:{ap}/health", procs[1])
            wait_up(f"http://127.0.0.1:{cp}/", procs[3])
            if not args.no_broker_baseline:
                wait_up(f"http://127.0.0.1:{np_}/", procs[4])

            log(f"{args.turns} turns per bot, {args.concurrency} concurrent conversations, bots alternating")
            results = drive_interleaved(targets, args.turns, args.concurrency)
            stock, concierge_r = results["stock"], results["concierge"]
            log("latency: " + json.dumps(results))
            log("waiting for the CRM ingestor to store every event of the run...")
            crm = crm_figures(db_url, events_db)
            log("replaying the run's events into a copy of the CRM: the ingestor's throughput...")
            crm["ingestor"] = ingestor_throughput(f"sqlite:///{tmp / 'crm-replay.db'}", events_db, env)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()

    ratio, tput, meets, no_verdict = verdict(stock, concierge_r)
    bare_r = results.get("concierge_no_broker")
    print()
    print(f"{'':22}{'turns':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'turns/s':>9}")
    rows = [("stock rasa", stock), ("Concierge", concierge_r)]
    if bare_r:
        rows.append(("Concierge, no broker", bare_r))
    for name, r in rows:
        print(f"{name:22}{r['turns']:>7}{r['errors']:>8}" + "".join(
            f"{str(r[k]):>9}" for k in ("p50_ms", "p95_ms", "max_ms", "turns_per_s")))
    print(f"p50 ratio Concierge/stock: {ratio} (target <= 1.3); throughput ratio {tput} (target >= 0.8)")
    print(f"targets: {'met' if meets else 'NOT met' if meets is False else 'no verdict: ' + no_verdict}")
    if bare_r and bare_r["p50_ms"] and concierge_r["p50_ms"]:
        print(
            f"SQLite tracker store + SQL event broker: p50 {concierge_r['p50_ms'] - bare_r['p50_ms']:+.1f} ms "
            f"against the in-memory tracker without a broker"
        )
    ing = crm["ingestor"]
    print(
        f"CRM: {crm['stored_events']}/{crm['published_events']} events stored, {crm['user_turns_stored']} customer "
        f"messages; message -> CRM row p50 {crm['message_to_crm_p50_ms']} ms, p95 {crm['message_to_crm_p95_ms']} ms; "
        f"ingestor {ing['events_per_s']} events/s"
    )
    print(
        json.dumps(
            {
                "benchmark": "latency",
                "stock": stock,
                "concierge": concierge_r,
                "concierge_no_broker": bare_r,
                "p50_ratio": ratio,
                "target_p50_ratio": 1.3,
                "throughput_ratio": tput,
                "target_throughput_ratio": 0.8,
                "meets_targets": meets,
                **({"no_verdict_reason": no_verdict} if no_verdict else {}),
                "crm": crm,
                "concurrency": args.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main()
