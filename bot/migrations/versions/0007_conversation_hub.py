"""conversation hub: every conversation-scoped row links to conversations.id; JSON columns (issue 26)

Before, ``conversation_id`` meant Rasa's sender string in tickets, interactions, feedback,
chat verifications and feedback mentions, but the integer conversation in turns; handoffs
reached their conversation only through ``sender_id``. Now the sender string is ``sender_id``
everywhere and ``conversation_id`` is always a foreign key to ``conversations.id`` (nullable:
an action can write its row before the CRM ingestor has created the conversation; the ingestor
fills the link then, see ``bot.db.conversations.link_unlinked``).

Existing rows are linked by sender: the sender's latest conversation that started at or before
the row was written, else the sender's first one. JSON kept in Text (handoff summary, snapshot,
transcript, comma-separated labels, turn entities) becomes JSON columns.

Revision ID: 0007_conversation_hub
Revises: 0006_dashboard_indexes
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_conversation_hub"
down_revision: str | None = "0006_dashboard_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (index on the old string column to drop, (name, columns, unique) of its sender index)
RENAMED = {
    "support_tickets": ("ix_support_tickets_conversation_id", ("ix_support_tickets_sender_id", ["sender_id"], False)),
    "interactions": (
        "ix_interactions_conversation_created",
        ("ix_interactions_sender_created", ["sender_id", "created_at"], False),
    ),
    "feedback": ("ix_feedback_conversation_id", ("ix_feedback_sender_id", ["sender_id"], False)),
    "chat_verifications": (
        "ux_chat_verifications_conversation_session",
        ("ux_chat_verifications_sender_session", ["sender_id", "session_id"], True),
    ),
    "feedback_mentions": (
        "ix_feedback_mentions_conversation_id",
        ("ix_feedback_mentions_sender_id", ["sender_id"], False),
    ),
}
LINKED = ("support_tickets", "interactions", "feedback", "chat_verifications", "feedback_mentions", "handoffs")
# (table, column, old type, kind): "json" = JSON text; "labels" = comma-separated list
JSON_COLUMNS = (
    ("handoffs", "summary", sa.Text(), "json", "{}"),
    ("handoffs", "snapshot", sa.Text(), "json", "{}"),
    ("handoffs", "transcript", sa.Text(), "json", "[]"),
    ("handoffs", "labels", sa.String(length=400), "labels", "[]"),
    ("turns", "entities", sa.Text(), "json", None),
)
CHUNK = 1000


def _link_sql(table: str) -> str:
    """Fills ``conversation_id`` of unlinked rows from their sender (same rule as the ingestor)."""
    # table names are this module's constants, never input
    of_sender = f"SELECT c.id FROM conversations c WHERE c.sender_id = {table}.sender_id"  # noqa: S608
    latest = f"{of_sender} AND c.started_at <= {table}.created_at ORDER BY c.started_at DESC, c.id DESC LIMIT 1"
    first = f"{of_sender} ORDER BY c.started_at, c.id LIMIT 1"
    return f"UPDATE {table} SET conversation_id = COALESCE(({latest}), ({first})) WHERE conversation_id IS NULL"  # noqa: S608


def _add_link(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        if table != "feedback_mentions":  # there the old crm_conversation_id becomes the link
            batch_op.add_column(sa.Column("conversation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f(f"fk_{table}_conversation_id_conversations"), "conversations", ["conversation_id"], ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(op.f(f"ix_{table}_conversation_id"), ["conversation_id"], unique=False)


def _convert(  # noqa: PLR0913
    table: str, column: str, old_type: sa.types.TypeEngine, new_type: sa.types.TypeEngine, fn, nullable: bool  # noqa: ANN001
) -> None:
    """Rewrites ``column`` as ``new_type`` through a temporary column, row by row (portable)."""
    tmp = f"{column}_new"
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.add_column(sa.Column(tmp, new_type, nullable=True))
    bind = op.get_bind()
    src = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, old_type))
    dst = sa.table(table, sa.column("id", sa.Integer()), sa.column(tmp, new_type))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(src.c.id, src.c[column]).where(src.c.id > last).order_by(src.c.id).limit(CHUNK)
        ).all()
        if not rows:
            break
        bind.execute(
            dst.update().where(dst.c.id == sa.bindparam("rid")).values({tmp: sa.bindparam("val", type_=new_type)}),
            [{"rid": r[0], "val": fn(r[1])} for r in rows],
        )
        last = rows[-1][0]
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_column(column)
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.alter_column(tmp, new_column_name=column, existing_type=new_type, nullable=nullable)


def _json(default: str | None) -> sa.JSON:
    """JSON type; a nullable column stores Python None as SQL NULL, not the JSON 'null'."""
    return sa.JSON(none_as_null=default is None)


def _load(default: str):  # noqa: ANN202
    def fn(value: str | None) -> object:
        if value is None or not str(value).strip():
            return None if default is None else json.loads(default)
        try:
            return json.loads(value)
        except ValueError:  # a damaged value (none is known) must not stop the migration
            return None if default is None else json.loads(default)

    return fn


def _labels(value: str | None) -> list[str]:
    return [x for x in (value or "").split(",") if x]


def _dump(value: object) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _join(value: object) -> str:
    return ",".join(str(x) for x in value) if isinstance(value, list) else ""


def upgrade() -> None:
    for table, (old_index, _new) in RENAMED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(old_index)
            batch_op.alter_column(
                "conversation_id", new_column_name="sender_id", existing_type=sa.String(length=128),
                existing_nullable=False,
            )
    with op.batch_alter_table("feedback_mentions", schema=None) as batch_op:
        batch_op.alter_column(
            "crm_conversation_id", new_column_name="conversation_id", existing_type=sa.Integer(), existing_nullable=True
        )
    op.execute(
        "UPDATE feedback_mentions SET conversation_id = NULL "
        "WHERE conversation_id IS NOT NULL AND conversation_id NOT IN (SELECT id FROM conversations)"
    )
    for table in LINKED:
        _add_link(table)
    for table, (_old, (name, columns, unique)) in RENAMED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=unique)
    for table in LINKED:
        op.execute(_link_sql(table))
    for table, column, old_type, kind, default in JSON_COLUMNS:
        fn = _labels if kind == "labels" else _load(default)
        _convert(table, column, old_type, _json(default), fn, nullable=default is None)


def downgrade() -> None:
    for table, column, old_type, kind, default in reversed(JSON_COLUMNS):
        if kind == "labels":
            fn = _join
        elif default is None:
            fn = _dump
        else:
            fn = lambda v, d=default: _dump(v) or d  # noqa: E731
        _convert(table, column, _json(default), old_type, fn, nullable=default is None)
    for table, (_old, (name, _columns, _unique)) in RENAMED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    for table in reversed(LINKED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(op.f(f"ix_{table}_conversation_id"))
            batch_op.drop_constraint(op.f(f"fk_{table}_conversation_id_conversations"), type_="foreignkey")
            if table != "feedback_mentions":
                batch_op.drop_column("conversation_id")
    with op.batch_alter_table("feedback_mentions", schema=None) as batch_op:
        batch_op.alter_column(
            "conversation_id", new_column_name="crm_conversation_id", existing_type=sa.Integer(), existing_nullable=True
        )
    for table, (old_index, _new) in RENAMED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "sender_id", new_column_name="conversation_id", existing_type=sa.String(length=128),
                existing_nullable=False,
            )
        with op.batch_alter_table(table, schema=None) as batch_op:
            columns = ["conversation_id", "created_at"] if table == "interactions" else ["conversation_id"]
            if table == "chat_verifications":
                columns = ["conversation_id", "session_id"]
            batch_op.create_index(old_index, columns, unique=table == "chat_verifications")
