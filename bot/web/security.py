"""Session identity, CSRF tokens and security headers of the web app.

The session is Starlette's signed cookie (itsdangerous, HttpOnly, SameSite=Lax). It holds the
logged-in customer id, a CSRF token for the forms and ``chat_id``: a random id that changes at
every log-in and log-out so that the widget starts a new conversation when the identity changes.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from bot.settings import Settings

CUSTOMER_KEY = "cid"
CSRF_KEY = "csrf"
CHAT_KEY = "chat_id"


def session_customer_id(request: Request) -> int | None:
    """The logged-in customer's id, or None for an anonymous visitor."""
    cid = request.session.get(CUSTOMER_KEY)
    return cid if isinstance(cid, int) and not isinstance(cid, bool) and cid > 0 else None


def csrf_token(request: Request) -> str:
    """The session's CSRF token for forms (created on first use)."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(24)
        request.session[CSRF_KEY] = token
    return token


def check_csrf(request: Request, submitted: object) -> None:
    """403 unless the form echoed the session's CSRF token."""
    expected = request.session.get(CSRF_KEY)
    if not isinstance(expected, str) or not isinstance(submitted, str) or not submitted:
        raise HTTPException(status_code=403, detail="The form expired; reload the page and try again.")
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise HTTPException(status_code=403, detail="The form expired; reload the page and try again.")


def chat_id(request: Request) -> str:
    """Who the widget's stored conversation belongs to (a new value = a new conversation)."""
    value = request.session.get(CHAT_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(12)
        request.session[CHAT_KEY] = value
    return value


def start_identity(request: Request, customer_id: int | None) -> None:
    """Log in (``customer_id``) or out (None): a fresh session with a new chat id and CSRF token."""
    request.session.clear()
    if customer_id is not None:
        request.session[CUSTOMER_KEY] = customer_id
    request.session[CHAT_KEY] = secrets.token_urlsafe(12)
    request.session[CSRF_KEY] = secrets.token_urlsafe(24)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """Scripts only from this app; the page talks only to itself and to the Rasa server.

    The widget injects its CSS as <style> elements (hence 'unsafe-inline' for styles) and
    @imports a web font, which this policy blocks: the page works offline.
    """
    rasa = origin(settings.rasa_public_url)
    ws = "wss://" + rasa.split("://", 1)[1] if rasa.startswith("https://") else "ws://" + rasa.split("://", 1)[1]
    shop = origin(settings.shop_url)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: {shop}; font-src 'self' data:; connect-src 'self' {rasa} {ws}; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
