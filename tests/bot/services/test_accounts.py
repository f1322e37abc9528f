import pytest
from sqlalchemy import select

from bot.db import models as m
from bot.services import accounts
from bot.services.errors import InvalidInput, NotAllowed, NotFound


def test_change_email(session):
    info = accounts.change_email(session, 1, "  Alice.New@Example.org ")
    assert info.email == "alice.new@example.org"
    assert session.get(m.Customer, 1).email == "alice.new@example.org"


def test_change_email_in_use_by_another_customer(session):
    with pytest.raises(NotAllowed) as err:
        accounts.change_email(session, 1, "BOB.NGUYEN@example.com")
    assert err.value.code == "email_in_use"
    assert "already" in err.value.message
    assert session.get(m.Customer, 1).email == "alice.martin@example.com"


def test_change_email_to_own_address_is_fine(session):
    assert accounts.change_email(session, 1, "alice.martin@example.com").email == "alice.martin@example.com"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "alice",
        "alice@",
        "@example.com",
        "a b@example.com",
        "<script>@x.com",
        "a@b",
        "x" * 300 + "@example.com",
        "alice@example.com'; DROP TABLE customers; --",
        None,
    ],
)
def test_change_email_bad_format(session, bad):
    with pytest.raises(InvalidInput) as err:
        accounts.change_email(session, 1, bad)
    assert err.value.code == "invalid_email"


def test_unknown_customer(session):
    with pytest.raises(NotFound):
        accounts.change_email(session, 999_999, "new@example.com")
    with pytest.raises(NotFound):
        accounts.set_newsletter(session, 999_999, True)


def test_set_newsletter(session):
    assert accounts.set_newsletter(session, 2, True).newsletter is True
    assert session.get(m.Customer, 2).newsletter is True
    assert accounts.set_newsletter(session, 2, False).newsletter is False


def test_add_address_default(session):
    formatted = accounts.add_address(session, 4, "9 Pine Road, Boise, 83702")
    assert formatted == "9 Pine Road, Boise 83702, United States"
    rows = session.scalars(select(m.Address).where(m.Address.customer_id == 4)).all()
    defaults = [a for a in rows if a.is_default]
    assert [a.line1 for a in defaults] == ["9 Pine Road"]


def test_add_address_invalid(session):
    count = len(session.scalars(select(m.Address.id)).all())
    with pytest.raises(InvalidInput):
        accounts.add_address(session, 4, "somewhere nice")
    assert len(session.scalars(select(m.Address.id)).all()) == count
