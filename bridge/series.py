"""Recent values of every polled register, so a page shows the last minutes at once. Pure.

Why: the history (:mod:`bridge.history`) keeps wire messages for resume, a few seconds of them
at a busy poll rate, and a new viewer would have to replay and decode them all to draw a chart.
This store keeps what a chart needs instead: per (bus, device, register) a ring of (time, value)
points, thinned to one point per ``resolution_s`` (the newest value of each time bucket wins),
so a register polled four times a second costs the same as one polled once a second.

Memory is bounded, whatever the traffic: at most ``max_series`` series of at most
``points`` points, each point two C doubles (16 bytes) in :class:`array.array` rings that grow
to their capacity and then wrap. The bound is :meth:`SeriesStore.max_bytes`: with the defaults
(600 points = 10 min at 1 s, 2048 series) 600 * 16 * 2048 = 19.7 MB of point data at most, plus
~1 KB of bookkeeping per series. A series past ``max_series`` is not created (counted in
``refused``), never an eviction of one a page is drawing.

Values: numbers as they are; bools as 0/1; None (an f32 NaN, no reading) as a gap, sent as
``null``. Time is passed in (``ts``, the poll reply's time); nothing here reads a clock.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_POINTS", "DEFAULT_RESOLUTION_S", "MAX_SERIES", "Ring", "SeriesStore"]

DEFAULT_POINTS = 600  # per register: 10 minutes at one point a second
DEFAULT_RESOLUTION_S = 1.0
MAX_SERIES = 2048
POINT_BYTES = 16  # one double for the time, one for the value


class Ring:
    """A fixed-capacity (time, value) ring; ``add`` merges points of the same time bucket."""

    __slots__ = ("bucket", "capacity", "resolution", "start", "t", "v")

    def __init__(self, capacity: int, resolution: float) -> None:
        self.capacity = capacity
        self.resolution = resolution
        self.t = array("d")
        self.v = array("d")
        self.start = 0  # index of the oldest point once the ring is full
        self.bucket = -math.inf  # the time bucket of the newest point

    def __len__(self) -> int:
        return len(self.t)

    def _last(self) -> int:
        return (self.start - 1) % len(self.t)

    def add(self, ts: float, value: float) -> None:
        if self.t and ts < self.t[self._last()]:
            return  # older than what we have (a late duplicate): the chart needs no rewrite
        bucket = math.floor(ts / self.resolution) if self.resolution > 0 else ts
        if self.t and bucket == self.bucket:
            i = self._last()  # the same bucket: the newest value of it wins
            self.t[i], self.v[i] = ts, value
            return
        self.bucket = bucket
        if len(self.t) < self.capacity:
            self.t.append(ts)
            self.v.append(value)
            return
        self.t[self.start], self.v[self.start] = ts, value
        self.start = (self.start + 1) % self.capacity

    def points(self, since: float | None = None) -> tuple[list[float], list[float | None]]:
        """Oldest first, from ``since`` on (exclusive); NaN (a gap) comes out as None."""
        n = len(self.t)
        ts: list[float] = []
        vs: list[float | None] = []
        for k in range(n):
            i = (self.start + k) % n
            t = self.t[i]
            if since is not None and t <= since:
                continue
            v = self.v[i]
            ts.append(round(t, 3))
            vs.append(None if math.isnan(v) else v)
        return ts, vs


def _number(value: Any) -> float | None:
    """A register value as a chart point; None when it is not one (a string, a dict)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return math.nan  # no reading: a gap in the line
    return None


class SeriesStore:
    """Per-register recent values of every bus; the bus owners feed it, ``/api/series`` reads
    it. Keyword-only limits with safe defaults; :meth:`max_bytes` states the memory bound."""

    def __init__(
        self,
        *,
        points: int = DEFAULT_POINTS,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        max_series: int = MAX_SERIES,
    ) -> None:
        if points < 2 or max_series < 1 or resolution_s < 0:
            raise ValueError("points >= 2, max_series >= 1, resolution_s >= 0")
        self.points = points
        self.resolution_s = resolution_s
        self.max_series = max_series
        self._series: dict[tuple[str, int, str], Ring] = {}
        self.refused = 0  # values not kept because max_series series exist

    def __len__(self) -> int:
        return len(self._series)

    def max_bytes(self) -> int:
        """The most the points can take: every series full."""
        return self.max_series * self.points * POINT_BYTES

    def window_s(self) -> float:
        """How far back a full series reaches."""
        return self.points * self.resolution_s

    def add(self, bus: str, addr: int, values: Mapping[str, Any], ts: float) -> None:
        """Named values of one device at ``ts`` (what :meth:`DeviceBook.registers` returns)."""
        for name, value in values.items():
            point = _number(value)
            if point is None:
                continue
            key = (bus, addr, name)
            ring = self._series.get(key)
            if ring is None:
                if len(self._series) >= self.max_series:
                    self.refused += 1
                    continue
                ring = self._series[key] = Ring(self.points, self.resolution_s)
            ring.add(ts, point)

    def gap(self, bus: str, addr: int | None, ts: float) -> None:
        """The device (None: every device of the bus) went away: break its lines at ``ts``."""
        for (b, a, _name), ring in self._series.items():
            if (
                b == bus
                and (addr is None or a == addr)
                and ring
                and not math.isnan(ring.v[ring._last()])
            ):
                ring.add(ts, math.nan)

    def query(
        self, bus: str, addr: int | None = None, since: float | None = None
    ) -> dict[str, dict[str, dict[str, list[Any]]]]:
        """``{addr: {register: {"t": [...], "v": [...]}}}`` of a bus (or of one device)."""
        out: dict[str, dict[str, dict[str, list[Any]]]] = {}
        for (b, a, name), ring in self._series.items():
            if b != bus or (addr is not None and a != addr):
                continue
            ts, vs = ring.points(since)
            out.setdefault(str(a), {})[name] = {"t": ts, "v": vs}
        return out

    def forget(self, bus: str) -> None:
        """Drop a bus's series (the bus left the config)."""
        for key in [k for k in self._series if k[0] == bus]:
            del self._series[key]
