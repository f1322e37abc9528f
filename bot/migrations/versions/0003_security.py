"""security (placeholder: filled in by the feature that owns it)

Revision ID: 0003_security
Revises: 0002_crm_records
Create Date: 2026-12-02
"""

from collections.abc import Sequence

revision: str = "0003_security"
down_revision: str | None = "0002_crm_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
