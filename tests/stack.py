"""The real stack for end-to-end tests, browser tests and benchmarks: one launcher, imported as a library.

``start_servers`` starts the REAL action server (Python 3.11), Rasa server (Python 3.10) and CRM
ingestor on a freshly migrated and seeded SQLite database in a temporary folder, so tests can check
what the conversations changed in the database; ``start_web`` starts the web app (``python -m
bot.web``). Test modules build their fixtures on these generators (``yield from start_servers(...)``);
bench scripts iterate them. Nothing here is a pytest fixture, so it imports the same from anywhere.

Ports are bound, not guessed: a free port is only a candidate (another process may take it between
our choice and the server's bind), so a server counts as up only when *its own* process listens on
the port and answers its health URL, and a server that lost its port is started again on another.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("CONCIERGE_TEST_MODEL") or ROOT / "models" / "concierge.tar.gz")  # CI: make train
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
SECRET = "e2e-identity-secret-at-least-32-characters"  # settings refuse shorter secrets
ACTION_TOKEN = "e2e-action-server-token-at-least-32-characters"
PORT_ATTEMPTS = 5
_BIND_ERRORS = ("address already in use", "errno 98")


def free_port() -> int:
    """A port nobody listens on right now: only a candidate, see ``launch``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """The server exited because another process had bound its port first."""


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return pids


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or a child of it) holds the listening TCP socket on ``port`` (Linux /proc),
    so a health answer from some other process that took the port never counts as ours."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(cols[9])
    if not inodes:
        return False
    for p in _process_tree(pid):
        for fd in Path(f"/proc/{p}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def _port_of(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or 80


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Waits (bounded) until ``proc`` listens on the URL's port and the URL answers 200.

    Raises ``PortTaken`` when the process exited because its port was taken, RuntimeError with the
    log's tail when it exited for another reason or did not come up in time."""
    port = _port_of(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            if any(e in tail.lower() for e in _BIND_ERRORS):
                raise PortTaken(f"{url}: port {port} was taken by another process:\n{tail}")
            raise RuntimeError(f"{url} exited early:\n{tail}")
        try:
            if requests.get(url, timeout=2).status_code == 200 and listens_on(proc.pid, port):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Starts one server process in the repository root, its output in ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(*procs: subprocess.Popen | None, timeout: float = 20) -> None:
    """Terminates the processes, then kills those still running after ``timeout``."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def launch(
    start: Callable[[int], subprocess.Popen], log: Path, url: Callable[[int], str], timeout: float,
    port: int | None = None,
) -> tuple[subprocess.Popen, int]:
    """Starts a server with ``start(port)`` and waits for ``url(port)``; when another process took the
    port first, starts it again on a new one (up to PORT_ATTEMPTS). ``port``: the first candidate."""
    for _ in range(PORT_ATTEMPTS):
        port = port or free_port()
        proc = start(port)
        try:
            wait_for(url(port), proc, log, timeout)
            return proc, port
        except PortTaken:
            stop(proc)
            port = None
        except BaseException:
            stop(proc)
            raise
    raise RuntimeError(f"no free port after {PORT_ATTEMPTS} attempts; last log:\n{log.read_text()[-3000:]}")


@dataclass
class Servers:
    rasa_url: str
    action_url: str
    db_url: str
    action_proc: subprocess.Popen
    action_cmd: list[str]
    env: dict[str, str]
    tmp: Path
    rasa_proc: subprocess.Popen | None = None
    rasa_cmd: list[str] | None = None
    ingestor_proc: subprocess.Popen | None = None  # the CRM ingestor (bot/crm), reading events_db
    events_db: Path | None = None
    # REST session credentials per sender, kept and sent back as a real client does (docs/security.md)
    rest_sessions: dict[str, str] = field(default_factory=dict)

    @property
    def tracker_db(self) -> Path:
        """Rasa's SQLite tracker store (the default endpoints.yml), for ``wait_turn_end``."""
        return Path(self.env["CONCIERGE_TRACKER_DB"])

    def say(self, sender: str, text: str, metadata: dict | None = None) -> list[dict]:
        body = {"sender": sender, "message": text}
        if metadata is not None:
            body["metadata"] = metadata
        headers = {"X-Concierge-Session": self.rest_sessions[sender]} if sender in self.rest_sessions else {}
        resp = requests.post(f"{self.rasa_url}/webhooks/rest/webhook", json=body, headers=headers, timeout=60)
        resp.raise_for_status()
        if resp.headers.get("X-Concierge-Session"):
            self.rest_sessions[sender] = resp.headers["X-Concierge-Session"]
        return resp.json()

    def text(self, sender: str, text: str, metadata: dict | None = None) -> str:
        return "\n".join(m.get("text", "") for m in self.say(sender, text, metadata))

    def restart_action_server(self, log_name: str = "actions-restarted.log") -> None:
        """Starts the (stopped) action server again on its port and waits until it is healthy, so a
        test that stopped it leaves the stack as it found it."""
        stop(self.action_proc)
        log = self.tmp / log_name
        self.action_proc = spawn(self.action_cmd, self.env, log)
        wait_for(f"{self.action_url}/health", self.action_proc, log, 120)

    def restart_rasa(self, log_name: str = "rasa-restarted.log") -> None:
        """Stops the Rasa server and starts it again on its port, waiting until it answers."""
        assert self.rasa_cmd is not None
        stop(self.rasa_proc, timeout=30)
        log = self.tmp / log_name
        self.rasa_proc = spawn(self.rasa_cmd, self.env, log)
        wait_for(f"{self.rasa_url}/webhooks/rest/", self.rasa_proc, log, 600)


def start_servers(
    tmp: Path,
    *,
    extra_env: dict[str, str] | None = None,
    credentials: str = "credentials.yml",
    endpoints: str = "endpoints.yml",
    seed_kwargs: dict | None = None,
    model: Path | None = None,
    rasa_args: list[str] | None = None,
    ingestor: bool = True,
) -> Iterator[Servers]:
    """Seeds a database in ``tmp`` and starts the real action and Rasa servers on free ports.

    A generator: tests of other features build their own module fixture on it with their own
    environment, credentials or endpoints (``yield from start_servers(...)``); ``rasa_args`` are
    added to ``rasa run`` (e.g. ``["--enable-api", "--auth-token", token]``). The default
    endpoints keep Rasa's tracker and event broker in SQLite files in ``tmp``; with ``ingestor``
    the CRM ingestor runs too, so conversations reach the CRM tables as under ``make run``.
    """
    model = model or MODEL
    if not model.exists():
        pytest.fail(f"{model} is missing: run `make train` first (make test does it).")
    if not RASA.exists():
        pytest.fail(f"{RASA} is missing: run `make setup` first (make test does it).")
    from bot.seed import seed

    db_url = f"sqlite:///{tmp / 'concierge.db'}"
    seed(db_url, progress=None, **(seed_kwargs or {"seed": 7, "customers": 80, "products": 320, "orders": 800}))
    base_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CONCIERGE_IDENTITY_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        # Rasa -> action server shared secret (endpoints.yml sends it; docs/security.md)
        "CONCIERGE_ACTION_TOKEN": ACTION_TOKEN,
        # every test client is 127.0.0.1: per-address limits high unless a test sets its own
        "CONCIERGE_RATE_CLIENT_PER_MIN": "100000",
        "CONCIERGE_RATE_CLIENT_BURST": "100000",
        "CONCIERGE_RATE_SENDER_PER_MIN": "100000",
        "CONCIERGE_RATE_SENDER_BURST": "100000",
        "CONCIERGE_VERIFY_CLIENT_MAX_FAILURES": "100000",
        "CONCIERGE_TICKETS_PER_CLIENT_DAY": "100000",
        "CONCIERGE_EVENTS_DB": str(tmp / "events.db"),
        "CONCIERGE_TRACKER_DB": str(tmp / "tracker.db"),
        "CONCIERGE_CRM_POLL_MS": "50",
        **(extra_env or {}),
    }

    def env_for(action_port: int) -> dict[str, str]:
        return {**base_env, "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook"}

    def action_cmd(port: int) -> list[str]:
        return [sys.executable, "-m", "bot.action_server", "--port", str(port)]

    def rasa_cmd(port: int) -> list[str]:
        return [str(RASA), "run", "-m", str(model), "--port", str(port), "--endpoints", endpoints,
                "--credentials", credentials, "-i", "127.0.0.1", *(rasa_args or [])]

    action_log, rasa_log = tmp / "actions.log", tmp / "rasa.log"
    action_port, rasa_port = free_port(), free_port()
    # both start at once (Rasa takes the longest); whichever lost its port starts again on another
    action_proc = spawn(action_cmd(action_port), env_for(action_port), action_log)
    rasa_proc: subprocess.Popen | None = spawn(rasa_cmd(rasa_port), env_for(action_port), rasa_log)
    ingestor_proc = None
    srv: Servers | None = None
    try:
        try:
            wait_for(f"http://127.0.0.1:{action_port}/health", action_proc, action_log, 120)
        except PortTaken:  # Rasa was told the old port: it starts again, told the new one
            stop(action_proc, rasa_proc)
            action_proc, action_port = launch(
                lambda p: spawn(action_cmd(p), env_for(p), action_log), action_log,
                lambda p: f"http://127.0.0.1:{p}/health", 120)
            rasa_proc = None
        env = env_for(action_port)
        if rasa_proc is not None:
            try:
                wait_for(f"http://127.0.0.1:{rasa_port}/webhooks/rest/", rasa_proc, rasa_log, 300)
            except PortTaken:
                stop(rasa_proc)
                rasa_proc = None
        if rasa_proc is None:
            rasa_proc, rasa_port = launch(
                lambda p: spawn(rasa_cmd(p), env, rasa_log), rasa_log,
                lambda p: f"http://127.0.0.1:{p}/webhooks/rest/", 300)
        if ingestor:
            ingestor_proc = spawn([sys.executable, "-m", "bot.crm.ingestor"], env, tmp / "ingestor.log")
        srv = Servers(
            f"http://127.0.0.1:{rasa_port}",
            f"http://127.0.0.1:{action_port}",
            db_url,
            action_proc,
            action_cmd(action_port),
            env,
            tmp,
            rasa_proc=rasa_proc,
            rasa_cmd=rasa_cmd(rasa_port),
            ingestor_proc=ingestor_proc,
            events_db=tmp / "events.db",
        )
        yield srv
    finally:
        if srv is not None:  # a test may have restarted a server: stop the processes it holds now
            action_proc, rasa_proc = srv.action_proc, srv.rasa_proc
        stop(rasa_proc, action_proc, ingestor_proc)


@dataclass
class Web:
    url: str
    proc: subprocess.Popen
    port: int


def start_web(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[Web]:
    """The web app (``python -m bot.web``) with ``env`` on localhost; stops it afterwards.

    Without ``port`` it takes a free one (again on another if it was taken); with ``port`` (a caller
    that already told other servers the URL) a taken port raises ``PortTaken`` for the caller to retry."""

    def start(p: int) -> subprocess.Popen:
        return spawn([sys.executable, "-m", "bot.web", "--host", "127.0.0.1", "--port", str(p)],
                     {**env, "WEB_PORT": str(p)}, log)

    if port is None:
        proc, port = launch(start, log, lambda p: f"http://127.0.0.1:{p}/healthz", 60)
    else:
        proc = start(port)
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz", proc, log, 60)
        except BaseException:
            stop(proc)
            raise
    try:
        yield Web(f"http://127.0.0.1:{port}", proc, port)
    finally:
        stop(proc)


# ------------------------------------------------------------- "the bot said nothing more"
@dataclass(frozen=True)
class TurnEnd:
    """How Rasa finished processing a customer's message, from its tracker store."""

    bot_messages: int  # the turn's bot events (a channel may send one as several messages)
    paused: bool  # handed to a person: Rasa logged the message and ran nothing


def tracker_events(tracker_db: Path, sender: str) -> list[dict]:
    """``sender``'s events in Rasa's SQLite tracker store (start_servers' CONCIERGE_TRACKER_DB), oldest first."""
    if not tracker_db.exists():
        return []
    with closing(sqlite3.connect(tracker_db, timeout=10)) as con:
        rows = con.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (sender,)).fetchall()
    return [json.loads(data) for (data,) in rows]


def user_messages(events: list[dict]) -> int:
    return sum(e.get("event") == "user" for e in events)


def turn_end(events: list[dict], users_before: int) -> TurnEnd | None:
    """The end of the turn of the first user message after ``users_before`` of them, or None while Rasa
    is still on it: it ends with ``action_listen``, or paused (a paused conversation logs the message
    and runs nothing; a handoff action pauses it and predicts nothing more)."""
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    if len(users) <= users_before:
        return None
    start = users[users_before]
    paused = False
    for e in events[:start]:
        paused = {"pause": True, "resume": False}.get(e.get("event"), paused)
    after = events[start + 1:]
    listen = next((i for i, e in enumerate(after) if e.get("event") == "action" and e.get("name") == "action_listen"),
                  None)
    handed_over = any(e.get("event") == "pause" for e in after)  # a handoff action paused it in this turn
    if listen is None and not (paused or handed_over):
        return None
    turn = after if listen is None else after[:listen]
    return TurnEnd(sum(e.get("event") == "bot" for e in turn), listen is None)


def wait_turn_end(tracker_db: Path, sender: str, users_before: int, timeout: float = 45.0) -> TurnEnd:
    """Waits (bounded) until Rasa's tracker store holds the end of that message's turn. Rasa saves the
    tracker after the turn's replies were handed to the channel, so no reply of the turn is sent later
    than this; a round trip on the channel then proves they all arrived (see the widgets' ``flush``)."""
    deadline = time.monotonic() + timeout
    while True:
        end = turn_end(tracker_events(tracker_db, sender), users_before)
        if end is not None:
            return end
        if time.monotonic() > deadline:
            raise AssertionError(f"Rasa did not finish the turn of {sender!r} in {timeout}s: "
                                 f"{tracker_events(tracker_db, sender)[-6:]}")
        time.sleep(0.1)


# ------------------------------------------------------------- the production topology behind HAProxy
HAPROXY_INSTALL = ROOT / "deploy" / "haproxy" / "install.sh"
HAPROXY_RENDER = ROOT / "deploy" / "haproxy" / "render_config.py"
PRODUCTION_REDIS_DB = 5
PRODUCTION_API_TOKEN = "production-test-rasa-api-token-at-least-32-chars"
PRODUCTION_ORIGIN = "http://shop.production.test"  # the one origin CORS lets through (CONCIERGE_CORS_ORIGINS)


def haproxy_binary() -> str:
    """HAProxy on PATH, else Debian's package unpacked under var/tools by deploy/haproxy/install.sh
    (no root needed); absent (no apt-get, no package lists): skip, or fail under CI."""
    from tests.requirements import missing

    found = subprocess.run(["bash", str(HAPROXY_INSTALL)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if found.returncode != 0 or not found.stdout.strip():
        missing(f"HAProxy is not installed and deploy/haproxy/install.sh could not fetch it: {found.stderr[-500:]}")
    return found.stdout.strip().splitlines()[-1]


def haproxy_command(sock: Path, command: str, timeout: float = 5.0) -> str:
    """One command of HAProxy's runtime API on its stats socket (``show stat``, ``set server ...``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def haproxy_status(sock: Path) -> dict[tuple[str, str], str]:
    """Every server's state as HAProxy sees it: {(backend, server): "UP" | "DOWN" | ...}."""
    import csv
    import io

    text = haproxy_command(sock, "show stat").lstrip("# ")
    return {(row["pxname"], row["svname"]): row["status"].split(" ")[0]
            for row in csv.DictReader(io.StringIO(text))
            if row.get("svname") not in ("FRONTEND", "BACKEND", None)}


@dataclass
class Production:
    """The production profile behind a real HAProxy (``start_production``)."""

    url: str  # HAProxy's public frontend: shop, /api/chat-token, /console, /socket.io/, /webhooks/
    rasa_api_url: str  # HAProxy's localhost frontend for Rasa's HTTP API
    stats_socket: Path
    db_url: str
    env: dict[str, str]
    tmp: Path
    rasa: dict[str, subprocess.Popen]  # HAProxy's server name (rasa0, rasa1, ...) -> the replica's process
    web: dict[str, subprocess.Popen]
    actions: dict[str, subprocess.Popen]
    ingestors: list[subprocess.Popen]
    haproxy: subprocess.Popen

    def status(self) -> dict[tuple[str, str], str]:
        return haproxy_status(self.stats_socket)

    def wait_status(self, wanted: dict[tuple[str, str], str], timeout: float = 60.0) -> None:
        """Waits (bounded) until HAProxy reports these servers in these states."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.status()
            if all(now.get(k) == v for k, v in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy did not reach {wanted} in {timeout}s: {now}")
            time.sleep(0.1)

    def tracker_events(self, sender: str) -> list[dict]:
        """The sender's events in the replicas' PostgreSQL tracker store, in the order they were stored."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})
                return [json.loads(data) for (data,) in rows]
        finally:
            engine.dispose()


def _start_haproxy(binary: str, tmp: Path, servers: dict[str, list[str]]) -> tuple[subprocess.Popen, dict[str, int]]:
    """HAProxy with ``servers`` (rasa/web/action addresses, maybe not listening yet) on free ports; a bind
    lost to another process starts it again on new ones."""
    sock, log, cfg = tmp / "haproxy.sock", tmp / "haproxy.log", tmp / "haproxy.cfg"
    for _ in range(PORT_ATTEMPTS):
        binds = {name: free_port() for name in ("public", "rasa_api", "actions", "stats")}
        args = [f"--{kind}={addr}" for kind, addrs in servers.items() for addr in addrs]
        rendered = subprocess.run(
            [sys.executable, str(HAPROXY_RENDER), *args, f"--public=127.0.0.1:{binds['public']}",
             f"--rasa-api=127.0.0.1:{binds['rasa_api']}", f"--actions-bind=127.0.0.1:{binds['actions']}",
             f"--stats=127.0.0.1:{binds['stats']}", f"--stats-socket={sock}"],
            capture_output=True, text=True, check=True)
        cfg.write_text(rendered.stdout)
        sock.unlink(missing_ok=True)
        proc = spawn([binary, "-db", "-f", str(cfg)], dict(os.environ), log)
        try:
            wait_for(f"http://127.0.0.1:{binds['stats']}/stats;csv", proc, log, 30)
            if all(listens_on(proc.pid, p) for p in binds.values()):
                return proc, binds
        except PortTaken:
            pass
        except RuntimeError as exc:
            if "cannot bind" not in str(exc):
                raise
        stop(proc)
    raise RuntimeError(f"HAProxy found no free ports in {PORT_ATTEMPTS} attempts:\n{log.read_text()[-3000:]}")


def start_production(
    tmp: Path,
    *,
    rasa_replicas: int = 2,
    web_replicas: int = 2,
    action_servers: int = 1,
    ingestors: int = 1,
    extra_env: dict[str, str] | None = None,
    seed_kwargs: dict | None = None,
) -> Iterator[Production]:
    """scripts/run_production.sh's topology on free ports for a test: a PostgreSQL database of its own
    (customers and Rasa's tracker store), the Redis lock store and shared state under a key prefix of
    its own, a RabbitMQ queue of its own; the action servers, Rasa replicas (scripts/rasa_run.py with
    the HTTP API, production endpoints), web apps and CRM ingestors, with a real HAProxy rendered by
    deploy/haproxy/render_config.py in front. Everything is stopped and dropped afterwards.

    Backends start on candidate ports after HAProxy (which already knows those addresses); one that
    lost its port starts again on another and HAProxy is told through its runtime API."""
    from tests.requirements import require_postgres, require_rabbitmq, require_redis

    require_postgres("the production profile keeps customers and trackers in it")
    require_redis("the lock store, the socket.io rooms and the shared limits need it")
    require_rabbitmq()
    binary = haproxy_binary()
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: run `make train` first (make test does it).")
    import uuid

    import psycopg2
    import redis
    from psycopg2 import sql

    run_id = uuid.uuid4().hex[:8]
    dbname, queue, prefix = f"concierge_prod_{run_id}", f"concierge_prod_{run_id}", f"prod{run_id}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="root", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db_url = f"postgresql+psycopg2://root@127.0.0.1:5432/{dbname}"
    procs: list[subprocess.Popen] = []
    prod: Production | None = None
    try:
        from bot.seed import seed

        seed(db_url, progress=None, **(seed_kwargs or {"seed": 13, "customers": 40, "products": 320, "orders": 300}))
        production = (ROOT / "deploy" / "production" / "endpoints.yml").read_text()
        assert "key_prefix: concierge\n" in production, "the production lock store's key_prefix moved"
        endpoints = tmp / "endpoints.yml"
        endpoints.write_text(production.replace("key_prefix: concierge\n", f"key_prefix: {prefix}\n"))
        candidates = {
            "rasa": [free_port() for _ in range(rasa_replicas)],
            "web": [free_port() for _ in range(web_replicas)],
            "action": [free_port() for _ in range(action_servers)],
        }
        haproxy, binds = _start_haproxy(
            binary, tmp, {k: [f"127.0.0.1:{p}" for p in v] for k, v in candidates.items()})
        procs.append(haproxy)
        sock = tmp / "haproxy.sock"
        lb = f"http://127.0.0.1:{binds['public']}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            # what scripts/run_production.sh requires (never generated)
            "CONCIERGE_IDENTITY_SECRET": SECRET,
            "CONCIERGE_ACTION_TOKEN": ACTION_TOKEN,
            "CONCIERGE_SESSION_SECRET": "production-test-session-secret-at-least-32-chars",
            "RASA_API_TOKEN": PRODUCTION_API_TOKEN,
            "TRACKER_DB_HOST": "127.0.0.1", "TRACKER_DB_PORT": "5432", "TRACKER_DB_NAME": dbname,
            "TRACKER_DB_USER": "root", "TRACKER_DB_PASSWORD": "",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": str(PRODUCTION_REDIS_DB),
            "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "guest",
            "RABBITMQ_PASSWORD": "guest", "RABBITMQ_QUEUE": queue,
            "CONCIERGE_SOCKETIO_REDIS_URL": f"redis://127.0.0.1:6379/{PRODUCTION_REDIS_DB}",
            "CONCIERGE_SOCKETIO_REDIS_CHANNEL": f"concierge-socketio-{run_id}",
            "CONCIERGE_SHARED_REDIS_URL": f"redis://127.0.0.1:6379/{PRODUCTION_REDIS_DB}",
            "CONCIERGE_SHARED_REDIS_PREFIX": f"{prefix}:shared:",
            "CONCIERGE_CRM_SOURCE": "pika",
            # everything public through HAProxy; Rasa -> actions and web -> Rasa API through its local frontends
            "CONCIERGE_RASA_PUBLIC_URL": lb,
            "CONCIERGE_SHOP_URL": lb,
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{binds['actions']}/webhook",
            "CONCIERGE_RASA_API_URL": f"http://127.0.0.1:{binds['rasa_api']}",
            "SANIC_PROXIES_COUNT": "1",
            # every test client is 127.0.0.1: per-address limits high
            "CONCIERGE_RATE_CLIENT_PER_MIN": "100000", "CONCIERGE_RATE_CLIENT_BURST": "100000",
            "CONCIERGE_RATE_SENDER_PER_MIN": "100000", "CONCIERGE_RATE_SENDER_BURST": "100000",
            "CONCIERGE_VERIFY_CLIENT_MAX_FAILURES": "100000",
            "CONCIERGE_TICKETS_PER_CLIENT_DAY": "100000",
            **(extra_env or {}),
        }
        rasa_python = RASA.parent / "python"

        def rasa_cmd(p: int) -> list[str]:
            return [str(rasa_python), str(ROOT / "scripts" / "rasa_run.py"), "run", "-m", str(MODEL),
                    "-i", "127.0.0.1", "--port", str(p), "--endpoints", str(endpoints),
                    "--credentials", "credentials.yml", "--cors", PRODUCTION_ORIGIN, "--enable-api"]

        kinds: dict[str, tuple[str, str, Callable[[int], list[str]], float]] = {
            # kind: (HAProxy's server prefix and backends, health path, command, start timeout)
            "action": ("actions", "/health",
                       lambda p: [sys.executable, "-m", "bot.action_server", "--port", str(p)], 120),
            "rasa": ("rasa", "/", rasa_cmd, 600),
            "web": ("web", "/healthz",
                    lambda p: [sys.executable, "-m", "bot.web", "--host", "127.0.0.1", "--port", str(p)], 120),
        }
        backends = {"action": ["actions"], "rasa": ["rasa_socketio", "rasa_webhooks", "rasa_api"], "web": ["web"]}
        started: dict[str, dict[str, subprocess.Popen]] = {k: {} for k in kinds}
        pending = []
        for kind, ports in candidates.items():  # all at once: the Rasa replicas take the longest
            prefix_name, _, cmd, _ = kinds[kind]
            for i, port in enumerate(ports):
                log = tmp / f"{prefix_name}{i}.log"
                proc = spawn(cmd(port), env, log)
                procs.append(proc)
                pending.append((kind, i, port, proc, log))
        for kind, i, port, proc, log in pending:
            prefix_name, path, cmd, timeout = kinds[kind]
            name = f"{prefix_name}{i}"
            try:
                wait_for(f"http://127.0.0.1:{port}{path}", proc, log, timeout)
            except PortTaken:
                proc, port = launch(lambda p, cmd=cmd, log=log: spawn(cmd(p), env, log), log,
                                    lambda p, path=path: f"http://127.0.0.1:{p}{path}", timeout)
                procs.append(proc)
                for backend in backends[kind]:
                    haproxy_command(sock, f"set server {backend}/{name} addr 127.0.0.1 port {port}")
            started[kind][name] = proc
        for i in range(ingestors):
            procs.append(spawn([sys.executable, "-m", "bot.crm.ingestor"], env, tmp / f"ingestor{i}.log"))
        prod = Production(
            lb, f"http://127.0.0.1:{binds['rasa_api']}", sock, db_url, env, tmp,
            started["rasa"], started["web"], started["action"], procs[-ingestors:] if ingestors else [], haproxy)
        prod.wait_status({(b, n): "UP" for kind, names in started.items() for n in names for b in backends[kind]})
        yield prod
    finally:
        stop(*reversed(procs), timeout=30)
        r = redis.Redis(db=PRODUCTION_REDIS_DB)
        stale = list(r.scan_iter(match=f"{prefix}*"))
        if stale:
            r.delete(*stale)
        r.close()
        from bot.db.session import get_engine

        get_engine(db_url).dispose()
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,))
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        admin.close()
        try:
            import pika

            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
            conn.channel().queue_delete(queue=queue)
            conn.close()
        except Exception:  # noqa: BLE001, S110 - best-effort clean-up
            pass
