"""Small helpers shared by repositories."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def next_number(session: Session, column, prefix: str, start: int = 100001) -> str:  # noqa: ANN001
    """Next ``<prefix><6 digits>`` after the highest existing one (numbers are zero-free 6 digits)."""
    highest = session.scalar(select(func.max(column)).where(column.like(f"{prefix}%")))
    if not highest:
        return f"{prefix}{start}"
    try:
        return f"{prefix}{int(highest[len(prefix) :]) + 1}"
    except ValueError:
        return f"{prefix}{start}"


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape LIKE wildcards so user text is matched literally."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")
