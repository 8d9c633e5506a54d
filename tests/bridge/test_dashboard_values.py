"""The dashboard, part two (issue 16): charts that start full, with a time axis, hover, zoom and
units; values by meaning (switches, labels, bit LEDs, scaled and two-word writes); write
controls only where welcome.access allows; CSV exports; the log's pairs and poll filter; the
phone layout. Same stack and browser as ``test_dashboard.py``; screenshots in
``test-output/dashboard/`` (names starting 1x).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from frames.devicemap import load_device_map

from .dashboard_helpers import Stack, locked_bridge
from .dashboard_page import OUT, T, card, record_sent, sent_requests, shot

pytestmark = pytest.mark.timeout(60)

CLOCK = r"\d\d:\d\d:\d\d"


def tile(page: Page, addr: int, reg: str, bus: str = "bus0") -> Any:
    return card(page, addr, bus).locator(f'.reg[data-reg="{reg}"]')


def series_over_http(stack: Stack, bus: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{stack.url}api/series?bus={bus}", timeout=5) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


def plot_info(page: Page, addr: int, reg: str, bus: str = "bus0") -> dict[str, Any]:
    """The chart's scales, its axes' tick labels and its series' first time, from the page."""
    info: dict[str, Any] = page.evaluate(
        """([bus, addr, reg]) => {
            const fb = window.framebridge;
            const t = fb.devicesView.devEls.get(`${bus}/${addr}`).regs.get(reg);
            const u = t.chart.plot;
            const xs = fb.model.device(bus, addr).series.get(reg).toArrays()[0];
            return {x: [u.scales.x.min, u.scales.x.max], y: [u.scales.y.min, u.scales.y.max],
                    xLabels: u.axes[0]._values || [], yLabels: u.axes[1]._values || [],
                    first: xs[0], points: xs.length};
        }""",
        [bus, addr, reg],
    )
    return info


def test_charts_start_full_with_time_axis_hover_zoom_and_units(
    page: Page, browser: Browser, stack: Stack
) -> None:
    # the bridge has kept some seconds of every register (/api/series, the same token rules)
    deadline = time.monotonic() + T / 1000
    while True:
        temps = series_over_http(stack, "bus0")["devices"]["1"]["temperature"]["t"]
        if len(temps) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling the bridge's HTTP answer, bounded by the deadline
    assert len(temps) >= 5, temps
    # a second viewer: its charts hold points from before it loaded, at once
    viewer = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        pg = viewer.new_page()
        pg.set_default_timeout(T)
        loaded = time.time()
        pg.goto(stack.url)
        chart = tile(pg, 1, "temperature").locator(".chart")
        pg.wait_for_function("el => Number(el.dataset.points) >= 5", arg=chart.element_handle())
        info = plot_info(pg, 1, "temperature")
        assert info["first"] < loaded - 3, (info, loaded)  # from the bridge, not live
        # the time axis: wall-clock labels
        assert info["xLabels"] and all(re.fullmatch(CLOCK, v) for v in info["xLabels"] if v), info
        # hover: the point's time and value with its unit
        box = chart.bounding_box()
        assert box is not None
        pg.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        readout = tile(pg, 1, "temperature").locator('[data-role="readout"]')
        expect(readout).to_have_attribute("data-hover", "true")
        expect(readout).to_have_text(re.compile(rf"^{CLOCK} · -?\d+\.\d\d °C$"))
        shot(pg, "10-chart-hover")
        # drag to zoom into a time span (across the middle of the plot area, not the axes);
        # double-click for the live window again
        live_span = info["x"][1] - info["x"][0]
        over = chart.locator(".u-over").bounding_box()
        assert over is not None
        y = over["y"] + over["height"] * 0.5
        pg.mouse.move(over["x"] + over["width"] * 0.35, y)
        pg.mouse.down()
        pg.mouse.move(over["x"] + over["width"] * 0.65, y, steps=5)
        pg.mouse.up()
        expect(chart).to_have_attribute("data-zoomed", "true")
        zoomed = plot_info(pg, 1, "temperature")["x"]
        assert zoomed[1] - zoomed[0] < live_span * 0.5, (zoomed, live_span)
        shot(pg, "10-chart-zoomed")
        chart.dblclick()
        expect(chart).to_have_attribute("data-zoomed", "false")
        # a relay (u16 limited to 0..1) and a bool: 0..1, never -1; ticks 0/1 and off/on
        heater = plot_info(pg, 1, "heater")
        assert heater["y"] == [0, 1], heater
        assert set(heater["yLabels"]) <= {"0", "1", ""}, heater
        relay = plot_info(pg, 3, "alarm_relay", "bus1")
        assert relay["y"] == [0, 1] and "on" in relay["yLabels"], relay
    finally:
        viewer.close()
    # flat series: a sensible axis, from the chart module itself
    ranges = page.evaluate(
        """async () => {
            const c = await import("./static/js/charts.js");
            return {flat: c.yRange(22, 22, {type: "i16", decimals: 2}),
                    volts: c.yRange(230, 230, {type: "u16", decimals: 1}),
                    zero: c.yRange(0, 0, {type: "u16", decimals: 0}),
                    relay: c.yRange(0, 0, {type: "u16", decimals: 0, min: 0, max: 1}),
                    bool: c.yRange(1, 1, {type: "bool", decimals: 0}),
                    moving: c.yRange(20, 24, {type: "i16", decimals: 2})};
        }"""
    )
    assert ranges["flat"] == [21, 23], ranges  # not 21.99/22.00/22.01
    assert ranges["volts"] == [220, 240], ranges
    assert ranges["zero"][0] == 0 and ranges["zero"][1] > 0, ranges
    assert ranges["relay"] == [0, 1] and ranges["bool"] == [0, 1], ranges
    assert ranges["moving"][0] < 20 and ranges["moving"][1] > 24, ranges


def test_values_by_meaning_switch_labels_bits_and_two_word_writes(page: Page) -> None:
    io_card = card(page, 3, "bus1")
    expect(io_card.locator('[data-role="online"]')).to_have_text("online")
    # bitfield: named bit LEDs (inputs = 5: in0 and in2)
    leds = tile(page, 3, "inputs", "bus1").locator(".led")
    expect(leds).to_have_count(8)
    on = tile(page, 3, "inputs", "bus1").locator('.led[data-on="true"]')
    expect(on).to_have_text(["in0", "in2"])
    # enum: its label, written by picking one
    mode = tile(page, 3, "mode", "bus1")
    expect(mode.locator('[data-role="value"]')).to_have_text("auto")
    mode.locator("select").select_option(label="manual")
    expect(mode.locator('[data-role="value"]')).to_have_text("manual")
    # bool: on/off and a switch
    relay = tile(page, 3, "alarm_relay", "bus1")
    switch = relay.locator('button[role="switch"]')
    expect(relay.locator('[data-role="value"]')).to_have_text("off")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(relay.locator('[data-role="value"]')).to_have_text("on")
    shot(page, "11-values-by-meaning")
    writes = sent_requests(page, "write_reg")
    assert [(w["addr"], w["args"]) for w in writes] == [
        (3, {"reg": 7, "value": 1}),
        (3, {"reg": 8, "value": 1}),
    ], writes
    switch.click()  # and back off
    expect(relay.locator('[data-role="value"]')).to_have_text("off")
    mode.locator("select").select_option(label="auto")
    expect(mode.locator('[data-role="value"]')).to_have_text("auto")
    # two words: a u32 goes out as write_regs (write_reg to half of it is error 2)
    energy = tile(page, 4, "energy_total", "bus1")
    expect(energy.locator('[data-role="value"]')).to_have_text(re.compile(r"^\d+$"))
    energy.locator("button.edit").click()
    energy.locator("input.reg-input").fill("70000")
    energy.locator("input.reg-input").press("Enter")
    expect(energy.locator(".reg-note")).to_contain_text("written 70000 Wh")
    (w,) = sent_requests(page, "write_regs")
    assert w["args"] == {"start": 7, "values": [1, 4464]}, w  # 70000 = 0x0001_1170
    expect(energy.locator('[data-role="value"]')).to_have_text(re.compile(r"^700\d\d$"))
    pf = tile(page, 4, "power_factor", "bus1").locator('[data-role="value"]')
    expect(pf).to_have_text(re.compile(r"^0\.9\d+$"))
    assert not [w for w in sent_requests(page, "write_reg") if w["addr"] == 4], "write_reg to u32"


def test_register_codecs_match_the_python_device_map(page: Page) -> None:
    """registers.js decodes and encodes like frames/register.py, type by type."""
    meter = load_device_map("power_meter")
    thermo = load_device_map("thermo")
    cases = [
        (thermo.find("temperature"), [0xFF38]),  # i16 -2.00 °C
        (thermo.find("humidity"), [455]),
        (meter.find("energy_total"), [0x0001, 0x1170]),
        (meter.find("power_factor"), [0x3F73, 0x3333]),
        (load_device_map("io_board").find("alarm_relay"), [1]),
    ]
    regs = []
    for reg, words in cases:
        assert reg is not None
        d = reg.describe()
        regs.append({**d, "words": words, "py": reg.decode(words)})
    got = page.evaluate(
        """async (cases) => {
            const r = await import("./static/js/registers.js");
            return cases.map((c) => {
                const reg = {...c, decimals: r.digitsOf(c.scale), typeKnown: true,
                             wordOrder: c.word_order, writable: true, writableKnown: true};
                const value = r.decodeWords(reg, c.words);
                const n = typeof value === "boolean" ? +value : value;
                return {value, back: r.encodeNumber(reg, n).words};
            });
        }""",
        regs,
    )
    for case, out in zip(regs, got, strict=True):
        assert out["value"] == pytest.approx(case["py"]), (case, out)
        assert out["back"] == case["words"], (case, out)


def test_write_controls_follow_the_access_patterns(page: Page) -> None:
    """welcome.access.write: `*`, `bus/*`, `bus/addr`, and tenant patterns limited to commands
    (`bus/addr:write_reg`): controls only where the page's write commands are allowed."""
    got = page.evaluate(
        """async () => {
            const r = await import("./static/js/registers.js");
            const ask = (write, bus, addr) => r.mayWrite({read: ["*"], write}, bus, addr);
            return [
                ask(["*"], "bus0", 1), ask([], "bus0", 1), ask(["bus0/*"], "bus1", 1),
                ask(["bus0/2"], "bus0", 2), ask(["bus0/2"], "bus0", 3),
                ask(["bus0/2:write_reg"], "bus0", 2), ask(["bus0/2:identify"], "bus0", 2),
                ask(["bus0/2:echo,16"], "bus0", 2), r.mayWrite(undefined, "bus0", 1),
            ];
        }"""
    )
    assert got == [True, False, False, True, False, True, False, True, True]


def test_scaled_writes_and_the_editor_keeps_the_whole_value(page: Page) -> None:
    setpoint = tile(page, 1, "setpoint")
    setpoint.locator("button.edit").click()
    field = setpoint.locator("input.reg-input")
    field.fill("24.257")
    # the whole text is visible (it was cut to "57"), and refused: 0.01 is the step
    fits = field.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    assert fits, "the inline editor cuts the value"
    expect(field).to_have_value("24.257")
    field.press("Enter")
    expect(setpoint.locator(".reg-note")).to_contain_text("not a multiple of 0.01")
    shot(page, "12-editor-whole-value")
    field.press("Escape")
    # the command panel: typed in °C, sent raw, answered in °C
    form = page.locator("#cmd-form")
    form.locator('[name="cmd-device"]').select_option("bus0/1")
    form.locator('[name="cmd-name"]').select_option("write")
    form.locator('[name="arg-reg"]').select_option("setpoint")
    form.locator('[name="arg-value"]').fill("23.5")
    form.locator('button[type="submit"]').click()
    result = page.locator("#cmd-results li").first
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_contain_text("setpoint=23.50 °C")
    expect(result).not_to_contain_text("2350")
    assert sent_requests(page, "write_reg")[-1]["args"] == {"reg": 2, "value": 2350}
    shot(page, "12-write-reply-scaled")


def test_write_controls_follow_access_and_the_token_stays_out_of_the_url(
    browser: Browser, tmp_path: Path
) -> None:
    proc, url = locked_bridge(tmp_path, OUT / "processes.log", token="s3cret")
    proc.start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        pg = context.new_page()
        pg.set_default_timeout(T)
        sent = record_sent(pg)
        pg.goto(url)
        expect(pg.locator("#conn")).to_have_attribute("data-state", "refused")
        pg.locator("#token-input").fill("viewer")  # a read-only token
        pg.locator("#token-input").press("Enter")
        expect(pg.locator("#conn")).to_have_attribute("data-state", "open")
        hellos = [m for m in sent if m.get("type") == "hello"]
        assert hellos[-1]["token"] == "viewer", hellos
        assert "viewer" not in pg.url
        assert pg.evaluate("sessionStorage.getItem('framebridge.token')") == "viewer"
        expect(pg.locator("#access")).to_have_text("read-only")
        expect(pg.locator("#node")).to_have_text("node locked")
        port = pg.locator('section.bus[data-bus="nowhere"] [data-role="bus-port"]')
        expect(port).to_contain_text("no-such-tty")
        setpoint = card(pg, 7, "nowhere").locator('.reg[data-reg="setpoint"]')
        expect(setpoint).to_have_attribute("data-access", "read")
        expect(pg.locator(".reg button.edit, .reg .switch, .reg select")).to_have_count(0)
        expect(pg.locator("#cmd-form")).to_be_hidden()
        expect(pg.locator('[data-role="cmd-none"]')).to_be_visible()
        shot(pg, "13-read-only-token")
        # the full token, from the Token button: write controls appear
        pg.locator("#token-toggle").click()
        pg.locator("#token-input").fill("s3cret")
        pg.locator("#token-input").press("Enter")
        expect(pg.locator("#access")).to_have_text("read/write")
        expect(setpoint.locator("button.edit")).to_be_visible()
        expect(pg.locator("#cmd-form")).to_be_visible()
        assert [m["token"] for m in sent if m.get("type") == "hello"][-1] == "s3cret"
        # a ?token= link: taken into sessionStorage and out of the address bar at once
        pg2 = context.new_page()
        pg2.set_default_timeout(T)
        pg2.goto(url + "?token=s3cret")
        expect(pg2.locator("#conn")).to_have_attribute("data-state", "open")
        assert "token" not in pg2.url, pg2.url
        shot(pg, "13-full-token")
    finally:
        context.close()
        proc.stop()


def test_csv_exports_of_visible_series_and_the_log(page: Page) -> None:
    chart = tile(page, 1, "temperature").locator(".chart")
    page.wait_for_function("el => Number(el.dataset.points) >= 3", arg=chart.element_handle())
    with page.expect_download() as dl:
        page.locator("#export-series").click()
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    temps = [r for r in rows if r["register"] == "temperature" and r["addr"] == "1"]
    assert temps and all(r["unit"] == "°C" and r["bus"] == "bus0" for r in temps), rows[:3]
    x = plot_info(page, 1, "temperature")["x"]
    assert all(x[0] - 0.01 <= float(r["unix_s"]) <= x[1] + 0.01 for r in temps)
    assert {r["register"] for r in rows} >= {"mode", "energy_total", "alarm_relay"}
    page.locator('#log [name="log-addr"]').fill("2")
    with page.expect_download() as dl:
        page.locator("#export-log").click()
    log_rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert log_rows and {r["addr"] for r in log_rows} == {"2"}, log_rows[:3]
    assert any(r["dir"] == "rx" and r["reply_ms"] and r["pair"] for r in log_rows)


def test_log_pairs_replies_with_requests_and_hides_polls(page: Page) -> None:
    log = page.locator("#log")
    page.wait_for_function(
        "() => document.querySelectorAll('#log tbody tr.rx[data-pair]').length >= 4", timeout=T
    )
    pairs: dict[str, list[str]] = page.evaluate(
        """() => {
            const out = {};
            for (const tr of document.querySelectorAll("#log tbody tr[data-pair]"))
                (out[tr.dataset.pair] ||= []).push(tr.classList.contains("tx") ? "tx" : "rx");
            return out;
        }"""
    )
    complete = [p for p in pairs.values() if sorted(p) == ["rx", "tx"]]
    assert len(complete) >= 3, pairs
    expect(log.locator("tbody tr.rx [data-role=rtt]").first).to_have_text(re.compile(r"\d ms$"))
    log.locator('[name="log-hide-polls"]').check()
    expect(log.locator("tbody tr.poll")).to_have_count(0)
    # what the page asks for itself is no poll: an identify and a read stay visible, paired
    form = page.locator("#cmd-form")
    form.locator('[name="cmd-device"]').select_option("bus0/2")
    form.locator('[name="cmd-name"]').select_option("read")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#cmd-results li").first).to_have_class(re.compile(r"\bok\b"))
    # (a poll that timed out on a loaded machine leaves an event and a late reply: both stay)
    own_tx = log.locator("tbody tr.tx:not(.poll)").filter(has_text="read_regs")
    expect(own_tx).to_have_count(1)
    pair = own_tx.get_attribute("data-pair")
    expect(log.locator(f'tbody tr.rx[data-pair="{pair}"]')).to_have_count(1)
    expect(log.locator("tbody tr.poll")).to_have_count(0)
    shot(page, "14-log-pairs-hide-polls")


def test_phone_layout_keeps_command_names_and_compact_rows(browser: Browser, stack: Stack) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        pg = phone.new_page()
        pg.set_default_timeout(T)
        pg.goto(stack.url)
        expect(pg.locator("#conn")).to_have_attribute("data-state", "open")
        pg.wait_for_function(
            "() => document.querySelectorAll('#log tbody tr').length >= 20", timeout=T
        )
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the phone layout scrolls sideways ({width}px)"
        rows = pg.evaluate(
            """() => [...document.querySelectorAll("#log tbody tr:not(.evt)")].slice(0, 20)
                .map((tr) => ({h: tr.getBoundingClientRect().height,
                               cut: tr.cells[4].scrollWidth > tr.cells[4].clientWidth + 1,
                               cmd: tr.cells[4].innerText}))"""
        )
        assert all(r["h"] <= 24 for r in rows), rows
        assert not any(r["cut"] for r in rows), rows
        assert all(r["cmd"] in ("read_regs", "identify") for r in rows), rows
        pg.locator("#log").scroll_into_view_if_needed()
        shot(pg, "15-phone-log")
    finally:
        phone.close()
