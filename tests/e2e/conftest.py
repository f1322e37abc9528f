"""Starts the REAL action server (Python 3.11) and Rasa server (Python 3.10) on free ports.

They share a freshly migrated and seeded SQLite database in a temporary folder, so the
tests can check what the conversations changed in the database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "concierge.tar.gz"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
SECRET = "e2e-identity-secret-at-least-32-characters"  # settings refuse shorter secrets
ACTION_TOKEN = "e2e-action-server-token-at-least-32-characters"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout}s:\n{log.read_text()[-3000:]}")


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
    # REST session credentials per sender, kept and sent back as a real client does (README "Security")
    rest_sessions: dict[str, str] = field(default_factory=dict)

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
    model = model or Path(os.environ.get("CONCIERGE_TEST_MODEL") or MODEL)
    if not model.exists():
        pytest.fail(f"{model} is missing: run `make train` first (make test does it).")
    if not RASA.exists():
        pytest.fail(f"{RASA} is missing: run `make setup` first (make test does it).")
    from bot.seed import seed

    db_url = f"sqlite:///{tmp / 'concierge.db'}"
    seed(db_url, progress=None, **(seed_kwargs or {"seed": 7, "customers": 80, "products": 320, "orders": 800}))
    action_port, rasa_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CONCIERGE_IDENTITY_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        # Rasa -> action server shared secret (endpoints.yml sends it; README "Security")
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
    action_log, rasa_log = tmp / "actions.log", tmp / "rasa.log"
    action_cmd = [sys.executable, "-m", "bot.action_server", "--port", str(action_port)]
    action_proc = subprocess.Popen(action_cmd, cwd=ROOT, env=env, stdout=action_log.open("w"), stderr=subprocess.STDOUT)
    rasa_cmd = [
        str(RASA),
        "run",
        "-m",
        str(model),
        "--port",
        str(rasa_port),
        "--endpoints",
        endpoints,
        "--credentials",
        credentials,
        "-i",
        "127.0.0.1",
        *(rasa_args or []),
    ]
    rasa_proc = subprocess.Popen(rasa_cmd, cwd=ROOT, env=env, stdout=rasa_log.open("w"), stderr=subprocess.STDOUT)
    ingestor_proc = None
    if ingestor:
        ingestor_proc = subprocess.Popen(
            [sys.executable, "-m", "bot.crm.ingestor"],
            cwd=ROOT,
            env=env,
            stdout=(tmp / "ingestor.log").open("w"),
            stderr=subprocess.STDOUT,
        )
    srv = Servers(
        f"http://127.0.0.1:{rasa_port}",
        f"http://127.0.0.1:{action_port}",
        db_url,
        action_proc,
        action_cmd,
        env,
        tmp,
        rasa_proc=rasa_proc,
        rasa_cmd=rasa_cmd,
        ingestor_proc=ingestor_proc,
        events_db=tmp / "events.db",
    )
    try:
        wait_for(f"{srv.action_url}/health", action_proc, action_log, 120)
        wait_for(f"{srv.rasa_url}/webhooks/rest/", rasa_proc, rasa_log, 300)
        yield srv
    finally:
        procs = [p for p in (srv.rasa_proc, srv.action_proc, srv.ingestor_proc) if p is not None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from start_servers(tmp_path_factory.mktemp("e2e"))
