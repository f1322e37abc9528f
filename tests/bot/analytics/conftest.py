"""A copy of the small seeded shop with every analytic computed once (real models, spaCy, MiniLM)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Analyzed:
    url: str
    var_dir: Path
    report: object  # bot.analytics.refresh.RefreshReport


def _copy(src_url: str, dst: Path) -> str:
    src = sqlite3.connect(src_url.removeprefix("sqlite:///"))
    out = sqlite3.connect(dst)
    with out:
        src.backup(out)
    src.close()
    out.close()
    return f"sqlite:///{dst}"


@pytest.fixture(scope="session")
def analyzed(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analyzed]:
    from bot.analytics import serving
    from bot.analytics.refresh import refresh
    from bot.settings import get_settings

    tmp = tmp_path_factory.mktemp("analytics")
    url = _copy(db_url, tmp / "analyzed.db")
    mp = pytest.MonkeyPatch()  # only while refreshing: later test folders keep their settings
    mp.setenv("CONCIERGE_VAR_DIR", str(tmp / "var"))
    mp.setenv("CONCIERGE_MODELS_DIR", str(tmp / "var" / "models"))
    get_settings.cache_clear()
    serving.clear()
    try:
        report = refresh(url, progress=None)
    finally:
        mp.undo()
        get_settings.cache_clear()
        serving.clear()
    yield Analyzed(url, tmp / "var", report)
    from bot.db.session import get_engine

    get_engine(url).dispose()


@pytest.fixture
def analyzed_session(analyzed: Analyzed):  # noqa: ANN201 - Session
    """A Session on the analysed copy, rolled back after the test."""
    from tests.conftest import rolled_back_session, savepoint_engine

    engine = savepoint_engine(analyzed.url)
    try:
        yield from rolled_back_session(engine)
    finally:
        engine.dispose()


@pytest.fixture
def analytics_env(analyzed: Analyzed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Analyzed]:
    """Settings pointing at the analysed copy's models and charts, for one test."""
    from bot.analytics import serving
    from bot.settings import get_settings

    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(analyzed.var_dir))
    monkeypatch.setenv("CONCIERGE_MODELS_DIR", str(analyzed.var_dir / "models"))
    get_settings.cache_clear()
    serving.clear()
    yield analyzed
    serving.clear()
    monkeypatch.undo()
    get_settings.cache_clear()
