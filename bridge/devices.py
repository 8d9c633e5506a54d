"""Last known state of each device of a bus: online/offline and named register values. Pure.

The bus owner feeds it poll outcomes; it answers which ``device_online``/``device_offline``
events to emit (only on a change, so a dead device is reported once, not every poll) and keeps
the values ``state`` requests and ``/api/state`` return. Register names, units and scaling come
from the device's profile, passed in as plain objects so this module needs no simulator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["DeviceBook", "DeviceState", "RegisterInfo"]


class RegisterInfo(Protocol):
    """What a profile register offers (``firmware_sim.registers.Register`` fits)."""

    @property
    def address(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    def to_value(self, raw: int) -> float | int: ...


@dataclass
class DeviceState:
    addr: int
    name: str = ""
    profile: str | None = None
    online: bool | None = None  # None: not polled yet
    misses: int = 0
    last_seen: float | None = None
    registers: dict[int, int] = field(default_factory=dict)  # address → raw u16
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → value/unit/raw/ts

    def to_json(self) -> dict[str, Any]:
        return {
            "addr": self.addr,
            "name": self.name,
            "profile": self.profile,
            "online": self.online,
            "last_seen": self.last_seen,
            "registers": {str(k): v for k, v in sorted(self.registers.items())},
            "values": self.values,
        }


class DeviceBook:
    def __init__(
        self,
        devices: Sequence[tuple[int, str, str | None]],
        maps: Mapping[int, Mapping[int, RegisterInfo]] | None = None,
        *,
        offline_after: int = 1,
    ) -> None:
        """``devices``: (addr, name, profile name); ``maps``: addr → register address → info."""
        self.devices = {a: DeviceState(a, n, p) for a, n, p in devices}
        self.maps = dict(maps or {})
        self.offline_after = max(1, offline_after)

    def _get(self, addr: int) -> DeviceState:
        dev = self.devices.get(addr)
        if dev is None:  # a device not in the config answered (a request, or sniffed)
            dev = self.devices[addr] = DeviceState(addr)
        return dev

    def seen(self, addr: int, now: float) -> str | None:
        """The device answered; "device_online" when that is news."""
        dev = self._get(addr)
        dev.misses = 0
        dev.last_seen = now
        if dev.online is not True:
            dev.online = True
            return "device_online"
        return None

    def missed(self, addr: int) -> str | None:
        """A poll timed out; "device_offline" after ``offline_after`` misses in a row."""
        dev = self._get(addr)
        dev.misses += 1
        if dev.misses >= self.offline_after and dev.online is not False:
            dev.online = False
            return "device_offline"
        return None

    def names(self, addr: int, start: int, raws: Sequence[int]) -> dict[str, Any]:
        """{name: scaled value} for the registers the device's profile names."""
        rmap = self.maps.get(addr, {})
        named: dict[str, Any] = {}
        for reg_addr, raw in enumerate(raws, start):
            info = rmap.get(reg_addr)
            if info is not None:
                named[info.name] = info.to_value(raw)
        return named

    def registers(self, addr: int, start: int, raws: Sequence[int], ts: float) -> dict[str, Any]:
        """Store raw register words; returns {name: scaled value} for the ones the profile names."""
        dev = self._get(addr)
        rmap = self.maps.get(addr, {})
        named: dict[str, Any] = {}
        for reg_addr, raw in enumerate(raws, start):
            dev.registers[reg_addr] = raw
            info = rmap.get(reg_addr)
            if info is None:
                continue
            value = info.to_value(raw)
            named[info.name] = value
            dev.values[info.name] = {"value": value, "unit": info.unit, "raw": raw, "ts": ts}
        return named

    def snapshot(self) -> dict[str, Any]:
        return {str(a): d.to_json() for a, d in sorted(self.devices.items())}
