"""The dashboard in a real headless Chromium against a real bridge and simulator.

What a user does on day one: open the page, see devices and live values, watch a chart draw,
write a register, lose the bridge and get it back, lose the serial port and get it back. Each
step leaves a screenshot under ``test-output/dashboard/`` for review.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .dashboard_helpers import Stack, locked_bridge
from .dashboard_page import (
    NO_VALUE,
    OUT,
    SENT,
    TO,
    T,
    bridge_state,
    card,
    errors_dd,
    expect_changes,
    record_sent,
    sent_requests,
    shot,
    value,
)

pytestmark = pytest.mark.timeout(60)


def test_devices_show_live_values_and_charts(page: Page, browser: Browser, stack: Stack) -> None:
    expect(page.locator("article.device")).to_have_count(4)
    for addr in (1, 2):
        expect(card(page, addr).locator('[data-role="online"]')).to_have_text("online")
    expect(card(page, 1).locator(".dev-title")).to_contain_text("boiler-room")
    # identity: the bridge identified the devices itself and puts it in `state`
    expect(card(page, 1).locator('[data-role="model"]')).to_have_text("THERMO-1")
    expect(card(page, 1).locator('[data-role="firmware"]')).to_have_text("1.4.2")
    expect(card(page, 1).locator('[data-role="uid"]')).to_have_text("0x54480001")
    expect(card(page, 2).locator('[data-role="uid"]')).to_have_text("0x54480002")
    # error counters: all three of the bridge's, per device
    for addr in (1, 2):
        dd = errors_dd(page, addr)
        for attr in ("data-timeouts", "data-device-errors", "data-crc-errors"):
            expect(dd).to_have_attribute(attr, re.compile(r"^\d+$"))
    # the register map says what may be written: read-only registers have no Edit at all
    temp = card(page, 1).locator('.reg[data-reg="temperature"]')
    setpoint = card(page, 1).locator('.reg[data-reg="setpoint"]')
    for reg in ("temperature", "humidity", "uptime", "status"):
        tile = card(page, 1).locator(f'.reg[data-reg="{reg}"]')
        expect(tile).to_have_attribute("data-writable", "false")
        expect(tile.locator("button.edit")).to_have_count(0)
    expect(setpoint).to_have_attribute("data-writable", "true")
    expect(setpoint.locator("button.edit")).to_be_visible()
    expect(setpoint.locator('[data-role="range"]')).to_have_text(f"5{TO}35")
    expect(card(page, 1).locator('.reg[data-reg="heater"] [data-role="range"]')).to_have_text(
        f"0{TO}1"
    )
    expect(temp.locator('[data-role="range"]')).to_be_hidden()
    expect(temp.locator(".unit").first).to_have_text("°C")
    expect(temp.locator('[data-role="value"]')).to_have_text(re.compile(r"^-?\d+\.\d\d$"))
    expect_changes(page, value(page, 1, "uptime"))
    expect_changes(page, value(page, 2, "temperature"))

    chart = temp.locator(".chart")
    page.wait_for_function("el => Number(el.dataset.points) >= 6", arg=chart.element_handle())
    # the points are on the canvas: count pixels in the line's colour (the accent blue)
    drawn = chart.evaluate(
        """el => {
            const c = el.querySelector("canvas");
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < px.length; i += 4)
                if (px[i + 3] > 200 && px[i + 2] > 150 && px[i] < 120) n++;
            return n;
        }"""
    )
    assert drawn > 20, f"only {drawn} line pixels on the temperature chart"
    shot(page, "01-devices-live", full=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        p2 = phone.new_page()
        p2.goto(stack.url)
        expect(p2.locator("article.device")).to_have_count(4, timeout=T)
        page_width = p2.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390, f"the phone layout scrolls sideways ({page_width}px)"
        p2.wait_for_function(
            "() => document.querySelector('.chart')?.dataset.points > 2", timeout=T
        )
        shot(p2, "01-devices-phone")
    finally:
        phone.close()


def test_loading_the_page_sends_no_identify(page: Page, browser: Browser, stack: Stack) -> None:
    """Identity comes from the bridge's state: a viewer adds no traffic to the serial bus."""
    for addr in (1, 2):  # the bridge has identified both devices (it does so once, itself)
        expect(card(page, addr).locator('[data-role="model"]')).to_have_text("THERMO-1")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        pg = context.new_page()
        pg.set_default_timeout(T)
        sent = record_sent(pg)
        pg.goto(stack.url)
        expect(pg.locator("#conn")).to_have_attribute("data-state", "open")
        for addr in (1, 2):
            expect(card(pg, addr).locator('[data-role="model"]')).to_have_text("THERMO-1")
            expect(card(pg, addr).locator('[data-role="firmware"]')).to_have_text("1.4.2")
        # let a few polls of each device go by, then look at what went to the bridge and the bus
        pg.wait_for_function(
            """() => window.framebridge.log.buffer.filter(
                (e) => e.kind === "frame" && e.dir === "tx" && e.cmd === 3).length >= 12""",
            timeout=T,
        )
        kinds = sorted({m.get("type") for m in sent})
        assert sent_requests(pg) == [], f"loading the page sent requests: {sent_requests(pg)}"
        assert "state" in kinds, kinds
        identify_tx: int = pg.evaluate(
            """() => window.framebridge.log.buffer.filter(
                (e) => e.kind === "frame" && e.dir === "tx" && (e.cmd & 0x7f) === 1).length"""
        )
        assert identify_tx == 0, f"{identify_tx} identify frames on the bus after a page load"
        pg.locator('#log [name="log-cmd"]').select_option("1")
        expect(pg.locator("#log tbody tr")).to_have_count(0)
        shot(pg, "01-identity-from-state")
    finally:
        context.close()
        SENT.pop(id(pg), None)


def test_error_counters_follow_events_and_reconcile_with_state(page: Page) -> None:
    """Live events bump a device's counters; the next state fetch sets the bridge's counts."""
    expect(card(page, 1).locator('[data-role="online"]')).to_have_text("online")
    expect(errors_dd(page, 1)).to_have_attribute("data-crc-errors", re.compile(r"^\d+$"))
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const fb = window.framebridge;
            const frame = () => new Promise(
                (r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            await fb.fetchState();
            const at = fb.model.buses.get("bus0").stateAt;
            const d1 = fb.model.device("bus0", 1), d2 = fb.model.device("bus0", 2);
            const before = {crc: d1.errors.crc_errors, timeouts: d2.errors.timeouts,
                            bus: fb.model.buses.get("bus0").counters.crc || 0};
            const ev = (seq, event, extra) => ({type: "event", bus: "bus0", epoch: at.epoch, seq,
                                                ts: Date.now() / 1000, event, ...extra});
            fb.conn.onMessages([
                ev(at.seq, "crc_error", {count: 5, awaiting: 1}),  // already in the state: skipped
                ev(at.seq + 1e9, "crc_error", {count: 2, awaiting: 1}),
                ev(at.seq + 1e9 + 1, "crc_error", {count: 1}),  // nobody awaited: the bus's
            ]);
            await frame();
            const dd = (addr) => document.querySelector(
                `article.device[data-addr="${addr}"] [data-role="errors"]`);
            const busCounters = document.querySelector(
                'section.bus[data-bus="bus0"] [data-role="bus-counters"]');
            const live = {crc: Number(dd(1).dataset.crcErrors), text: dd(1).textContent,
                          bus: busCounters.textContent};
            fb.conn.onMessages([ev(at.seq + 1e9 + 2, "device_offline", {addr: 2})]);
            await frame();
            live.timeouts = Number(dd(2).dataset.timeouts);
            const state = await fb.fetchState();
            await frame();
            return {before, live,
                    bridge: state.buses.bus0.devices["1"].errors,
                    bridge2: state.buses.bus0.devices["2"].errors,
                    after: {crc: Number(dd(1).dataset.crcErrors),
                            timeouts: Number(dd(1).dataset.timeouts),
                            deviceErrors: Number(dd(1).dataset.deviceErrors),
                            timeouts2: Number(dd(2).dataset.timeouts)}};
        }"""
    )
    before, live = result["before"], result["live"]
    assert live["crc"] == before["crc"] + 2, result
    assert "CRC errors" in live["text"], result
    assert live["timeouts"] == before["timeouts"] + 1, result
    assert f"CRC errors {before['bus'] + 1}" in live["bus"], result
    # reconciled: exactly what the bridge counts
    bridge, after = result["bridge"], result["after"]
    assert after["crc"] == bridge["crc_errors"], result
    assert after["timeouts"] == bridge["timeouts"], result
    assert after["deviceErrors"] == bridge["device_errors"], result
    assert after["timeouts2"] == result["bridge2"]["timeouts"], result
    # the log files a CRC error under the device whose reply was awaited
    page.locator('#log [name="log-cmd"]').select_option("errors")
    page.locator('#log [name="log-addr"]').fill("1")
    crc_row = page.locator("#log tbody tr.crc").first
    expect(crc_row).to_contain_text("awaiting=1")
    expect(crc_row.locator("td:nth-child(4)")).to_have_text("1")
    expect(card(page, 2).locator('[data-role="online"]')).to_have_text("online")


def test_frame_log_filters_and_pauses(page: Page) -> None:
    log = page.locator("#log")
    rows = log.locator("tbody tr")
    expect(rows.first).to_be_visible()
    expect(log.locator("tbody")).to_contain_text("read_regs")
    expect(log.locator("tbody")).to_contain_text("temperature=")  # decoded by register name

    log.locator('[name="log-addr"]').fill("2")
    expect(rows.first).to_be_visible()
    page.wait_for_function(
        "() => document.querySelectorAll('#log tbody tr').length >= 4", timeout=T
    )
    addrs = log.locator("tbody tr td:nth-child(4)").all_text_contents()
    assert set(addrs) == {"2"}, f"filter addr=2 shows {sorted(set(addrs))}"
    log.locator('[name="log-cmd"]').select_option("3")
    cmds = log.locator("tbody tr td:nth-child(5)").all_text_contents()
    assert cmds and all("read_regs" in c for c in cmds), cmds
    shot(page, "02-frame-log-filtered", full=True)

    pause = log.locator('[data-action="pause"]')
    pause.press("Enter")  # keyboard works
    expect(pause).to_have_attribute("aria-pressed", "true")
    top = rows.first.text_content()
    status = log.locator('[data-role="log-status"]')
    expect(status).to_contain_text(re.compile(r"paused, [1-9]\d* new"))
    assert rows.first.text_content() == top, "the log moved while paused"
    shot(page, "02-frame-log-paused")
    pause.click()
    expect(pause).to_have_attribute("aria-pressed", "false")
    page.wait_for_function(
        "top => document.querySelector('#log tbody tr')?.textContent !== top", arg=top
    )
    assert len(rows.all()) <= 500


def test_frame_log_stays_bounded_and_fast_under_a_burst(page: Page) -> None:
    """5000 frames in one go (as from a busy bus): one DOM update, at most 500 rows."""
    result: dict[str, float] = page.evaluate(
        """async () => {
            const fb = window.framebridge;
            const t0 = performance.now();
            const msgs = [];
            for (let i = 0; i < 5000; i++)
                msgs.push({type: "frame", bus: "burst", seq: i + 1, epoch: 1, ts: Date.now() / 1000,
                           addr: 9, cmd: 3, dir: i % 2 ? "rx" : "tx", data: "000004",
                           fields: {start: 0, count: 4}});
            fb.conn.onMessages(msgs);
            await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            const rows = document.querySelectorAll("#log tbody tr");
            const burst = [...rows].filter((tr) => tr.cells[1].textContent === "burst").length;
            return {ms: performance.now() - t0, rows: rows.length, burst};
        }"""
    )
    assert result["rows"] == 500, result
    assert result["burst"] >= 450, result  # newest first: the burst fills the table
    assert result["ms"] < 1500, f"5000 frames took {result['ms']:.0f} ms to show"


def test_write_register_inline_and_from_the_command_panel(page: Page) -> None:
    setpoint = card(page, 1).locator('.reg[data-reg="setpoint"]')
    expect(setpoint.locator('[data-role="value"]')).not_to_have_text(NO_VALUE)
    expect(card(page, 1).locator('.reg[data-reg="temperature"] button.edit')).to_have_count(0)
    # keyboard only: focus Edit, Enter, type, Enter
    setpoint.locator("button.edit").focus()
    page.keyboard.press("Enter")
    field = setpoint.locator("input.reg-input")
    expect(field).to_be_focused()
    expect(setpoint.locator(".reg-note")).to_have_text(f"allowed 5{TO}35 °C")
    # out of range: the page says why and keeps the editor open; nothing is sent
    page.keyboard.type("99")
    page.keyboard.press("Enter")
    expect(setpoint.locator(".reg-note")).to_have_text("above maximum 35")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    shot(page, "03-inline-write-refused")
    field.fill("5.005")
    page.keyboard.press("Enter")
    expect(setpoint.locator(".reg-note")).to_contain_text("not a multiple of 0.01")
    assert sent_requests(page, "write_reg") == [], "an invalid value reached the bridge"
    field.fill("")
    page.keyboard.type("27.5")
    page.keyboard.press("Enter")
    # the value comes back from the device (write echo and the next poll), not from the form
    expect(setpoint.locator('[data-role="value"]')).to_have_text("27.50")
    expect(setpoint.locator(".reg-note")).to_contain_text("written")
    expect(setpoint.locator(".reg-note")).to_contain_text("ms")
    shot(page, "03-inline-write")

    assert len(sent_requests(page, "write_reg")) == 1

    form = page.locator("#cmd-form")
    form.locator('[name="cmd-device"]').select_option("bus0/2")
    form.locator('[name="cmd-name"]').select_option("write")
    # only the writable registers are offered, with their limits
    options = form.locator('[name="arg-reg"] option').all_text_contents()
    assert [o.split(" ")[0] for o in options] == ["setpoint", "heater"], options
    assert f"5{TO}35" in options[0], options
    form.locator('[name="arg-reg"]').select_option("setpoint")
    expect(form.locator('[data-role="write-hint"]')).to_contain_text(f"allowed 5{TO}35")
    form.locator('[name="arg-value"]').fill("18.25")
    form.locator('button[type="submit"]').click()
    result = page.locator("#cmd-results li").first
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_contain_text("round trip")
    expect(value(page, 2, "setpoint")).to_have_text("18.25")

    form.locator('[name="cmd-name"]').select_option("identify")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#cmd-results li").first).to_contain_text("model=THERMO-1")

    # out of range: refused by the page (the register map's limits), never sent
    writes = len(sent_requests(page, "write_reg"))
    results = page.locator("#cmd-results li").count()
    form.locator('[name="cmd-name"]').select_option("write")
    form.locator('[name="arg-reg"]').select_option("setpoint")
    form.locator('[name="arg-value"]').fill("99")
    expect(form.locator('[name="arg-value"]')).to_have_attribute("aria-invalid", "true")
    form.locator('button[type="submit"]').click()
    expect(form.locator('[data-role="cmd-error"]')).to_have_text("setpoint: above maximum 35")
    expect(page.locator("#cmd-results li")).to_have_count(results)
    assert len(sent_requests(page, "write_reg")) == writes
    expect(value(page, 2, "setpoint")).to_have_text("18.25")
    shot(page, "03-command-panel")


def test_reconnects_and_resumes_after_the_bridge_restarts(page: Page, stack: Stack) -> None:
    expect(value(page, 1, "uptime")).not_to_have_text(NO_VALUE)
    # a dropped socket with the bridge still there: the resume recovers what was missed
    page.evaluate("window.framebridge.conn.ws.close()")
    expect(page.locator("#resume")).to_have_attribute("data-state", "recovered")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.locator("#resume")).to_contain_text("recovered")
    shot(page, "04-resumed")

    stack.bridge.stop(signal.SIGKILL)
    expect(page.locator("#conn")).to_have_attribute("data-state", re.compile("waiting|connecting"))
    expect(page.locator("#conn-text")).to_contain_text("retry in")
    expect(page.locator("#retry")).to_be_visible()
    shot(page, "04-bridge-down")

    stack.bridge.start()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=15_000)
    # a new bridge is a new epoch: nothing to replay, so the page says so and reloads state
    expect(page.locator("#resume")).to_have_attribute("data-state", "reloaded")
    expect(page.locator("#resume")).to_contain_text("state reloaded")
    expect_changes(page, value(page, 1, "uptime"))
    expect(card(page, 1).locator('[data-role="online"]')).to_have_text("online")
    shot(page, "04-bridge-back")


def test_bus_goes_down_when_its_port_disappears_and_comes_back(page: Page, stack: Stack) -> None:
    bus = page.locator('section.bus[data-bus="bus0"]')
    expect(bus).to_have_attribute("data-state", "up")
    expect(card(page, 1).locator('[data-role="online"]')).to_have_text("online")

    stack.sim.stop()  # the pty and its symlink vanish
    expect(bus).to_have_attribute("data-state", "down")
    expect(bus.locator('[data-role="bus-state"]')).to_have_text("bus down")
    expect(bus.locator('[data-role="bus-error"]')).to_be_visible()
    expect(card(page, 1).locator('[data-role="online"]')).to_have_text("offline")
    expect(page.locator("#log tbody")).to_contain_text("bus down")
    shot(page, "05-bus-down", full=True)

    # a page that connects while the bus is down learns it (and why) from state alone
    late = page.context.new_page()
    try:
        late.set_default_timeout(T)
        late.goto(stack.url)
        late_bus = late.locator('section.bus[data-bus="bus0"]')
        expect(late_bus).to_have_attribute("data-state", "down")
        expect(card(late, 1).locator('[data-role="online"]')).to_have_text("offline")
        expect(late_bus.locator('[data-role="bus-error"]')).to_be_visible()
        reason = bridge_state(late)["buses"]["bus0"]["reason"]
        assert reason  # the bridge says why the bus is down
        expect(late_bus.locator('[data-role="bus-error"]')).to_contain_text(reason)
        shot(late, "05-bus-down-late-viewer")
    finally:
        late.close()

    stack.sim.start()
    expect(bus).to_have_attribute("data-state", "up", timeout=15_000)
    expect(card(page, 1).locator('[data-role="online"]')).to_have_text("online")
    expect(bus.locator('[data-role="bus-error"]')).to_be_hidden()
    expect_changes(page, value(page, 2, "uptime"))
    shot(page, "05-bus-back", full=True)


def test_unauthorized_asks_for_a_token_and_a_down_bus_shows_from_the_start(
    browser: Browser, tmp_path: Path
) -> None:
    proc, url = locked_bridge(tmp_path, OUT / "processes.log", token="s3cret")
    proc.start()
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        pg = context.new_page()
        pg.set_default_timeout(T)
        pg.goto(url)
        conn = pg.locator("#conn")
        expect(conn).to_have_attribute("data-state", "refused")  # 4003: no retry loop
        expect(conn).to_contain_text("unauthorized")
        expect(pg.locator("#token-input")).to_be_focused()
        shot(pg, "06-unauthorized")
        pg.keyboard.type("s3cret")
        pg.keyboard.press("Enter")
        expect(conn).to_have_attribute("data-state", "open")
        bus = pg.locator('section.bus[data-bus="nowhere"]')
        expect(bus).to_have_attribute("data-state", "down")
        error = bus.locator('[data-role="bus-error"]')
        expect(error).to_be_visible()
        # down before the page came: only `state` can say why (its bus entry's `reason`)
        state = bridge_state(pg)["buses"]["nowhere"]
        expect(error).to_contain_text(state["reason"])
        expect(error).to_contain_text("no-such-tty")
        expect(card(pg, 7, "nowhere").locator('[data-role="online"]')).not_to_have_text("online")
        shot(pg, "06-token-accepted-bus-down")
        # the token is remembered: a reload connects straight away
        pg.reload()
        expect(conn).to_have_attribute("data-state", "open")
    finally:
        context.close()
        proc.stop()


def test_wire_helpers_in_the_browser(page: Page) -> None:
    """The pure module the page is built on: backoff bounds, batching, resume bookkeeping."""
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const w = await import("./static/js/wire.js");
            const t = new w.ResumeTracker();
            return {
                maxDelays: [0, 1, 5, 20].map((a) => w.backoffDelay(a, {random: () => 0.999999})),
                minDelay: w.backoffDelay(7, {random: () => 0}),
                batch: w.unbatch('[{"type":"a"},{"type":"b"}]').length,
                single: w.unbatch('{"type":"a"}').length,
                verdicts: [t.accept("b", 1, 5), t.accept("b", 1, 6), t.accept("b", 1, 6),
                           t.accept("b", 1, 9), t.accept("b", 2, 1)],
                since: t.since(),
                refused: w.describeClose(4003).reconnect,
                hex: w.cleanHex("0x01 02:0A"),
            };
        }"""
    )
    assert result["maxDelays"] == [499, 999, 9999, 9999]
    assert result["minDelay"] == 0
    assert (result["batch"], result["single"]) == (2, 1)
    assert result["verdicts"] == ["new", "new", "duplicate", "gap", "epoch"]
    assert result["since"] == {"b": {"epoch": 2, "seq": 1}}
    assert result["refused"] is False
    assert result["hex"] == "01020a"
