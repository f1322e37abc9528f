"""security: verification failure counters and chat verifications bound to a session

Revision ID: 0003_security
Revises: 0002_crm_records
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_security"
down_revision: str | None = "0002_crm_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "security_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_counters")),
    )
    with op.batch_alter_table("security_counters", schema=None) as batch_op:
        batch_op.create_index("ux_security_counters_kind_key", ["kind", "key"], unique=True)
    op.create_table(
        "chat_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_chat_verifications_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_verifications")),
    )
    with op.batch_alter_table("chat_verifications", schema=None) as batch_op:
        batch_op.create_index(
            "ux_chat_verifications_conversation_session", ["conversation_id", "session_id"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_chat_verifications_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_verifications_customer_id"))
        batch_op.drop_index("ux_chat_verifications_conversation_session")
    op.drop_table("chat_verifications")
    with op.batch_alter_table("security_counters", schema=None) as batch_op:
        batch_op.drop_index("ux_security_counters_kind_key")
    op.drop_table("security_counters")
