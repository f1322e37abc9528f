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
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
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


# the channel's reply when handling a message failed (concierge_rasa/channels/guard.py APOLOGY): an answer
# in HTTP terms, a failed turn in ours (a missing ONNX encoder once made every turn this reply, in 8 ms)
APOLOGY = "Sorry, something went wrong on my side"


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
            replies = resp.json() if resp.status_code == 200 else []
            ok = bool(replies) and not any(str(r.get("text", "")).startswith(APOLOGY) for r in replies)
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


def cpu_ms(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of the process (MB), from /proc/<pid>/status; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def drive_interleaved(
    targets: dict[str, tuple[str, list[str]]],
    turns: int,
    concurrency: int,
    rounds: int = 6,
    processes: dict[str, dict[str, int]] | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Alternates the bots in rounds so both see the same background load on the machine.
    ``processes`` (bot -> {label: pid}): the CPU each process uses during that bot's segments,
    per answered turn of that bot, goes into its figures as ``cpu_ms_per_turn``."""
    processes = processes or {}
    per_round = {name: max(1, -(-turns // len(script) // rounds)) for name, (_, script) in targets.items()}
    lat = {name: [] for name in targets}
    errs = dict.fromkeys(targets, 0)
    busy = dict.fromkeys(targets, 0.0)
    cpu = {name: dict.fromkeys(processes.get(name, {}), 0.0) for name in targets}
    for name, (url, script) in targets.items():  # warm-up, not measured
        conversation(url, script, name)
    if on_start:
        on_start()
    with ThreadPoolExecutor(concurrency) as pool:
        for r in range(rounds):
            for name, (url, script) in targets.items():
                pids = processes.get(name, {})
                before = {label: cpu_ms(pid) for label, pid in pids.items()}
                t0 = time.perf_counter()
                for latencies, e in pool.map(partial(conversation, url, script), [name] * per_round[name]):
                    lat[name] += latencies
                    errs[name] += e
                busy[name] += time.perf_counter() - t0
                for label, pid in pids.items():
                    cpu[name][label] += cpu_ms(pid) - before[label]
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {len(v)} turns" for n, v in lat.items()))
    out = {}
    for name in targets:
        out[name] = summarise(lat[name], errs[name], busy[name])
        answered = max(1, len(lat[name]))
        out[name]["cpu_ms_per_turn"] = {label: round(ms / answered, 1) for label, ms in cpu[name].items()}
        if cpu[name]:
            out[name]["cpu_ms_per_turn"]["total"] = round(sum(cpu[name].values()) / answered, 1)
    return out


# Stages of a turn inside the Rasa process, recognised in py-spy's stacks (first match wins, so the
# more specific come first). Frames read "function (path:line)".
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("broker", ("_publish (concierge_rasa/stores.py", "publish_many (concierge_rasa/stores.py", "rasa/core/brokers/")),
    ("tracker store", ("concierge_rasa/stores.py", "rasa/core/tracker_store.py")),
    ("action calls", ("concierge_rasa/action_results.py", "_validate_action_result", "_action_call_format")),
    ("NLU", ("parse_message (rasa/core/processor.py", "rasa/nlu/", "concierge_rasa/nlu/")),
    ("policies", ("predict_next_with_tracker", "_predict_next_with_tracker", "rasa/core/policies/",
                  "concierge_rasa/upset_policy.py")),
]


class Profiler:
    """py-spy sampling one process (``record --format raw``) from ``start()`` to ``stop()``; its
    samples summed by function into the stages above. py-spy: ``pip install py-spy`` (optional)."""

    def __init__(self, py_spy: str, pid: int, out: Path, rate: int = 50) -> None:
        self.command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                        "--nonblocking", "--output", str(out)]
        self.out = out
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.out.unlink(missing_ok=True)  # never read a previous run's samples
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, float] | None:
        """Shares of the sampled (busy) time by stage, or None when py-spy wrote nothing."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return stage_shares(self.out)


# leaf frames (py-spy's raw stacks read root first) where a thread waits, which --nonblocking
# counts as busy: an idle executor thread, Sanic's event loop in its poll
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "serve (sanic/server/runners.py",
               "select (selectors.py", "wait (threading.py")


def stage_shares(raw: Path) -> dict[str, float] | None:
    """Shares of the busy samples of a py-spy raw file by stage (idle threads left out)."""
    if not raw.exists():
        return None
    counts = dict.fromkeys([name for name, _ in STAGES] + ["other"], 0)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or stack.rsplit(";", 1)[-1].startswith(IDLE_LEAVES):
            continue
        stage = next((name for name, marks in STAGES if any(m in stack for m in marks)), "other")
        counts[stage] += int(n)
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else None


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
    parser.add_argument(
        "--py-spy",
        default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        help="py-spy for the stages of a Concierge turn inside the Rasa process (pip install py-spy)",
    )
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(f"{args.model} missing: run `make train` first")

    import secrets

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
                # every simulated customer comes from 127.0.0.1: lift the per-address limits (docs/security.md)
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

            def concierge(port: int, endpoints: str, stats: Path) -> subprocess.Popen:
                command = [str(RASA), "run", "-m", args.model, "--port", str(port), "-i", "127.0.0.1"]
                command += ["--endpoints", endpoints, "--credentials", "credentials.yml"]
                # CONCIERGE_BENCH_STATS: the Rasa process counts its action-server calls into this file
                return subprocess.Popen(command, cwd=ROOT, env={**env, "CONCIERGE_BENCH_STATS": str(stats)}, **quiet)

            stats_files = {"concierge": tmp / "stats-concierge.json", "concierge_no_broker": tmp / "stats-bare.json"}
            procs.append(concierge(cp, "endpoints.yml", stats_files["concierge"]))
            targets = {
                "stock": (f"http://127.0.0.1:{sp}/webhooks/rest/webhook", STOCK_SCRIPT),
                "concierge": (f"http://127.0.0.1:{cp}/webhooks/rest/webhook", CONCIERGE_SCRIPT),
            }
            if not args.no_broker_baseline:
                # the same assistant with Rasa's in-memory tracker store and no broker: what recording costs
                bare = tmp / "endpoints-no-broker.yml"
                bare.write_text(
                    "action_endpoint:\n  url: ${ACTION_ENDPOINT_URL}\n  headers:\n"
                    "    Authorization: Bearer ${CONCIERGE_ACTION_TOKEN}\n  enable_selective_domain: true\n"
                )
                procs.append(concierge(np_, str(bare), stats_files["concierge_no_broker"]))
                targets["concierge_no_broker"] = (f"http://127.0.0.1:{np_}/webhooks/rest/webhook", CONCIERGE_SCRIPT)
            log("starting the assistants...")
            wait_up(f"http://127.0.0.1:{sp}/", procs[0])
            wait_up(f"http://127.0.0.1:{ap}/health", procs[1])
            wait_up(f"http://127.0.0.1:{cp}/", procs[3])
            if not args.no_broker_baseline:
                wait_up(f"http://127.0.0.1:{np_}/", procs[4])

            log(f"{args.turns} turns per bot, {args.concurrency} concurrent conversations, bots alternating")
            pids = {
                "stock": {"rasa_stock": procs[0].pid},
                "concierge": {"rasa": procs[3].pid, "action_server": procs[1].pid, "ingestor": procs[2].pid},
                "concierge_no_broker": {"rasa": procs[-1].pid, "action_server": procs[1].pid},
            }
            pids = {k: v for k, v in pids.items() if k in targets}
            profiler = None
            if Path(args.py_spy).is_file():
                (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
                profiler = Profiler(args.py_spy, procs[3].pid, ROOT / "var" / "bench" / "latency_py_spy.txt")
            else:
                log(f"no py-spy at {args.py_spy} (pip install py-spy): no stage breakdown")
            calls_before: dict[str, dict] = {}

            every_pid: dict[str, int] = {}  # each process once (the bots share the action server)
            for bot, labels in pids.items():
                for label, pid in labels.items():
                    if pid not in every_pid.values():
                        every_pid[f"{bot}.{label}"] = pid
            rss: dict[str, dict[str, float | None]] = {}

            def started() -> None:
                rss["after_warm_up"] = {name: rss_mb(pid) for name, pid in every_pid.items()}
                for name, path in stats_files.items():
                    calls_before[name] = json.loads(path.read_text()) if path.exists() else {}
                if profiler:
                    profiler.start()

            results = drive_interleaved(targets, args.turns, args.concurrency, processes=pids, on_start=started)
            rss["at_the_end"] = {name: rss_mb(pid) for name, pid in every_pid.items()}
            shares = profiler.stop() if profiler else None
            for name, path in stats_files.items():
                if name not in results:
                    continue
                now = json.loads(path.read_text()) if path.exists() else {}
                calls = now.get("action_calls", 0) - calls_before[name].get("action_calls", 0)
                wall = now.get("action_wall_ms", 0.0) - calls_before[name].get("action_wall_ms", 0.0)
                answered = max(1, results[name]["turns"])
                results[name]["action_calls_per_turn"] = round(calls / answered, 2)
                results[name]["action_call_wall_ms"] = round(wall / calls, 1) if calls else None
            results["stock"]["action_calls_per_turn"] = 0.0  # the stock bot has no action endpoint
            stages = None
            if shares:
                rasa_ms = results["concierge"]["cpu_ms_per_turn"]["rasa"]
                stages = {k: {"share": round(v, 3), "cpu_ms_per_turn": round(v * rasa_ms, 1)}
                          for k, v in shares.items()}
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
    if no_verdict is None and crm["user_turns_stored"] < concierge_r["turns"]:
        # answered but not recorded: Concierge did less than its job, the figures are not comparable
        meets, no_verdict = None, f"the CRM recorded {crm['user_turns_stored']} of {concierge_r['turns']} messages"
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
    print()
    print("CPU per answered turn (ms, from /proc/<pid>/stat during each bot's own segments) and action calls:")
    for name, r in rows:
        per = ", ".join(f"{label} {ms}" for label, ms in r["cpu_ms_per_turn"].items())
        wall = r.get("action_call_wall_ms")
        print(f"  {name:22}{per}; action calls/turn {r.get('action_calls_per_turn')}"
              + (f" ({wall} ms each, wall)" if wall else ""))
    if stages:
        print("Concierge's Rasa process, CPU by stage (py-spy samples x its CPU per turn; "
              "stacks in var/bench/latency_py_spy.txt):")
        for stage, v in stages.items():
            print(f"  {stage:16}{v['cpu_ms_per_turn']:>8} ms/turn  {v['share'] * 100:5.1f}%")
    print("Resident memory (MB) after the warm-up -> at the end:")
    for name, mb in rss["after_warm_up"].items():
        print(f"  {name:32}{mb} -> {rss['at_the_end'].get(name)}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work shares the machine)")
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
                "concierge_rasa_stages": stages,
                "rss_mb": rss,
                "load_average": [round(x, 2) for x in load],
                "concurrency": args.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main()
