"""make bench-scale: the production topology on namespaced hosts, under load and under faults (issue 23).

Why: the production profile's claims (several application hosts behind HAProxy, every conversation
event reaching the CRM exactly once through the outbox, customers going on through failures) only
mean something measured across a real load balancer and network, with real process restarts.

What it does (as root; scripts/hosts.sh builds the hosts):
1. ``scripts/hosts.sh up``: hosts cs-lb (HAProxy), cs-app1 and cs-app2 (Rasa, action server, web app
   each), cs-svc (the bench's own PostgreSQL, Redis, RabbitMQ and the CRM ingestor) on a private bridge.
2. Load (bench/locust_production.py's REST and socket.io customers, through bench/scale_locustfile.py)
   against HAProxy with app2's servers disabled through HAProxy's runtime API (1 host), then enabled
   (2 hosts): turns/s, p50/p95 of turns, errors.
3. Cross-replica agent reply: a widget's socket.io on app1's Rasa, the agent's reply through app2's
   Rasa HTTP API (output_channel=latest), time until the widget has it; p50.
4. Under the same load, one at a time: kill -9 of app1's Rasa; restart of PostgreSQL, RabbitMQ,
   Redis; kill -9 of the CRM ingestor (started again 10 s later). Errors customers saw, seconds from
   the fault until turns succeed again.
5. Once the ingestor caught up: every tracker-store event (PostgreSQL ``events``) compared with the
   CRM's stored event keys (``crm_ingested_events``, bot/crm/records.event_key of the broker message
   the outbox published), per phase: lost and duplicated events.
6. ``scripts/hosts.sh down`` (also on error or Ctrl-C). A text chart, a PNG under var/bench/ when
   matplotlib is there, and the figures as one JSON object on the last line of stdout.

Two cores cap every figure here: Locust, HAProxy, two Rasa replicas, two action servers, two web apps,
PostgreSQL, Redis and RabbitMQ share them, so a second application host adds no CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ROOT / "scripts" / "hosts.sh"
LOCUST = ROOT / "var" / "tools" / "locust" / "bin" / "locust"
OUT = ROOT / "var" / "bench"
LB = "http://10.77.0.10:8080"
APP1_RASA, APP2_RASA = "http://10.77.0.11:5005", "http://10.77.0.12:5005"
PG_DSN = "host=10.77.0.20 port=5432 user=postgres dbname=concierge connect_timeout=5"
HAPROXY_SOCK = ROOT / "var" / "scale" / "run" / "haproxy.sock"
USERS = int(os.environ.get("SCALE_USERS", "8"))
LOAD_S = int(os.environ.get("SCALE_LOAD_S", "35"))
FAULT_LOAD_S = int(os.environ.get("SCALE_FAULT_LOAD_S", "40"))
FAULT_AT_S = 10.0
AGENT_TRIES = 15
TURNS = ("rest turn", "socket.io turn")

sys.path.insert(0, str(ROOT))
from tests.stack import haproxy_command  # noqa: E402

STARTED = time.monotonic()


def say(msg: str) -> None:
    """Progress on stderr (stdout ends with the JSON line)."""
    print(f"[{time.monotonic() - STARTED:6.0f}s] {msg}", file=sys.stderr, flush=True)


def environment() -> dict[str, str]:
    """The production profile's required settings, generated for this run only and never printed."""
    return {
        **os.environ,
        "CONCIERGE_IDENTITY_SECRET": secrets.token_urlsafe(48),
        "CONCIERGE_ACTION_TOKEN": secrets.token_urlsafe(48),
        "CONCIERGE_SESSION_SECRET": secrets.token_urlsafe(48),
        "RASA_API_TOKEN": secrets.token_urlsafe(48),
        "SCALE_RABBITMQ_PASSWORD": secrets.token_urlsafe(24),
        "CONCIERGE_CORS_ORIGINS": LB,
        # every Locust user comes from one address: no per-address or per-sender limit in the bench
        "CONCIERGE_RATE_CLIENT_PER_MIN": "0",
        "CONCIERGE_RATE_SENDER_PER_MIN": "0",
    }


def hosts(env: dict[str, str], *args: str) -> None:
    """scripts/hosts.sh with the run's environment; its progress goes to stderr."""
    subprocess.run([str(HOSTS), *args], env=env, check=True, stdout=sys.stderr)


def app2_in_lb(enabled: bool) -> None:
    """Takes app2's Rasa and web app out of HAProxy (maintenance) or puts them back."""
    verb = "enable" if enabled else "disable"
    for server in ("rasa_socketio/rasa1", "rasa_webhooks/rasa1", "rasa_api/rasa1", "web/web1"):
        haproxy_command(HAPROXY_SOCK, f"{verb} server {server}")  # the lb host's stats socket, a file here


# ------------------------------------------------------------------ load
def run_locust(env: dict[str, str], name: str, seconds: int,
               during: Any = None) -> tuple[list[list[Any]], str, float, float]:
    """Locust headless for ``seconds``; ``during(t0)`` runs beside it (a fault). Returns the request log,
    Locust's tracker-check line, and the start and end times (epoch s)."""
    log = OUT / f"scale-{name}.jsonl"
    log.unlink(missing_ok=True)
    cmd = [str(LOCUST), "-f", str(ROOT / "bench" / "scale_locustfile.py"), "--host", LB, "--headless",
           "-u", str(USERS), "-r", str(USERS), "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING"]
    lenv = {**env, "CONCIERGE_SCALE_LOG": str(log),
            "CONCIERGE_LOCUST_TRACKER_URL": "postgresql://postgres@10.77.0.20:5432/concierge"}
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=lenv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    worker = None
    if during is not None:
        worker = threading.Thread(target=during, args=(t0,), daemon=True)
        worker.start()
    stopped = False
    while proc.poll() is None:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        records = read_log(log)
        bad = sum(1 for r in records if r[3] is not None)
        say(f"  {name}: {time.time() - t0:4.0f}s, {len(records)} requests, {bad} failed")
        if time.time() - t0 > seconds + 45 and not stopped:  # Locust once failed to stop its users
            say(f"  {name}: Locust overran its run time; interrupting it")
            proc.send_signal(signal.SIGINT)
            stopped = True
        elif stopped and time.time() - t0 > seconds + 75:
            proc.kill()
    t1 = min(time.time(), t0 + seconds + 1)  # the load's window; the tracker check runs after it
    reader.join(5)
    if worker is not None:
        worker.join(180)
    check = next((line.strip() for line in output if line.startswith("tracker check:")), "tracker check: not run")
    (OUT / f"scale-{name}.locust.txt").write_text("".join(output))
    return read_log(log), check, t0, t1


def read_log(path: Path) -> list[list[Any]]:
    """The request log written by bench/scale_locustfile.py (a line being written is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def load_figures(records: list[list[Any]], seconds: float) -> dict[str, Any]:
    """Turns/s, p50/p95 of successful turns, and every failed request (turns and socket connections)."""
    turns = [r for r in records if r[1] in TURNS]
    ok = [r[2] for r in turns if r[3] is None]
    return {"turns": len(turns), "turns_per_s": round(len(turns) / seconds, 2),
            "p50_ms": round(percentile(ok, 50), 1), "p95_ms": round(percentile(ok, 95), 1),
            "errors": sum(1 for r in records if r[3] is not None)}


def recovery(records: list[list[Any]], fault_at: float) -> tuple[int, float]:
    """Errors customers saw from the fault on, and seconds from the fault until a turn that started
    after it (and after the last failure) succeeded."""
    after = [r for r in records if r[0] >= fault_at]
    failures = [r for r in after if r[3] is not None]
    since = max([fault_at] + [r[0] for r in failures])
    good = sorted(r[0] for r in after if r[1] in TURNS and r[3] is None and r[0] - r[2] / 1000 >= since)
    return len(failures), round(good[0] - fault_at, 2) if good else -1.0


# ------------------------------------------------------------------ cross-replica agent reply
def agent_reply_latency(env: dict[str, str]) -> list[float]:
    """Customer's socket on app1's Rasa, agent's reply through app2's Rasa HTTP API: ms until delivered."""
    import queue

    import requests
    import socketio

    replies: queue.Queue = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("bot_uttered", lambda data: replies.put(("bot", data)))
    client.on("session_confirm", lambda data: replies.put(("session", data)))
    client.connect(APP1_RASA, transports=["websocket"], wait_timeout=30)
    took: list[float] = []
    try:
        client.emit("session_request", {"session_id": None})
        kind, session_id = replies.get(timeout=30)
        client.emit("user_uttered", {"message": "hello", "session_id": session_id})
        replies.get(timeout=60)
        time.sleep(1.0)  # the rest of the greeting
        while not replies.empty():
            replies.get_nowait()
        for i in range(AGENT_TRIES):
            text = f"Dana (support): reply {i} {uuid.uuid4().hex[:6]}"
            event = {"event": "bot", "timestamp": time.time(), "text": text,
                     "metadata": {"from_person": True, "agent": "Dana"}}
            start = time.perf_counter()
            resp = requests.post(f"{APP2_RASA}/conversations/{session_id}/tracker/events", json=[event],
                                 params={"output_channel": "latest", "execute_side_effects": "true",
                                         "token": env["RASA_API_TOKEN"]}, timeout=30)
            resp.raise_for_status()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kind, data = replies.get(timeout=max(0.1, deadline - time.monotonic()))
                if kind == "bot" and isinstance(data, dict) and data.get("text") == text:
                    took.append((time.perf_counter() - start) * 1000)
                    break
    finally:
        client.disconnect()
    return took


# ------------------------------------------------------------------ CRM against the tracker store
def crm_caught_up(limit_s: float = 120.0) -> None:
    """Waits until the outbox is empty and the CRM's event count stopped moving."""
    import psycopg2

    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with psycopg2.connect(PG_DSN) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM concierge_event_outbox")
            outbox = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM crm_ingested_events")
            ingested = cur.fetchone()[0]
        conn.close()
        if ingested != last:
            last, stable_since = ingested, time.monotonic()
        if outbox == 0 and time.monotonic() - stable_since > 5:
            return
        time.sleep(1)
    say(f"  the CRM did not settle in {limit_s:.0f}s (compared anyway)")


def event_key(sender: str, data: str) -> str:
    """bot/crm/records.event_key of the broker message the outbox publishes for a stored event."""
    body = {"sender_id": sender, **json.loads(data)}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def compare_crm(windows: dict[str, tuple[float, float]]) -> dict[str, dict[str, int]]:
    """Per phase (conversations by their first event's time): tracker events missing from the CRM
    (lost), events stored twice in the tracker or turns stored twice in the CRM (duplicated), and CRM
    events of those conversations that the tracker store does not have."""
    import psycopg2

    with psycopg2.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute("SELECT sender_id, timestamp, data FROM events ORDER BY id")
        tracker = cur.fetchall()
        cur.execute("SELECT sender_id, event_key FROM crm_ingested_events")
        crm = cur.fetchall()
        cur.execute("SELECT c.sender_id, t.event_key, count(*) FROM turns t JOIN conversations c "
                    "ON c.id = t.conversation_id WHERE t.event_key IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1")
        crm_dups = cur.fetchall()
    conn.close()
    first: dict[str, float] = {}
    keys: dict[str, Counter] = defaultdict(Counter)
    for sender, ts, data in tracker:
        first.setdefault(sender, ts or 0.0)
        keys[sender][event_key(sender, data)] += 1
    crm_keys: dict[str, set[str]] = defaultdict(set)
    for sender, key in crm:
        crm_keys[sender].add(key)
    dup_turns: Counter = Counter()
    for sender, _, n in crm_dups:
        dup_turns[sender] += n - 1

    def phase_of(sender: str) -> str:
        for name, (t0, t1) in windows.items():
            if t0 <= first.get(sender, 0.0) < t1:
                return name
        return "other"

    out: dict[str, dict[str, int]] = defaultdict(lambda: {"conversations": 0, "events": 0, "lost_events": 0,
                                                          "duplicate_events": 0, "crm_not_in_tracker": 0})
    for sender, counted in keys.items():
        row = out[phase_of(sender)]
        row["conversations"] += 1
        row["events"] += sum(counted.values())
        row["lost_events"] += sum(1 for k in counted if k not in crm_keys[sender])
        row["duplicate_events"] += sum(n - 1 for n in counted.values()) + dup_turns[sender]
        row["crm_not_in_tracker"] += len(crm_keys[sender] - set(counted))
    return dict(out)


# ------------------------------------------------------------------ faults
FAULTS = {  # name: (what is done at FAULT_AT_S, what is done FAULT_AT_S + 10 s later, if anything)
    "rasa_kill": (["kill", "rasa1"], None),
    "postgres_restart": (["restart", "postgres"], None),
    "rabbitmq_restart": (["restart", "rabbitmq"], None),
    "redis_restart": (["restart", "redis"], None),
    "ingestor_kill": (["kill", "crm"], ["start", "crm"]),
}


def run_fault(env: dict[str, str], name: str) -> tuple[dict[str, Any], tuple[float, float]]:
    """One fault under load: its errors, recovery, the fault's own duration, the phase's window."""
    action, after = FAULTS[name]
    marks: dict[str, float] = {}

    def inject(t0: float) -> None:
        time.sleep(max(0.0, t0 + FAULT_AT_S - time.time()))
        marks["fault"] = time.time()
        say(f"  {name}: {' '.join(action)}")
        hosts(env, *action)
        marks["done"] = time.time()
        if after is not None:
            time.sleep(max(0.0, marks["fault"] + 10 - time.time()))
            say(f"  {name}: {' '.join(after)}")
            hosts(env, *after)

    records, check, t0, t1 = run_locust(env, name, FAULT_LOAD_S, inject)
    fault_at = marks.get("fault", t0 + FAULT_AT_S)
    errors, recovery_s = recovery(records, fault_at)
    figures = {**load_figures(records, t1 - t0), "errors": errors, "recovery_s": recovery_s,
               "fault_s": round(marks.get("done", fault_at) - fault_at, 1), "tracker_check": check}
    if name == "rasa_kill":  # app1's Rasa back before the next fault (no load meanwhile)
        say("  starting app1's Rasa again")
        hosts(env, "start", "rasa1")
        time.sleep(3)  # HAProxy's rise 2 (checks every second)
    return figures, (t0, time.time())


# ------------------------------------------------------------------ report
def bar(value: float, top: float, width: int = 40) -> str:
    """A text bar scaled to ``top``."""
    return "#" * max(1, round(width * value / top)) if top > 0 and value > 0 else ""


def chart(result: dict[str, Any]) -> str:
    """Load and fault figures as text bars."""
    lines = ["", "Concierge on namespaced hosts behind HAProxy (2 cores: the second app host adds no CPU)"]
    tps = result["turns_per_s"]
    top = max(max(tps.values()), 0.1)
    for n in result["replicas"]:
        k = str(n)
        lines.append(f"  {n} app host(s)  {tps[k]:6.2f} turns/s {bar(tps[k], top):40s} "
                     f"p50 {result['p50_ms'][k]:.0f} ms, p95 {result['p95_ms'][k]:.0f} ms")
    lines.append(f"  cross-replica agent reply p50 {result['cross_replica_agent_reply_ms']:.1f} ms")
    top = max([f["recovery_s"] for f in result["faults"].values()] + [1.0])
    lines.append("  faults under load: recovery (s), errors seen by customers, CRM events lost/duplicated")
    for name, f in result["faults"].items():
        lines.append(f"  {name:17s} {f['recovery_s']:6.1f} s {bar(f['recovery_s'], top, 30):30s} "
                     f"errors {f['errors']:3d}  lost {f['lost_events']}  dup {f['duplicate_events']}")
    return "\n".join(lines)


def png(result: dict[str, Any]) -> Path | None:
    """The same figures as a PNG under var/bench/, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [f"{n} host{'s' if n > 1 else ''}" for n in result["replicas"]]
    left.bar(names, [result["turns_per_s"][str(n)] for n in result["replicas"]], color="#4477aa")
    left.set_ylabel("turns/s")
    left.set_title("load through HAProxy (2 cores)")
    faults = list(result["faults"])
    right.barh(faults, [result["faults"][f]["recovery_s"] for f in faults], color="#cc6677")
    right.set_xlabel("seconds until turns succeed again")
    right.set_title("faults under load")
    fig.tight_layout()
    path = OUT / "scale.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _interrupted(*_: Any) -> None:
    """SIGTERM tears down like Ctrl-C."""
    raise KeyboardInterrupt


def main() -> int:
    """Builds the hosts, runs load and faults, tears down; the JSON figures are the last stdout line."""
    if os.geteuid() != 0:
        print("make bench-scale needs root (ip netns)", file=sys.stderr)
        return 77
    if not LOCUST.exists():
        print(f"{LOCUST} is missing: make bench-scale installs it", file=sys.stderr)
        return 69
    OUT.mkdir(parents=True, exist_ok=True)
    env = environment()
    signal.signal(signal.SIGTERM, _interrupted)
    say(f"bench-scale: {USERS} Locust users, {LOAD_S}s per load phase, {FAULT_LOAD_S}s per fault; "
        "2 cores cap every figure (Locust and every server share them)")
    windows: dict[str, tuple[float, float]] = {}
    result: dict[str, Any] = {"replicas": [1, 2], "turns_per_s": {}, "p50_ms": {}, "p95_ms": {}, "errors": 0}
    details: dict[str, Any] = {}
    try:
        say("building the hosts (scripts/hosts.sh up)")
        hosts(env, "up")
        for n in (1, 2):
            app2_in_lb(n == 2)
            say(f"load with {n} application host(s)")
            records, check, t0, t1 = run_locust(env, f"load{n}", LOAD_S)
            windows[f"load{n}"] = (t0, t1)
            figures = load_figures(records, t1 - t0)
            result["turns_per_s"][str(n)] = figures["turns_per_s"]
            result["p50_ms"][str(n)] = figures["p50_ms"]
            result["p95_ms"][str(n)] = figures["p95_ms"]
            result["errors"] += figures["errors"]
            details[f"load{n}"] = {**figures, "tracker_check": check}
            say(f"  {figures} | {check}")
        say("cross-replica agent reply (socket on app1, reply through app2's API)")
        took = agent_reply_latency(env)
        result["cross_replica_agent_reply_ms"] = round(statistics.median(took), 1) if took else -1.0
        details["cross_replica_agent_reply"] = {"delivered": len(took), "tries": AGENT_TRIES,
                                                "max_ms": round(max(took), 1) if took else None}
        faults: dict[str, Any] = {}
        for name in FAULTS:
            say(f"fault under load: {name}")
            faults[name], windows[name] = run_fault(env, name)
            say(f"  {faults[name]}")
        say("waiting for the CRM ingestor to catch up, then comparing the tracker store with the CRM")
        crm_caught_up()
        crm = compare_crm(windows)
        result["lost_events"] = sum(v["lost_events"] for v in crm.values())
        result["duplicate_events"] = sum(v["duplicate_events"] for v in crm.values())
        for name in FAULTS:
            row = crm.get(name, {"lost_events": 0, "duplicate_events": 0})
            faults[name] = {"errors": faults[name]["errors"], "recovery_s": faults[name]["recovery_s"],
                            "lost_events": row["lost_events"], "duplicate_events": row["duplicate_events"],
                            **{k: v for k, v in faults[name].items() if k not in ("errors", "recovery_s")}}
        result["faults"] = faults
        result["crm_check"] = crm
        result["details"] = details
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        logs = ROOT / "var" / "scale" / "logs"
        if logs.is_dir():  # kept for reading after the teardown
            shutil.rmtree(OUT / "scale-logs", ignore_errors=True)
            shutil.copytree(logs, OUT / "scale-logs")
        say("tearing down (scripts/hosts.sh down; the hosts' logs kept in var/bench/scale-logs)")
        subprocess.run([str(HOSTS), "down"], check=False, stdout=sys.stderr)
    result["cores"] = os.cpu_count()
    result["date"] = time.strftime("%Y-%m-%d")
    result["wall_s"] = round(time.monotonic() - STARTED)
    print(chart(result))
    path = png(result)
    if path is not None:
        print(f"chart: {path.relative_to(ROOT)}")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
