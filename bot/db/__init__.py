"""Database layer: ORM models, engine/session helpers, repositories (never commit)."""
