"""analytics: per-customer segment, churn risk, value, lifecycle stage; feedback topic mentions (issue 20)

Revision ID: 0004_analytics
Revises: 0003_security
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_analytics"
down_revision: str | None = "0003_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_analytics",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=80), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("churn_risk", sa.Float(), nullable=False),
        sa.Column("expected_purchases_12m", sa.Float(), nullable=False),
        sa.Column("expected_value_12m", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("value_percentile", sa.Float(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=20), nullable=False),
        sa.Column("priority_score", sa.Float(), nullable=False),
        sa.Column("recency_days", sa.Float(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "churn_risk >= 0 AND churn_risk <= 1", name=op.f("ck_customer_analytics_churn_risk_range")
        ),
        sa.CheckConstraint(
            "lifecycle_stage IN ('new', 'active', 'at_risk', 'lapsed', 'won_back')",
            name=op.f("ck_customer_analytics_lifecycle_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_analytics_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_analytics")),
    )
    with op.batch_alter_table("customer_analytics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_analytics_computed_at"), ["computed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_analytics_lifecycle_stage"), ["lifecycle_stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_analytics_segment"), ["segment"], unique=False)

    op.create_table(
        "feedback_mentions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("crm_conversation_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("aspect", sa.String(length=120), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("source IN ('ticket', 'csat', 'turn')", name=op.f("ck_feedback_mentions_source")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_feedback_mentions_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_mentions")),
    )
    with op.batch_alter_table("feedback_mentions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_mentions_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_mentions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_mentions_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_feedback_mentions_topic_created", ["topic", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_mentions_topic_created")
        batch_op.drop_index(batch_op.f("ix_feedback_mentions_customer_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_mentions_created_at"))
        batch_op.drop_index(batch_op.f("ix_feedback_mentions_conversation_id"))
    op.drop_table("feedback_mentions")
    with op.batch_alter_table("customer_analytics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_analytics_segment"))
        batch_op.drop_index(batch_op.f("ix_customer_analytics_lifecycle_stage"))
        batch_op.drop_index(batch_op.f("ix_customer_analytics_computed_at"))
    op.drop_table("customer_analytics")
