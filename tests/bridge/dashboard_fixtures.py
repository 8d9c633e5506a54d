"""The dashboard tests' fixtures, for ``test_dashboard.py`` and ``test_dashboard_values.py``
(through ``conftest.py``): a simulator + bridge stack and a Chromium per module, and a fresh page
per test that must log no error.

Module scope, not session: Playwright's sync API keeps an event loop running while it is open,
and the asyncio tests that run after the dashboard modules need none to be running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .dashboard_helpers import CHROMIUM, CHROMIUM_ARGS, Stack
from .dashboard_page import OUT, SENT, T, record_sent

__all__ = ["browser", "page", "stack"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    OUT.mkdir(parents=True, exist_ok=True)
    s = Stack(tmp_path_factory.mktemp("dashboard"), OUT / "processes.log")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # No skip: the browser tests must run (scripts/setup-system.sh installs Debian's chromium).
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/setup-system.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    # a test that stopped a process leaves it restarted; make sure, whatever happened before
    for proc in (stack.sim, stack.bridge):
        if proc.popen is None or proc.popen.poll() is not None:
            proc.start()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.set_default_timeout(T)
    record_sent(pg)
    pg.goto(stack.url)
    expect(pg.locator("#conn")).to_have_attribute("data-state", "open")
    yield pg
    context.close()
    SENT.pop(id(pg), None)
    # a reconnect test sees the browser log failed socket attempts; nothing else may fail
    real = [e for e in errors if "WebSocket connection" not in e]
    assert not real, f"errors in the page: {real}"
