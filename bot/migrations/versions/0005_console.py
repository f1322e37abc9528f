"""console (placeholder: filled in by the feature that owns it)

Revision ID: 0005_console
Revises: 0004_analytics
Create Date: 2026-12-02
"""

from collections.abc import Sequence

revision: str = "0005_console"
down_revision: str | None = "0004_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
