"""Browser tests: Debian's chromium driven by Playwright against the real stack.

The stack (Rasa + action server + web app, seeded SQLite) starts once per test module. Chromium
must be installed (`make browser` does it with apt; Playwright cannot download its own browser
here): without it the tests fail, they never skip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.stack import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Shop, start_shop


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium for one test module: Playwright's sync API holds an event loop while it runs, which
    must be gone before the suite's asyncio tests (so never session-scoped)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    yield from start_shop(tmp_path_factory.mktemp("shop"))


class Visit:
    """One browser profile (its own cookies and localStorage) on the shop, watching for dialogs."""

    def __init__(self, browser: object, shop: Shop, name: str) -> None:
        self.shop = shop
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)
        self.requests: list[str] = []
        self.context.on("requestfinished", lambda r: self.requests.append(r.url))
        # requests that never finished (a CSP block, a refused connection) and the page's console errors
        self.failed: list[str] = []
        self.context.on("requestfailed", lambda r: self.failed.append(r.url))
        self.console_errors: list[str] = []
        self.page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        self.shots = 0

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def screenshot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.shots:02d}-{label}.png"))


@pytest.fixture
def visit(browser: object, shop: Shop, request: pytest.FixtureRequest) -> Iterator[Visit]:
    v = Visit(browser, shop, request.node.name)
    try:
        yield v
    finally:
        try:
            v.screenshot("end")
        finally:
            v.context.close()
