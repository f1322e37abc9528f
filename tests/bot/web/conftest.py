"""A web app on the seeded test database, driven with FastAPI's TestClient (real HTTP handling)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from bot.settings import Settings, load_settings
from tests.conftest import TEST_SECRET

RASA_URL = "http://chat.example.test:5005"
SHOP_URL = "http://shop.example.test"


def web_test_settings(db_url: str, **changes: object) -> Settings:
    """Settings of a test web app: the given database, fixed secrets and public URLs."""
    base = load_settings()
    return dataclasses.replace(
        base,
        database_url=db_url,
        identity_secret=TEST_SECRET,
        session_secret="web-test-session-secret",
        rasa_public_url=RASA_URL,
        shop_url=SHOP_URL,
        **changes,
    )


@pytest.fixture
def make_client(db_url: str) -> Iterator[Callable[..., TestClient]]:
    """Builds clients of apps made by ``create_app(settings)``; ``**changes`` replace settings fields."""
    from bot.web.app import create_app

    clients: list[TestClient] = []

    def make(url: str | None = None, **changes: object) -> TestClient:
        client = TestClient(create_app(web_test_settings(url or db_url, **changes)), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: TestClient, email: str, next_url: str = "/"):  # noqa: ANN201 - an httpx Response
    page = client.get("/login")
    return client.post(
        "/login", data={"email": email, "csrf": csrf_of(page.text), "next": next_url}, follow_redirects=False
    )
