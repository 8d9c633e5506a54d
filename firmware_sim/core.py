"""The bus without the port: bytes in → frames → the addressed device → planned replies.

Pure, so the whole request/reply path (addressing, broadcast, faults, counters) is tested
without a pty. A :class:`BusCore` owns the devices and the bus-wide counters; each connection to
the bus (the pty, or one TCP client) is a :class:`BusView` with its own stream decoder, so a
half-sent frame on one connection never mixes with another's bytes. The frame is decoded once
and handed to the one device with that address (every device, for a broadcast).

A view is shaped like the master's core: ``receive_data(data, now)``, and ``next_deadline()``/
``tick(now)`` give up a partial frame after ``idle_gap`` seconds of silence, so the pty and TCP
adapters only keep a timer. In the tagged frame format every reply carries its request's tag.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from frames.codec import encode
from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.frame import BROADCAST, Frame
from frames.stream import IdleFlush, StreamDecoder

from .device import SimulatedDevice
from .errors import ConfigError
from .faults import NO_FAULTS, Delivery, FaultConfig

__all__ = ["BusCore", "BusCounters", "BusView", "Outgoing"]

log = logging.getLogger(__name__)


@dataclass
class BusCounters:
    bytes_in: int = 0
    frames_in: int = 0  # valid frames decoded, for any address
    replies_out: int = 0  # replies handed to the port (after drops)
    crc_errors: int = 0  # candidate frames whose CRC did not match
    unaddressed: int = 0  # frames for an address no device has
    bytes_out: int = 0  # written to the port (set by the I/O layer)
    overflows: int = 0  # replies dropped because the port's write queue was full (I/O layer)
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def faults_applied(self) -> int:
        return sum(self.faults.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "bytes_in": self.bytes_in,
            "frames_in": self.frames_in,
            "replies_out": self.replies_out,
            "crc_errors": self.crc_errors,
            "unaddressed": self.unaddressed,
            "bytes_out": self.bytes_out,
            "overflows": self.overflows,
            "faults_applied": self.faults_applied,
            "faults": dict(self.faults),
        }


@dataclass(frozen=True)
class Outgoing:
    """A reply to write: the request arrived at ``received`` (the caller's clock)."""

    addr: int
    frame: Frame
    delivery: Delivery
    received: float
    request_bytes: int  # size of the request on the wire (for wire-time pacing)


class BusCore:
    """Devices on one bus, by address. ``faults`` applies to devices without their own."""

    def __init__(
        self,
        devices: Iterable[SimulatedDevice],
        *,
        fmt: FrameFormat = DEFAULT_FORMAT,
        faults: FaultConfig | None = None,
        max_buffer: int = 4096,
        idle_gap: float = 0.05,
    ) -> None:
        if idle_gap <= 0:
            raise ConfigError(f"idle_gap: must be > 0, got {idle_gap}")
        self.fmt = fmt
        self.max_buffer = max_buffer
        self.idle_gap = idle_gap
        self.counters = BusCounters()
        self.devices: dict[int, SimulatedDevice] = {}
        self._own_faults: set[int] = set()
        for dev in devices:
            if dev.address in self.devices:
                raise ConfigError(f"devices: two devices with address {dev.address}")
            if dev.slave.fmt != fmt:
                raise ConfigError(f"devices: device {dev.address} uses a different frame format")
            self.devices[dev.address] = dev
            if dev.faults is not None:
                self._own_faults.add(dev.address)
        self.faults = faults or NO_FAULTS

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        """Bus-wide faults: applied to every device that was not given faults of its own."""
        self._faults = config
        for addr, dev in self.devices.items():
            if addr not in self._own_faults:
                dev.faults = config

    def start(self, now: float) -> None:
        for dev in self.devices.values():
            dev.start(now)

    def open_view(self) -> BusView:
        return BusView(self)

    def dispatch(self, frame: Frame, now: float) -> Outgoing | None:
        """Hand one decoded frame to its device; the reply's planned delivery, if any."""
        self.counters.frames_in += 1
        if frame.addr == BROADCAST:
            for dev in self.devices.values():
                dev.handle(frame, now)
            return None
        target = self.devices.get(frame.addr)
        if target is None:
            self.counters.unaddressed += 1
            return None
        dev = target
        reply = dev.handle(frame, now)
        if reply is None:
            return None
        wire = encode(reply.addr, reply.cmd, reply.data, self.fmt, tag=reply.tag)
        delivery = dev.injector.plan(wire, dev.faults or NO_FAULTS)
        for kind in delivery.applied:
            dev.counters.faults[kind] += 1
            self.counters.faults[kind] += 1
        if delivery.dropped:
            log.debug("bus: dropped reply of device %d (fault)", dev.address)
            return None
        self.counters.replies_out += 1
        request_bytes = self.fmt.layout.min_size + len(frame.data)
        return Outgoing(dev.address, reply, delivery, now, request_bytes)


class BusView:
    """One connection's byte stream into the bus."""

    def __init__(self, core: BusCore) -> None:
        self.core = core
        self.decoder = StreamDecoder(core.fmt, max_buffer=core.max_buffer)
        self._line = IdleFlush(self.decoder, core.idle_gap)
        self._crc_seen = 0

    def receive_data(self, data: bytes, now: float) -> list[Outgoing]:
        self.core.counters.bytes_in += len(data)
        return self._dispatch(self._line.feed(data, now), now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next run: while a partial frame is held."""
        return self._line.next_deadline()

    def tick(self, now: float) -> list[Outgoing]:
        """Let time pass: a partial frame the line left idle for ``idle_gap`` is given up."""
        return self._dispatch(self._line.tick(now), now)

    def idle(self, now: float) -> list[Outgoing]:
        """The line has been quiet for an inter-frame gap, whatever the clock says: flush now."""
        return self._dispatch(self.decoder.flush(), now)

    def _dispatch(self, frames: list[Frame], now: float) -> list[Outgoing]:
        out = []
        for frame in frames:
            result = self.core.dispatch(frame, now)
            if result is not None:
                out.append(result)
        seen = self.decoder.stats.crc_errors
        self.core.counters.crc_errors += seen - self._crc_seen
        self._crc_seen = seen
        return out
