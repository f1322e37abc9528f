"""FastAPI dependencies shared by the web app's routers (overridden in tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jinja2
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from bot.db.session import session_scope
from bot.settings import Settings

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


@jinja2.pass_context
def path_for(context: dict, name: str, /, **params: object) -> str:
    """A route's path (relative URLs keep pages working behind proxies and on any host name)."""
    return str(context["request"].app.url_path_for(name, **params))


TEMPLATES.env.globals["path_for"] = path_for


def web_settings(request: Request) -> Settings:
    """The settings the app was created with (``create_app(settings)``)."""
    return request.app.state.settings


def db_session(settings: Settings = Depends(web_settings)) -> Iterator[Session]:
    """One transaction per request on the shop's database (read-only pages never write)."""
    with session_scope(settings.database_url) as session:
        yield session
