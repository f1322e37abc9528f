"""Console log-in: argon2 password hashes, server-side sessions in the database, a log-in rate limit.

Why server-side sessions: a log-out or a disabled agent ends the session at once (the row is gone),
and the cookie holds only a random token whose sha256 is stored, so a database leak gives no
usable session. The cookie is HttpOnly, SameSite=Strict and Secure when CONCIERGE_COOKIE_SECURE is
set. Forms reuse the web app's CSRF token (bot/web/security.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session

from bot.db import handoffs as repo
from bot.db.base import utcnow
from bot.db.models import AGENT_ROLES, Agent, AgentSession
from bot.settings import Settings
from bot.web.deps import db_session, web_settings
from concierge_rasa.limits import Rate, RateLimiter

COOKIE = "concierge_console"
HASHER = PasswordHasher()
_DUMMY_HASH = HASHER.hash("not-a-password-of-anyone")  # equal work for unknown user names
MIN_PASSWORD = 10


@dataclass(frozen=True)
class AgentInfo:
    id: int
    username: str
    display_name: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _info(agent: Agent) -> AgentInfo:
    return AgentInfo(agent.id, agent.username, agent.display_name, agent.role)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_agent(session: Session, username: str, display_name: str, password: str, role: str = "agent") -> AgentInfo:
    """A console user; the password is stored only as an argon2id hash."""
    username = username.strip().lower()
    if not username or len(username) > 60 or not all(c.isalnum() or c in "._-" for c in username):
        raise ValueError("user names are 1-60 letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"passwords have at least {MIN_PASSWORD} characters")
    if role not in AGENT_ROLES:
        raise ValueError(f"role must be one of {AGENT_ROLES}")
    agent = repo.add_agent(session, Agent(username=username, display_name=display_name.strip()[:80] or username,
                                          role=role, password_hash=HASHER.hash(password)))
    return _info(agent)


def login_limiter(request: Request, settings: Settings) -> RateLimiter:
    """The app's log-in limiter (keys: client address and user name), made on first use."""
    limiter = getattr(request.app.state, "console_login_limiter", None)
    if limiter is None:
        per_min = settings.console_login_per_min
        limiter = request.app.state.console_login_limiter = RateLimiter(Rate(per_min, per_min))
    return limiter


def authenticate(session: Session, username: str, password: str) -> AgentInfo | None:
    """The agent when the password matches an active account; None otherwise (same work either way)."""
    agent = repo.agent_by_username(session, (username or "").strip().lower()[:60])
    try:
        HASHER.verify(agent.password_hash if agent is not None else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if agent is None or not agent.active:
        return None
    if HASHER.check_needs_rehash(agent.password_hash):
        agent.password_hash = HASHER.hash(password)
    return _info(agent)


def start_session(session: Session, response: Response, agent: AgentInfo, settings: Settings) -> None:
    """A new server-side session and its cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    repo.add_session(session, AgentSession(token_hash=_hash_token(token), agent_id=agent.id, created_at=now,
                                           last_seen_at=now,
                                           expires_at=now + timedelta(seconds=settings.console_session_ttl_s)))
    response.set_cookie(COOKIE, token, max_age=settings.console_session_ttl_s, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, path="/console")


def end_session(session: Session, request: Request, response: Response) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        repo.delete_session(session, _hash_token(token))
    response.delete_cookie(COOKIE, path="/console")


class LoginRequired(Exception):
    """No valid console session: pages redirect to the log-in form, API calls get 401."""


def optional_agent(request: Request, session: Session = Depends(db_session)) -> AgentInfo | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    row = repo.session_row(session, _hash_token(token))
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    agent = repo.agent(session, row.agent_id)
    if agent is None or not agent.active:
        return None
    row.last_seen_at = now
    if agent.last_seen_at is None or (now - agent.last_seen_at).total_seconds() > 30:
        agent.last_seen_at = now  # "online" for the wait estimate
    return _info(agent)


def current_agent(agent: AgentInfo | None = Depends(optional_agent)) -> AgentInfo:
    """The logged-in agent or supervisor (LoginRequired otherwise)."""
    if agent is None:
        raise LoginRequired()
    return agent


def current_supervisor(agent: AgentInfo = Depends(current_agent)) -> AgentInfo:
    """Supervisor pages: agents get 403."""
    if not agent.is_supervisor:
        raise HTTPException(status_code=403, detail="Only supervisors can open this page.")
    return agent


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


__all__ = [
    "COOKIE", "AgentInfo", "LoginRequired", "authenticate", "client_address", "create_agent", "current_agent",
    "current_supervisor", "end_session", "login_limiter", "optional_agent", "start_session", "web_settings",
]
