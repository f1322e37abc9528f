"""crm_records (placeholder: filled in by the feature that owns it)

Revision ID: 0002_crm_records
Revises: 0001_initial
Create Date: 2026-12-02
"""

from collections.abc import Sequence

revision: str = "0002_crm_records"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
