"""Page-level helpers for the dashboard tests (``test_dashboard.py``): where the screenshots go,
the bound on every wait, locators for a device card, and what the page sent on its WebSocket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page

OUT = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"
T = 10_000  # ms: the bound on every wait for something the bridge must do
NO_VALUE = "\u2013"  # what a register shows before its first value (an en dash)
TO = "\u2013"  # a register's allowed range: 5\u201335 (an en dash too)
SENT: dict[int, list[dict[str, Any]]] = {}  # id(page) → what the page sent on its WebSocket


def record_sent(pg: Page) -> list[dict[str, Any]]:
    """Every message ``pg`` sends to the bridge from now on (call before ``goto``)."""
    sent = SENT.setdefault(id(pg), [])

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    pg.on("websocket", on_socket)
    return sent


def sent_requests(pg: Page, cmd: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in SENT.get(id(pg), [])
        if m.get("type") == "request" and (cmd is None or m.get("cmd") == cmd)
    ]


def shot(page: Page, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)


def card(page: Page, addr: int, bus: str = "bus0") -> Locator:
    return page.locator(f'article.device[data-bus="{bus}"][data-addr="{addr}"]')


def value(page: Page, addr: int, reg: str) -> Locator:
    return card(page, addr).locator(f'.reg[data-reg="{reg}"] [data-role="value"]')


def errors_dd(page: Page, addr: int) -> Locator:
    return card(page, addr).locator('[data-role="errors"]')


def bridge_state(page: Page) -> dict[str, Any]:
    """The bridge's ``state``, asked over the page's own connection."""
    state: dict[str, Any] = page.evaluate(
        "() => window.framebridge.conn.request({type: 'state'}, 8000)"
    )
    assert state.get("type") == "state", state
    return state


def expect_changes(page: Page, loc: Locator) -> None:
    """The text of ``loc`` changes within T (a live value, not a stale one)."""
    before = loc.text_content()
    page.wait_for_function(
        "([el, before]) => el.textContent !== before", arg=[loc.element_handle(), before]
    )
