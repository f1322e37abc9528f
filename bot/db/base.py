"""Declarative base and time helper.

Datetime convention: every DateTime column holds **naive UTC** (``utcnow()``), on SQLite and
PostgreSQL alike, so comparisons never mix aware and naive values. Convert at the edges only.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current time as naive UTC (the storage convention of this project)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Base class of all ORM models; a naming convention keeps Alembic diffs stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
