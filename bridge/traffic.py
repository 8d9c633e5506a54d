"""What a bus's traffic means to clients: frames and events as bus messages. Pure.

The bus owner (:mod:`bridge.buses`) feeds :class:`TrafficCore` what its master saw on the wire
and how its transactions ended, with the time; the core answers the messages to publish and
keeps the device book. No port, no task, no clock of its own: tested without a pty.

A noisy line must not flood the history (issue 10): at 115200 baud a line of ``0xAA`` makes
~700 CRC errors a second, which would push a 1,024-message history past its end in 1.4 s.
So CRC errors are *counted* and published as one ``crc_error`` event per ``error_interval_s``
(with the count), and unsolicited frames (``late``, ``unexpected``) pass a token bucket of
``unsolicited_per_s``; those over it are counted and reported as one ``frames_dropped`` event
per interval. The bus owner calls :meth:`TrafficCore.tick` at :meth:`next_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from frames import Frame
from frames.commands import CommandRegistry, jsonable
from frames.events import CrcErrorSeen, FrameReceived, FrameSent, LinkStateChanged, TrafficEvent

from .devices import DeviceBook
from .series import SeriesStore

__all__ = ["Message", "NoiseLimits", "TrafficCore"]

Message = dict[str, Any]

FIELDS_CACHE = 1024  # decoded fields kept (requests and replies seen again: polling)


@dataclass(frozen=True, slots=True)
class NoiseLimits:
    error_interval_s: float = 1.0  # CRC errors: at most one crc_error event per interval
    unsolicited_per_s: float = 5.0  # late/unexpected frames published per second (burst: 1 s)


class TrafficCore:
    def __init__(
        self,
        bus: str,
        registry: CommandRegistry,
        book: DeviceBook,
        noise: NoiseLimits = NoiseLimits(),
        series: SeriesStore | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.book = book
        self.noise = noise
        self.series = series  # recent values per register for charts (bridge/series.py)
        self.read_code = registry.resolve_code("read_regs")
        self.write_code = registry.resolve_code("write_reg")
        self.identify_code = registry.resolve_code("identify")
        self.awaiting: int | None = None  # the address whose reply the bus owner waits for
        self.up = False
        self.down_reason = ""
        self._read_start: dict[int, int] = {}  # addr → start of its last read_regs request
        self._described: tuple[Frame, bool, dict[str, Any] | None] | None = None
        self._fields: dict[tuple[int, int, bytes, bool, int | None], Message | None] = {}
        # coalesced noise: counts waiting to be published when the interval ends
        self._crc = 0
        self._crc_awaiting: int | None = None
        self._dropped = 0
        self._window_end: float | None = None
        self._tokens = noise.unsolicited_per_s
        self._tokens_at = 0.0

    # -- the wire ----------------------------------------------------------------------------

    def traffic(self, ev: TrafficEvent, now: float) -> list[Message]:
        """One event from the master's ``on_traffic`` → the messages to publish."""
        if isinstance(ev, FrameSent):
            f = ev.frame
            if f.cmd == self.read_code and len(f.data) >= 2:
                self._read_start[f.addr] = int.from_bytes(f.data[:2], "little")
            return [self.frame_message(f, "tx", ev.ts)]
        if isinstance(ev, FrameReceived):
            if ev.kind == "echo":
                return []
            f = ev.frame
            if ev.kind == "reply":
                if not f.is_error:
                    self._remember(f, ev.ts)
                return [self.frame_message(f, "rx", ev.ts)]
            if not self._admit_unsolicited(now):
                self._dropped += 1
                return self._open_window(now)
            return [self.frame_message(f, "rx", ev.ts, ev.kind)]
        if isinstance(ev, CrcErrorSeen):
            if self.awaiting is not None:
                self.book.count_error(self.awaiting, "crc_errors", ev.count)
                self._crc_awaiting = self.awaiting
            self._crc += ev.count
            return self._open_window(now)
        if isinstance(ev, LinkStateChanged):
            if ev.up == self.up:
                return []
            self.up = ev.up
            self.down_reason = "" if ev.up else (ev.reason or "port unavailable")
            if not ev.up and self.series is not None:
                self.series.gap(self.bus, None, ev.ts)  # the charts' lines break here
            extra = {"reason": ev.reason} if ev.reason else {}
            return [self.event("bus_up" if ev.up else "bus_down", None, ev.ts, **extra)]
        return []

    def _admit_unsolicited(self, now: float) -> bool:
        rate = self.noise.unsolicited_per_s
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _open_window(self, now: float) -> list[Message]:
        """The first noise of a quiet period is published at once; more within the interval
        waits for :meth:`tick`."""
        if self._window_end is not None:
            return []
        self._window_end = now + self.noise.error_interval_s
        return self._flush(now)

    def next_deadline(self) -> float | None:
        return self._window_end

    def tick(self, now: float) -> list[Message]:
        """Publish the counts of the interval that ended (nothing if it was quiet)."""
        if self._window_end is None or now < self._window_end:
            return []
        out = self._flush(now)
        self._window_end = now + self.noise.error_interval_s if out else None
        return out

    def _flush(self, now: float) -> list[Message]:
        out: list[Message] = []
        if self._crc:
            extra = {} if self._crc_awaiting is None else {"awaiting": self._crc_awaiting}
            out.append(self.event("crc_error", None, now, count=self._crc, **extra))
            self._crc, self._crc_awaiting = 0, None
        if self._dropped:
            out.append(self.event("frames_dropped", None, now, count=self._dropped))
            self._dropped = 0
        return out

    # -- transactions ------------------------------------------------------------------------

    def answered(self, addr: int, now: float) -> list[Message]:
        """A device answered (a reply or an error reply)."""
        news = self.book.seen(addr, now)
        return [] if news is None else [self.event(news, addr, now)]

    def poll_missed(self, addr: int, now: float) -> list[Message]:
        news = self.book.missed(addr)
        if news is not None and self.series is not None:
            self.series.gap(self.bus, addr, now)
        return [] if news is None else [self.event(news, addr, now)]

    def reply(self, frame: Frame, sent: bytes, rtt_ms: float) -> dict[str, Any]:
        """A client request's successful result."""
        out: dict[str, Any] = {
            "ok": True,
            "bus": self.bus,
            "addr": frame.addr,
            "cmd": frame.cmd,
            "data": frame.data.hex(),
        }
        fields = self.fields(frame, False, sent)
        if fields is not None:
            out["fields"] = fields
        out["rtt_ms"] = round(rtt_ms, 3)
        return out

    # -- messages ----------------------------------------------------------------------------

    def fields(self, frame: Frame, request: bool, sent: bytes | None = None) -> Message | None:
        """The decoded (and, for register reads, named) fields of ``frame``; read-only.

        Polling asks the same requests over and over and gets mostly the same replies, and
        decoding with construct is the largest CPU cost per transaction, so results are kept
        in a small table keyed by what they depend on (cleared when full: no unbounded growth).
        """
        start: int | None = None
        if not request and frame.cmd == self.read_code:
            start = (
                int.from_bytes(sent[:2], "little")
                if sent is not None and len(sent) >= 2
                else self._read_start.get(frame.addr)
            )
        key = (frame.addr, frame.cmd, frame.data, request, start)
        cache = self._fields
        if key in cache:
            return cache[key]
        fields = self._describe(frame, request)
        out: dict[str, Any] | None = None
        if fields is not None:
            out = jsonable(fields)
            values = out.get("values")
            if start is not None and not frame.is_error and isinstance(values, list):
                named = self.book.names(frame.addr, start, values)
                if named:
                    out["named"] = named
        if len(cache) >= FIELDS_CACHE:
            cache.clear()
        cache[key] = out
        return out

    def _describe(self, frame: Frame, request: bool) -> dict[str, Any] | None:
        """Decoded fields of ``frame``, parsed once: a reply is remembered, published and
        answered to its requester from the same Frame object, and construct parsing is the
        slow part of all three. One entry, keyed by identity (frames are immutable)."""
        cached = self._described
        if cached is not None and cached[0] is frame and cached[1] == request:
            return cached[2]
        fields = self.registry.describe(frame, request=request)
        self._described = (frame, request, fields)
        return fields

    def _remember(self, f: Frame, ts: float) -> None:
        if f.cmd == self.read_code:
            start = self._read_start.get(f.addr)
            fields = self.fields(f, False)  # cached: the published frame uses the same
            if start is not None and fields is not None and isinstance(fields.get("values"), list):
                self._store(f.addr, self.book.registers(f.addr, start, fields["values"], ts), ts)
        elif f.cmd == self.identify_code:
            fields = self.fields(f, False)
            if fields is not None:
                self.book.identified(f.addr, fields)
        elif f.cmd == self.write_code and len(f.data) == 4:
            reg = int.from_bytes(f.data[:2], "little")
            value = int.from_bytes(f.data[2:], "little")
            self._store(f.addr, self.book.registers(f.addr, reg, [value], ts), ts)

    def _store(self, addr: int, named: dict[str, Any], ts: float) -> None:
        if self.series is not None and named:
            self.series.add(self.bus, addr, named, ts)

    def frame_message(
        self, f: Frame, direction: str, ts: float, kind: str | None = None
    ) -> Message:
        msg: Message = {
            "type": "frame",
            "ts": round(ts, 6),
            "addr": f.addr,
            "cmd": f.cmd,
            "dir": direction,
            "data": f.data.hex(),
        }
        fields = self.fields(f, direction == "tx")
        if fields is not None:
            msg["fields"] = fields
        if kind is not None:
            msg["kind"] = kind
        return msg

    def event(self, event: str, addr: int | None, ts: float, **extra: Any) -> Message:
        msg: Message = {"type": "event", "ts": round(ts, 6), "event": event}
        if addr is not None:
            msg["addr"] = addr
        msg.update(extra)
        return msg
