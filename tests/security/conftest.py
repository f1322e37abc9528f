"""A real stack (action server + Rasa, tests/stack.py) configured as a deployment behind a
proxy, so each test can speak from its own client address (X-Forwarded-For), with small limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.stack import ACTION_TOKEN, SECRET, Servers, start_servers

RASA_API_TOKEN = "security-suite-rasa-api-token-0123456789"
PREVIOUS_SECRET = "the-previous-identity-secret-0123456789"  # still accepted (rotation)
RETIRED_SECRET = "a-retired-identity-secret-no-longer-valid"
IDLE_S = 25
LIMITS = {
    "SANIC_PROXIES_COUNT": "1",  # the client address comes from X-Forwarded-For, as behind one proxy
    "CONCIERGE_IDENTITY_SECRET_PREVIOUS": PREVIOUS_SECRET,
    "CONCIERGE_SESSION_IDLE_S": str(IDLE_S),
    "CONCIERGE_RATE_SENDER_PER_MIN": "30",
    "CONCIERGE_RATE_SENDER_BURST": "10",
    "CONCIERGE_RATE_CLIENT_PER_MIN": "60",
    "CONCIERGE_RATE_CLIENT_BURST": "20",
    "CONCIERGE_VERIFY_MAX_FAILURES": "3",
    "CONCIERGE_VERIFY_CLIENT_MAX_FAILURES": "10",
    "CONCIERGE_TICKETS_PER_CLIENT_DAY": "2",
}
# the fuzz stack: client addresses from X-Forwarded-For too, rate limits left at the launcher's 100,000
# (unbuffered: the test scans the servers' logs while they run)
FUZZ_ENV = {"SANIC_PROXIES_COUNT": "1", "CONCIERGE_IDENTITY_SECRET_PREVIOUS": PREVIOUS_SECRET, "PYTHONUNBUFFERED": "1"}

__all__ = ["ACTION_TOKEN", "RASA_API_TOKEN", "SECRET", "Reply", "rest"]


@dataclass
class Reply:
    status: int
    texts: list[str]
    credential: str | None
    raw: str

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def rest(
    srv: Servers,
    sender: str,
    message: object,
    ip: str,
    metadata: object = None,
    credential: str | None = None,
) -> Reply:
    """One REST message from client address ``ip`` (with the session credential, when given)."""
    headers = {"X-Forwarded-For": ip}
    if credential:
        headers["X-Concierge-Session"] = credential
    body: dict = {"sender": sender, "message": message}
    if metadata is not None:
        body["metadata"] = metadata
    resp = requests.post(f"{srv.rasa_url}/webhooks/rest/webhook", json=body, headers=headers, timeout=60)
    texts: list[str] = []
    try:
        data = resp.json()
        if isinstance(data, list):
            texts = [str(m.get("text") or "") for m in data if isinstance(m, dict)]
    except ValueError:
        pass
    return Reply(resp.status_code, texts, resp.headers.get("X-Concierge-Session"), resp.text)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The attacks' stack, with the small limits above (module scope: it stops before the fuzz stack starts)."""
    yield from start_servers(
        tmp_path_factory.mktemp("security"),
        extra_env=LIMITS,
        rasa_args=["--enable-api", "--auth-token", RASA_API_TOKEN],
    )


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The fuzz test's stack: behind a proxy like the attacks' one, but with the launcher's high rate limits.

    Why a second stack: with LIMITS most fuzzed messages got the "slow down" reply and never reached
    the NLU, the policies or the actions. The limits themselves are tested in test_attacks.py."""
    yield from start_servers(
        tmp_path_factory.mktemp("fuzz"),
        extra_env=FUZZ_ENV,
        rasa_args=["--enable-api", "--auth-token", RASA_API_TOKEN],
    )
