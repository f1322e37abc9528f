"""What a test needs from its surroundings (a local service, a file), checked one way for the whole suite.

Why: a test that skips quietly when PostgreSQL is down or a model file is missing lets CI pass
while it tested nothing. Outside CI a missing part skips with its reason (the Makefile's ``-rs``
lists it); under ``CI=true`` (``.ci/run`` sets it) the same reason fails the run. Only *absence*
is excused: a part that is there but broken (bad credentials, a corrupt file) is the test's own
failure, so nothing here catches broad exceptions.

``tests/conftest.py`` adds the backstop: under CI any other skip (a ``skipif``, an
``importorskip``, a ``pytest.skip`` written later) fails too, unless the test carries
``@pytest.mark.ci_may_skip(reason=...)``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
RABBITMQ = ("127.0.0.1", 5672)
ALLOW_SKIP_MARKER = "ci_may_skip"


def in_ci() -> bool:
    """True under a CI run (``CI`` set to anything but empty/0/false/no), where nothing may be missing."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` on a developer's machine; fail with it under CI."""
    if in_ci():
        pytest.fail(f"CI=true, so this is a failure, not a skip: {reason}", pytrace=False)
    # reported at the test's own line (not this one), so ``-rs`` says which tests skipped
    raise pytest.skip.Exception(reason, _use_item_location=True)


def require_service(name: str, address: tuple[str, int], why: str = "", timeout_s: float = 2.0) -> None:
    """The server ``name`` must accept TCP connections on ``address``; only a refused or timed-out
    connection counts as absent (what the test does with the server afterwards is not excused)."""
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        refused = exc
    missing(f"{name} is not running on {host}:{port} ({type(refused).__name__}){'; ' + why if why else ''}")


def require_postgres(why: str = "these tests need the local server (trust, db `test`)") -> None:
    """The local PostgreSQL server (docs/DEVELOPERS.md: 127.0.0.1:5432)."""
    require_service("PostgreSQL", POSTGRES, why)


def require_redis(why: str = "the production profile's lock store needs it") -> None:
    """The local Redis server (127.0.0.1:6379)."""
    require_service("Redis", REDIS, why)


def require_rabbitmq(why: str = "the production profile's event broker needs it") -> None:
    """The local RabbitMQ server (127.0.0.1:5672, guest/guest)."""
    require_service("RabbitMQ", RABBITMQ, why)


def require_files(folder: Path, names: tuple[str, ...], what: str, hint: str = "") -> Path:
    """``folder`` with every one of ``names``. None of them there: ``what`` is absent (skip, or fail
    under CI). Some but not all: a broken export or copy, which always fails."""
    present = [n for n in names if (folder / n).is_file()]
    if not present:
        missing(f"{what} is not in {folder}{'. ' + hint if hint else ''}")
    if len(present) != len(names):
        lacking = ", ".join(n for n in names if n not in present)
        pytest.fail(f"{what} in {folder} is incomplete (no {lacking}){'. ' + hint if hint else ''}", pytrace=False)
    return folder


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """One file that must exist (its content is the test's business)."""
    return require_files(path.parent, (path.name,), what, hint) / path.name


def skip_allowed(item: pytest.Item) -> str | None:
    """The reason a test gave (``@pytest.mark.ci_may_skip(reason=...)``) for skipping even under CI."""
    marker = item.get_closest_marker(ALLOW_SKIP_MARKER)
    if marker is None:
        return None
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
    if not reason:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{ALLOW_SKIP_MARKER} needs a reason")
    return reason


def fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport, item: pytest.Item | None = None) -> None:
    """Turns a skipped report into a failed one under CI (xfail stays as it is: it is not a skip)."""
    if not in_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return
    if item is not None and skip_allowed(item):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"Skipped under CI=true, which counts as a failure ({reason}). Start the missing part, or mark the "
        f"test @pytest.mark.{ALLOW_SKIP_MARKER}(reason=...) if skipping in CI is truly intended."
    )
