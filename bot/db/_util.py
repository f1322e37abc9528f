"""Small helpers shared by repositories."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

Row = TypeVar("Row")
NUMBER_ATTEMPTS = 8


def next_number(session: Session, column, prefix: str, start: int = 100001) -> str:  # noqa: ANN001
    """Next ``<prefix><6 digits>`` after the highest existing one (numbers are zero-free 6 digits)."""
    highest = session.scalar(select(func.max(column)).where(column.like(f"{prefix}%")))
    if not highest:
        return f"{prefix}{start}"
    try:
        return f"{prefix}{int(highest[len(prefix) :]) + 1}"
    except ValueError:
        return f"{prefix}{start}"


def add_numbered(session: Session, row: Row, column, prefix: str, start: int) -> Row:  # noqa: ANN001
    """Adds ``row`` under the next free ``<prefix>`` number and flushes it.

    The number is the highest one plus one, so two transactions opening a ticket at the same moment
    read the same highest number; the unique index refuses the second insert. That insert is rolled
    back to its savepoint and the number read again (the other transaction has committed by then),
    instead of failing the customer's request.
    """
    attr = column.key
    for attempt in range(NUMBER_ATTEMPTS):
        setattr(row, attr, next_number(session, column, prefix, start=start))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            if attempt == NUMBER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape LIKE wildcards so user text is matched literally."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")
