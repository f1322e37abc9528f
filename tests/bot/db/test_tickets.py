from bot.db import tickets


def test_create_and_list(session):
    # numbers continue after the seeded support history (TK-600001..)
    expected = tickets.next_ticket_number(session)
    n = int(expected.removeprefix("TK-"))
    first = tickets.create(session, sender_id="c-1", category="complaint", subject="Late parcel")
    second = tickets.create(session, sender_id="c-1", category="other", subject="More")
    assert first.number == expected
    assert second.number == f"TK-{n + 1}"
    assert [t.number for t in tickets.for_conversation(session, "c-1")] == [expected, f"TK-{n + 1}"]
    assert tickets.for_conversation(session, "c-2") == []


def _competing_insert_before_first(engine, table: str, insert_sql: str) -> list[str]:  # noqa: ANN001
    """Before the first INSERT into ``table`` on ``engine``, another connection commits ``insert_sql``
    with the number that INSERT carries: the interleaving of two action calls opening one at once."""
    import sqlite3

    from sqlalchemy import event

    taken: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _race(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if taken or not statement.startswith(f"INSERT INTO {table}"):
            return
        number = next(p for p in parameters if isinstance(p, str) and p[:3] in ("TK-", "RF-"))
        taken.append(number)
        other = sqlite3.connect(engine.url.database, timeout=10)
        with other:
            other.execute(insert_sql, (number,))
        other.close()

    return taken


def test_a_number_taken_by_a_concurrent_transaction_is_not_an_error(fresh_db_url) -> None:
    """Two tickets opened at the same moment read the same highest number; the second insert used to
    fail on the unique index (UNIQUE constraint failed: support_tickets.number, found by the fuzz
    test), so a customer's complaint or handoff got the technical-problem reply."""
    from bot.db.session import get_engine, session_scope

    taken = _competing_insert_before_first(
        get_engine(fresh_db_url),
        "support_tickets",
        "INSERT INTO support_tickets (number, sender_id, category, subject, description, priority, status, created_at)"
        " VALUES (?, 'someone-else', 'other', 'x', '', 'normal', 'open', CURRENT_TIMESTAMP)",
    )
    with session_scope(fresh_db_url) as s:
        ticket = tickets.create(s, sender_id="c-race", category="complaint", subject="Late parcel")
        number = ticket.number
    assert taken, "the competing insert never ran"
    assert number == f"TK-{int(taken[0][3:]) + 1}"
    with session_scope(fresh_db_url) as s:
        assert [t.number for t in tickets.for_conversation(s, "c-race")] == [number]
        assert [t.number for t in tickets.for_conversation(s, "someone-else")] == [taken[0]]
