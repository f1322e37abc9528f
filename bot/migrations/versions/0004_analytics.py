"""analytics (placeholder: filled in by the feature that owns it)

Revision ID: 0004_analytics
Revises: 0003_security
Create Date: 2026-12-02
"""

from collections.abc import Sequence

revision: str = "0004_analytics"
down_revision: str | None = "0003_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
