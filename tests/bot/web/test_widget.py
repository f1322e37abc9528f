"""bot/web/widget.py: the customer token endpoint and the locally served rasa-webchat bundle."""

from __future__ import annotations

import time

import pytest

from bot.services.identity import verify_token
from bot.settings import PROJECT_ROOT
from bot.web.widget import WEBCHAT_BUNDLE
from tests.actions.conftest import EMAILS
from tests.bot.web.conftest import RASA_URL, login
from tests.conftest import TEST_SECRET


def test_anonymous_visitors_get_no_token(client):
    resp = client.get("/api/chat-token")
    assert resp.status_code == 401
    assert resp.json() == {"detail": "Not logged in"}
    assert resp.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("customer_id", [1, 3])
def test_logged_in_customers_get_a_short_lived_token(client, customer_id):
    login(client, EMAILS[customer_id])
    before = int(time.time())
    resp = client.get("/api/chat-token")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert verify_token(body["token"], secret=TEST_SECRET) == customer_id
    assert verify_token(body["token"], secret="another-secret") is None
    assert body["expires_in"] == 900
    assert before + 900 <= body["expires_at"] <= int(time.time()) + 900
    assert verify_token(body["token"], secret=TEST_SECRET, now=before + 901) is None  # expired after 15 min


def test_the_token_stops_at_logout(client):
    login(client, EMAILS[2])
    assert client.get("/api/chat-token").status_code == 200
    from tests.bot.web.conftest import csrf_of

    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    assert client.get("/api/chat-token").status_code == 401


def test_token_ttl_comes_from_the_settings(make_client):
    client = make_client(chat_token_ttl_s=60)
    login(client, EMAILS[4])
    body = client.get("/api/chat-token").json()
    assert body["expires_in"] == 60
    assert verify_token(body["token"], secret=TEST_SECRET, now=time.time() + 61) is None


def test_the_page_configures_the_widget(client):
    page = client.get("/").text
    assert '<script src="/widget/webchat.js" defer></script>' in page
    assert f'data-socket-url="{RASA_URL}"' in page
    assert 'data-socket-path="/socket.io/"' in page
    assert 'data-token-url="/api/chat-token"' in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_the_widget_bundle_is_served_locally(client):
    bundle = PROJECT_ROOT / WEBCHAT_BUNDLE
    assert bundle.is_file(), "node_modules is missing: run `make web` (npm ci)"
    resp = client.get("/widget/webchat.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    original = bundle.read_bytes()
    assert b"WebChat" in resp.content
    # the same bundle less its 11 Google Fonts imports, which the CSP blocked (a console error each)
    font_import = b"@import url(https://fonts.googleapis.com/css?family=Inter:400,500,700&display=swap);"
    assert original.count(font_import) == 11
    assert b"googleapis" not in resp.content and b"@import url(http" not in resp.content
    assert resp.content == original.replace(font_import, b"")


def test_a_missing_bundle_says_how_to_install_it(make_client, tmp_path):
    client = make_client(project_root=tmp_path)
    resp = client.get("/widget/webchat.js")
    assert resp.status_code == 503
    assert "npm ci" in resp.text
