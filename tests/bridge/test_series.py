"""The per-register series store (bridge/series.py) and its endpoint, /api/series."""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from typing import Any

import pytest
from websockets.datastructures import Headers

from bridge.devices import DeviceBook
from bridge.series import POINT_BYTES, Ring, SeriesStore
from bridge.traffic import TrafficCore
from bridge.web import HttpRoutes
from frames import STANDARD, Frame
from frames.devicemap import load_device_map
from frames.events import FrameReceived, FrameSent, LinkStateChanged


def test_ring_thins_to_one_point_per_bucket_and_wraps() -> None:
    r = Ring(4, 1.0)
    for k in range(8):  # four polls a second for two seconds: two buckets
        r.add(100 + k * 0.25, float(k))
    assert r.points() == ([100.75, 101.75], [3.0, 7.0])  # the newest value of each bucket
    for k in range(2, 8):
        r.add(100.0 + k, 10.0 * k)
    ts, vs = r.points()
    assert len(r) == 4 and ts == [104.0, 105.0, 106.0, 107.0], ts  # oldest gone, in order
    assert vs == [40.0, 50.0, 60.0, 70.0]
    r.add(50.0, 1.0)  # older than the newest: ignored
    assert r.points(since=105.0) == ([106.0, 107.0], [60.0, 70.0])


def test_store_values_bools_gaps_and_limits() -> None:
    s = SeriesStore(points=10, resolution_s=0.0, max_series=3)
    s.add("b", 1, {"temp": 21.5, "relay": True, "label": "x"}, 1.0)
    s.add("b", 1, {"temp": None, "relay": False}, 2.0)  # None: no reading, a gap
    s.add("b", 2, {"temp": 20.0, "other": 1}, 3.0)  # the fourth series is refused
    got = s.query("b")
    assert got["1"]["temp"] == {"t": [1.0, 2.0], "v": [21.5, None]}
    assert got["1"]["relay"]["v"] == [1.0, 0.0]
    assert "label" not in got["1"]  # not a number: not a chart
    assert len(s) == 3 and s.refused == 1
    assert s.query("b", 2) == {"2": {"temp": {"t": [3.0], "v": [20.0]}}}
    assert s.query("other") == {}
    s.gap("b", 2, 4.0)
    s.gap("b", 2, 5.0)  # one gap is enough
    assert s.query("b", 2)["2"]["temp"]["v"] == [20.0, None]
    s.forget("b")
    assert len(s) == 0
    with pytest.raises(ValueError):
        SeriesStore(points=1)


def test_memory_stays_under_the_stated_bound() -> None:
    """Every series full and then some: the measured growth is within max_bytes() plus the
    per-series bookkeeping the module docstring states (~1 KB)."""
    n_series, points = 200, 600
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        s = SeriesStore(points=points, resolution_s=1.0, max_series=n_series)
        for t in range(points + 100):  # past the capacity: the rings wrap, never grow
            for d in range(n_series // 10):
                s.add("bus", d, {f"r{i}": t * 0.5 + i for i in range(10)}, float(t))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(s) == n_series
    assert s.max_bytes() == n_series * points * POINT_BYTES
    assert used <= s.max_bytes() + n_series * 1024, (used, s.max_bytes())
    assert all(len(pts["t"]) == points for dev in s.query("bus").values() for pts in dev.values())


def test_traffic_core_feeds_the_store_from_polls_and_write_echoes() -> None:
    rmap = load_device_map("thermo")
    maps = {1: {w: r for r in rmap.registers for w in range(r.address, r.address + r.count)}}
    book = DeviceBook([(1, "t", "thermo")], maps)
    store = SeriesStore(resolution_s=0.0)
    core = TrafficCore("bus0", STANDARD, book, series=store)
    read = STANDARD.resolve_code("read_regs")
    core.traffic(FrameSent(10.0, Frame(1, read, (0).to_bytes(2, "little") + bytes([2]))), 10.0)
    reply = Frame(1, read, bytes([2]) + (2150).to_bytes(2, "little") + (450).to_bytes(2, "little"))
    core.traffic(FrameReceived(10.1, reply, "reply"), 10.1)
    write = STANDARD.resolve_code("write_reg")
    echo = Frame(1, write, (3).to_bytes(2, "little") + (1).to_bytes(2, "little"))
    core.traffic(FrameReceived(11.0, echo, "reply"), 11.0)
    got = store.query("bus0", 1)["1"]
    assert got["temperature"] == {"t": [10.1], "v": [21.5]}
    assert got["humidity"]["v"] == [45.0]
    assert got["heater"] == {"t": [11.0], "v": [1.0]}
    core.poll_missed(1, 12.0)  # offline (offline_after=1): the lines break
    assert store.query("bus0", 1)["1"]["temperature"]["v"] == [21.5, None]
    core.traffic(FrameReceived(13.0, reply, "reply"), 13.0)
    core.traffic(LinkStateChanged(13.5, True), 13.5)
    core.traffic(LinkStateChanged(14.0, False, "gone"), 14.0)  # the bus went down: a gap too
    assert store.query("bus0", 1)["1"]["temperature"]["v"] == [21.5, None, 21.5, None]


def _routes(store: SeriesStore, allowed: str | None) -> HttpRoutes:
    def series(token: str | None, bus: str, addr: int | None) -> dict[str, Any] | None:
        if allowed is not None and token != allowed:
            return None
        return {"bus": bus, "devices": store.query(bus, addr)}

    return HttpRoutes(lambda: (True, {}), lambda: b"", lambda t: {}, series=series)


def test_http_endpoint_answers_checks_and_refuses() -> None:
    store = SeriesStore()
    store.add("bus0", 1, {"temperature": 21.5}, 5.0)
    routes = _routes(store, "s3cret")
    ok = routes.route("/api/series?bus=bus0&addr=1", Headers({"Authorization": "Bearer s3cret"}))
    assert ok is not None and ok.status_code == 200
    assert json.loads(ok.body)["devices"]["1"]["temperature"] == {"t": [5.0], "v": [21.5]}
    denied = routes.route("/api/series?bus=bus0")
    assert denied is not None and denied.status_code == 401
    for bad in ("/api/series", "/api/series?bus=bus0&addr=x", "/api/series?bus=b&addr=99999"):
        r = routes.route(bad + "&token=s3cret" if "?" in bad else bad + "?token=s3cret")
        assert r is not None and r.status_code == 400, bad
    post = routes.route("/api/series?bus=bus0", method="POST")
    assert post is not None and post.status_code == 405


def test_response_size_and_time_for_a_full_store() -> None:
    """The figure docs/dashboard.md quotes: 4 devices x 10 registers x 10 minutes at 1 s."""
    store = SeriesStore()
    for t in range(600):
        for d in range(4):
            values = {f"r{i}": round(20 + math.sin(t / 30 + i), 2) for i in range(10)}
            store.add("bus0", d, values, 1_790_000_000.25 + t)  # decoded values: 2 decimals
    routes = _routes(store, None)
    t0 = time.perf_counter()
    r = routes.route("/api/series?bus=bus0")
    took = time.perf_counter() - t0
    assert r is not None and r.status_code == 200
    body = json.loads(r.body)
    assert sum(len(p["t"]) for dev in body["devices"].values() for p in dev.values()) == 24_000
    assert len(r.body) < 24_000 * 25, len(r.body)  # ~20 bytes a point in JSON
    print(f"series: 24000 points, {len(r.body)} bytes, {took * 1000:.1f} ms")
