"""Fixtures of the end-to-end tests: the real stack from ``tests/stack.py`` (the shared launcher that
benchmarks and other test packages import too), once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from tests.stack import Servers, start_servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from start_servers(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def db(servers: Servers) -> Iterator[Engine]:
    """The e2e stack's database, to read what a conversation wrote (modules with another stack override it)."""
    engine = create_engine(servers.db_url)
    yield engine
    engine.dispose()
