"""crm_records: conversations, turns, and the ingestor's dedupe keys and offsets (issue 17)

Revision ID: 0002_crm_records
Revises: 0001_initial
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_crm_records"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_ingest_offsets",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_crm_ingest_offsets")),
    )
    op.create_table(
        "crm_ingested_events",
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("event_at", sa.DateTime(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_key", name=op.f("pk_crm_ingested_events")),
    )
    with op.batch_alter_table("crm_ingested_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_ingested_events_ingested_at"), ["ingested_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_crm_ingested_events_sender_id"), ["sender_id"], unique=False)

    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("tasks_completed", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("last_fallback", sa.Boolean(), nullable=False),
        sa.Column("csat_rating", sa.Integer(), nullable=True),
        sa.Column("csat_comment", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('open', 'resolved', 'escalated', 'abandoned', 'fallback')",
            name=op.f("ck_conversations_outcome"),
        ),
        sa.CheckConstraint(
            "csat_rating IS NULL OR (csat_rating >= 1 AND csat_rating <= 5)", name=op.f("ck_conversations_csat_range")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_conversations_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_last_event_at"), ["last_event_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_outcome"), ["outcome"], unique=False)
        batch_op.create_index("ix_conversations_sender_started", ["sender_id", "started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversations_started_at"), ["started_at"], unique=False)

    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=True),
        sa.Column("intent", sa.String(length=80), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("entities", sa.Text(), nullable=True),
        sa.Column("sentiment_label", sa.String(length=20), nullable=True),
        sa.Column("sentiment_probability", sa.Float(), nullable=True),
        sa.Column("action_name", sa.String(length=80), nullable=True),
        sa.Column("event_at", sa.DateTime(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.CheckConstraint("role IN ('user', 'bot', 'action', 'event')", name=op.f("ck_turns_role")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_turns_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_turns_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.UniqueConstraint("event_key", name=op.f("uq_turns_event_key")),
    )
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.create_index("ix_turns_conversation_event_at", ["conversation_id", "event_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_turns_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_turns_intent"), ["intent"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turns_intent"))
        batch_op.drop_index(batch_op.f("ix_turns_customer_id"))
        batch_op.drop_index("ix_turns_conversation_event_at")
    op.drop_table("turns")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_started_at"))
        batch_op.drop_index("ix_conversations_sender_started")
        batch_op.drop_index(batch_op.f("ix_conversations_outcome"))
        batch_op.drop_index(batch_op.f("ix_conversations_last_event_at"))
        batch_op.drop_index(batch_op.f("ix_conversations_customer_id"))
    op.drop_table("conversations")
    with op.batch_alter_table("crm_ingested_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_ingested_events_sender_id"))
        batch_op.drop_index(batch_op.f("ix_crm_ingested_events_ingested_at"))
    op.drop_table("crm_ingested_events")
    op.drop_table("crm_ingest_offsets")
