from sqlalchemy import select

from bot.db import customers
from bot.db import models as m


def test_lookups(session):
    assert customers.get_by_email(session, " ALICE.MARTIN@example.com ").id == 1
    assert customers.get_by_email(session, "nobody@example.com") is None
    assert customers.email_taken(session, "bob.nguyen@example.com")
    assert not customers.email_taken(session, "bob.nguyen@example.com", exclude_id=2)


def test_add_default_address_unsets_previous(session):
    new = customers.add_address(
        session, 1, line1="1 New Rd", city="Omaha", postcode="68102", make_default=True
    )
    defaults = session.scalars(
        select(m.Address).where(m.Address.customer_id == 1, m.Address.is_default.is_(True))
    ).all()
    assert [a.id for a in defaults] == [new.id]
    assert customers.default_address(session, 1).id == new.id


def test_get_active_skips_deleted(session):
    session.get(m.Customer, 3).status = "deleted"
    session.flush()
    assert customers.get(session, 3) is not None
    assert customers.get_active(session, 3) is None
