"""dashboard indexes: the supervisor dashboard's GROUP BY queries read indexes only (issue 18)

Conversations by (channel,) start day, customer messages by time with their sentiment, intent
and conversation, CSAT by day, tickets and handoffs by creation time. bench/dashboard.py
measures each dashboard request with and without these on a history of >= 100,000 turns.

Revision ID: 0006_dashboard_indexes
Revises: 0005_console
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_dashboard_indexes"
down_revision: str | None = "0005_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); bench/dashboard.py drops these for its baseline
INDEXES = {
    "ix_conversations_started_outcome": ("conversations", ["started_at", "outcome", "escalated"]),
    "ix_conversations_channel_started": ("conversations", ["channel", "started_at", "outcome", "escalated"]),
    "ix_turns_role_event": ("turns", ["role", "event_at", "sentiment_label", "intent", "conversation_id"]),
    "ix_turns_conversation_role_event": (
        "turns", ["conversation_id", "role", "event_at", "sentiment_label", "intent"]
    ),
    "ix_feedback_created_rating": ("feedback", ["created_at", "rating"]),
    "ix_support_tickets_created_category": ("support_tickets", ["created_at", "category"]),
    "ix_handoffs_created_channel": ("handoffs", ["created_at", "channel"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    for name, (table, _columns) in reversed(INDEXES.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
