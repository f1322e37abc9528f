"""Apply Alembic migrations from code or the shell (``python -m bot.db.migrate [--url URL]``)."""

from __future__ import annotations

import argparse
import sys

from alembic import command
from alembic.config import Config

from bot.settings import PROJECT_ROOT, get_settings, mask_url


def alembic_config(url: str | None = None) -> Config:
    """Alembic Config for this project; ``url`` overrides settings.database_url."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "bot" / "migrations"))
    cfg.attributes["configure_logger"] = False
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` (default: settings) up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Downgrade the database at ``url`` to ``revision`` (default: drop everything)."""
    command.downgrade(alembic_config(url), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply Concierge database migrations.")
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or var/concierge.db)")
    parser.add_argument("--revision", default="head")
    args = parser.parse_args(argv)
    upgrade(args.url, args.revision)
    print(f"database at {mask_url(args.url or get_settings().database_url)} is at {args.revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
