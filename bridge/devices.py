"""Last known state of each device of a bus: online/offline and named register values. Pure.

The bus owner feeds it poll outcomes; it answers which ``device_online``/``device_offline``
events to emit (only on a change, so a dead device is reported once, not every poll) and keeps
the values ``state`` requests and ``/api/state`` return. Register names, types, units and scaling
come from the device's map (:class:`frames.register.RegisterDef`, loaded by ``frames``), so this
module needs no simulator. A map here is keyed by every word address a register covers (a
two-word register appears under both; its own ``address`` tells the first word), so a read that
covers the map's words covers every register; :func:`load_register_maps` builds a bus's maps
from its configured devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from frames.devicemap import load_device_map
from frames.errors import FramesError
from frames.register import RegisterDef

from .config import BusConfig
from .errors import ConfigError

__all__ = ["DeviceBook", "DeviceState", "RegisterInfo", "describe_register", "load_register_maps"]

RegisterInfo = RegisterDef  # what a device map's register offers


def load_register_maps(cfg: BusConfig) -> dict[int, dict[int, RegisterInfo]]:
    """addr → word address → the register covering it (``frames`` device maps), for devices
    that name a profile (a shipped device map name or a path)."""
    maps: dict[int, dict[int, RegisterInfo]] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.profile is None:
            continue
        try:
            device_map = load_device_map(dev.profile)
        except FramesError as exc:
            raise ConfigError(f"bus {cfg.name} device[{i}].profile", str(exc)) from None
        maps[dev.addr] = {r.address + w: r for r in device_map.registers for w in range(r.count)}
    return maps


def describe_register(info: RegisterInfo) -> dict[str, Any]:
    """A register of a device's map as ``state`` shows it: what a dashboard may edit."""
    return info.describe()


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
    # From the device's IDENTIFY reply, once seen (the bus owner asks when a device comes online).
    identity: dict[str, Any] | None = None
    # Per-device error counters: timeouts, device_errors (error replies), crc_errors (while
    # this device's reply was awaited).
    errors: dict[str, int] = field(
        default_factory=lambda: {"timeouts": 0, "device_errors": 0, "crc_errors": 0}
    )
    register_map: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        ident = self.identity or {}
        return {
            "addr": self.addr,
            "name": self.name,
            "profile": self.profile,
            "online": self.online,
            "last_seen": self.last_seen,
            "model": ident.get("model"),
            "firmware": ident.get("firmware"),
            "uid": ident.get("uid"),
            "errors": dict(self.errors),
            "registers": {str(k): v for k, v in sorted(self.registers.items())},
            "values": self.values,
            "register_map": self.register_map,
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
        self.maps = dict(maps or {})
        self.devices = {a: DeviceState(a, n, p) for a, n, p in devices}
        for addr, dev in self.devices.items():
            rmap = self.maps.get(addr, {})
            dev.register_map = [
                describe_register(rmap[r]) for r in sorted(rmap) if rmap[r].address == r
            ]
        self.offline_after = max(1, offline_after)

    def _get(self, addr: int) -> DeviceState:
        dev = self.devices.get(addr)
        if dev is None:  # not configured (a client's request, or sniffed): a scratch record,
            return DeviceState(addr)  # never kept, so it does not appear in everyone's state
        return dev

    def seen(self, addr: int, now: float) -> str | None:
        """The device answered; "device_online" when that is news (configured devices only)."""
        if addr not in self.devices:
            return None
        dev = self._get(addr)
        dev.misses = 0
        dev.last_seen = now
        if dev.online is not True:
            dev.online = True
            if dev.identity is not None and dev.identity.get("model") is None:
                dev.identity = None  # identifying failed last time: try again now
            return "device_online"
        return None

    def identified(self, addr: int, fields: Mapping[str, Any]) -> None:
        """Remember what the device's IDENTIFY reply said (model, firmware, uid)."""
        self._get(addr).identity = {k: fields.get(k) for k in ("model", "firmware", "uid")}

    def needs_identity(self, addr: int) -> bool:
        dev = self.devices.get(addr)
        return dev is not None and dev.online is True and dev.identity is None

    def count_error(self, addr: int, kind: str, n: int = 1) -> None:
        """Add to a device's error counter (``timeouts``, ``device_errors``, ``crc_errors``)."""
        errors = self._get(addr).errors
        errors[kind] = errors.get(kind, 0) + n

    def missed(self, addr: int) -> str | None:
        """A poll timed out; "device_offline" after ``offline_after`` misses in a row."""
        if addr not in self.devices:
            return None
        dev = self._get(addr)
        dev.errors["timeouts"] += 1
        dev.misses += 1
        if dev.misses >= self.offline_after and dev.online is not False:
            dev.online = False
            return "device_offline"
        return None

    def names(self, addr: int, start: int, raws: Sequence[int]) -> dict[str, Any]:
        """{name: value} for the registers of the device's map wholly inside ``raws``."""
        return {info.name: info.decode(words) for info, words in self._cover(addr, start, raws)}

    def registers(self, addr: int, start: int, raws: Sequence[int], ts: float) -> dict[str, Any]:
        """Store raw register words; returns {name: value} for the ones the map names."""
        dev = self._get(addr)
        for reg_addr, raw in enumerate(raws, start):
            dev.registers[reg_addr] = raw
        named: dict[str, Any] = {}
        for info, words in self._cover(addr, start, raws):
            value = info.decode(words)
            named[info.name] = value
            entry: dict[str, Any] = {
                "value": value,
                "unit": info.unit,
                "raw": words[0] if info.count == 1 else list(words),
                "ts": ts,
            }
            if info.labels and isinstance(value, int):
                entry["label"] = info.label(value)
            if info.bits and isinstance(value, int):
                entry["flags"] = info.flags(value)
            dev.values[info.name] = entry
        return named

    def _cover(
        self, addr: int, start: int, raws: Sequence[int]
    ) -> list[tuple[RegisterInfo, Sequence[int]]]:
        """The map's registers whose every word is in ``raws`` (read from ``start``)."""
        rmap = self.maps.get(addr, {})
        out = []
        end = start + len(raws)
        for reg_addr in range(start, end):
            info = rmap.get(reg_addr)
            if info is not None and info.address == reg_addr and reg_addr + info.count <= end:
                out.append((info, raws[reg_addr - start : reg_addr - start + info.count]))
        return out

    def snapshot(self) -> dict[str, Any]:
        return {str(a): d.to_json() for a, d in sorted(self.devices.items())}
