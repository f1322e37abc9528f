"""Alembic environment: URL from `-x url=`, the config's sqlalchemy.url, or bot.settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from bot.db import models  # noqa: F401 - registers the tables on Base.metadata
from bot.db.base import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    if x_url:
        return x_url
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bot.settings import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from bot.db.session import get_engine

    with get_engine(_url()).connect() as conn:
        _run(conn)


def _run(connection) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # batch mode rebuilds a table (copy, drop, rename); with foreign keys on, dropping the old
        # copy would cascade into the rows that reference it (handoffs of a rebuilt support_tickets).
        # The pragma is ignored inside a transaction: set it before, restore it after.
        if connection.in_transaction():
            connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection)
    finally:
        if sqlite:
            if connection.in_transaction():
                connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _migrate(connection) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
