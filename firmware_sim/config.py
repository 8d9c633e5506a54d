"""Bus configurations: which buses, which devices, which faults — from TOML or from CLI flags.

Pure: a config file becomes a list of frozen :class:`BusSpec`, validated once, every error a
:class:`ConfigError` naming the file and key (``sim.toml: bus[1].device[0].address: ...``).
The I/O layer (:mod:`firmware_sim.run`) opens one :class:`~firmware_sim.bus.SimulatedBus`
per spec.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frames.errors import FramesError
from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.frame import MAX_SLAVE_ADDR

from .device import SimulatedDevice
from .errors import ConfigError, ProfileError
from .faults import FaultConfig
from .profile import Profile, load_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["BusSpec", "DeviceSpec", "load_config", "parse_config"]

_BUS_KEYS = {
    "name",
    "link",
    "tcp",
    "profile",
    "devices",
    "first_address",
    "device",
    "faults",
    "seed",
    "baudrate",
    "pacing",
    "format",
}
_DEVICE_KEYS = {"address", "profile", "uid", "faults", "seed"}


@dataclass(frozen=True)
class DeviceSpec:
    address: int
    profile: Profile
    uid: int | None = None
    faults: FaultConfig | None = None
    seed: int | str | None = None


@dataclass(frozen=True)
class BusSpec:
    """One bus: a pty (optionally with a ``link`` symlink) or a ``tcp`` listen address."""

    name: str = "bus"
    devices: tuple[DeviceSpec, ...] = ()
    link: str | None = None
    tcp: str | None = None
    faults: FaultConfig | None = None
    seed: int | str = 0
    baudrate: int = 115200
    pacing: bool = False
    fmt: FrameFormat = field(default=DEFAULT_FORMAT)

    def build_devices(self) -> list[SimulatedDevice]:
        return [
            SimulatedDevice(
                d.address,
                d.profile,
                uid=d.uid,
                seed=self.seed if d.seed is None else d.seed,
                faults=d.faults,
                fmt=self.fmt,
            )
            for d in self.devices
        ]

    def bus_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~firmware_sim.bus.SimulatedBus`."""
        return {
            "devices": self.build_devices(),
            "link": self.link,
            "tcp": self.tcp,
            "faults": self.faults,
            "seed": self.seed,
            "fmt": self.fmt,
            "baudrate": self.baudrate,
            "pacing": self.pacing,
            "name": self.name,
        }


def device_addresses(count: int, first_address: int = 1) -> range:
    """Addresses of ``count`` devices from ``first_address``; all must be slave addresses."""
    if not 1 <= count <= MAX_SLAVE_ADDR or not 1 <= first_address <= MAX_SLAVE_ADDR + 1 - count:
        raise ConfigError(
            f"devices: {count} devices from address {first_address} "
            f"do not fit in 1..{MAX_SLAVE_ADDR}"
        )
    return range(first_address, first_address + count)


def uniform_devices(profile: Profile, count: int, first_address: int = 1) -> tuple[DeviceSpec, ...]:
    return tuple(DeviceSpec(a, profile) for a in device_addresses(count, first_address))


def load_config(path: str | Path) -> list[BusSpec]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return parse_config(data, source=str(path), base=path.parent)


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", base: Path | None = None
) -> list[BusSpec]:
    """``{seed?, bus = [...]}`` → bus specs. Profile paths are relative to ``base``."""
    for key in data:
        if key not in ("bus", "seed"):
            raise ConfigError(f"{source}: {key}: unknown key (expected 'bus' and 'seed')")
    seed = _seed(data.get("seed", 0), f"{source}: seed")
    tables = data.get("bus")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{source}: bus: needs at least one [[bus]] table")
    specs = [_bus(i, t, seed, source, base) for i, t in enumerate(tables)]
    _unique([s.name for s in specs], f"{source}: bus[].name")
    _unique([s.link for s in specs if s.link], f"{source}: bus[].link")
    _unique([s.tcp for s in specs if s.tcp and not s.tcp.endswith(":0")], f"{source}: bus[].tcp")
    return specs


def _unique(values: list[str], where: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{where}: {v!r} is used twice")
        seen.add(v)


def _seed(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{where}: must be an integer or a string")
    return value


def _profile(value: Any, where: str, base: Path | None) -> Profile:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a profile name or a path to a .toml file")
    if base is not None and value.endswith(".toml") and not Path(value).is_absolute():
        value = str(base / value)
    try:
        return load_profile(value)
    except ProfileError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _bus(index: int, table: Any, seed: int | str, source: str, base: Path | None) -> BusSpec:
    where = f"{source}: bus[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    for key in table:
        if key not in _BUS_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (expected {sorted(_BUS_KEYS)})")
    name = table.get("name", f"bus{index}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: must be a non-empty string")
    link, tcp = table.get("link"), table.get("tcp")
    if link is not None and not isinstance(link, str):
        raise ConfigError(f"{where}.link: must be a path")
    if tcp is not None and not isinstance(tcp, str):
        raise ConfigError(f"{where}.tcp: must be 'HOST:PORT'")
    if link is not None and tcp is not None:
        raise ConfigError(f"{where}: link and tcp exclude each other (a link names a pty)")
    fmt = DEFAULT_FORMAT
    if "format" in table:
        fmt_table = table["format"]
        if not isinstance(fmt_table, Mapping):
            raise ConfigError(f"{where}.format: must be a table")
        try:
            fmt = FrameFormat(**fmt_table)
        except (TypeError, FramesError) as exc:
            raise ConfigError(f"{where}.format: {exc}") from exc
    baudrate = table.get("baudrate", 115200)
    if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0:
        raise ConfigError(f"{where}.baudrate: must be a positive integer")
    pacing = table.get("pacing", False)
    if not isinstance(pacing, bool):
        raise ConfigError(f"{where}.pacing: must be true or false")
    faults = None
    if "faults" in table:
        faults = FaultConfig.from_table(table["faults"], f"{where}.faults")
    devices = _devices(table, where, base)
    return BusSpec(
        name=name,
        devices=devices,
        link=link,
        tcp=tcp,
        faults=faults,
        seed=_seed(table.get("seed", seed), f"{where}.seed"),
        baudrate=baudrate,
        pacing=pacing,
        fmt=fmt,
    )


def _devices(table: Mapping[str, Any], where: str, base: Path | None) -> tuple[DeviceSpec, ...]:
    explicit = table.get("device")
    if explicit is not None:
        if "devices" in table or "first_address" in table:
            raise ConfigError(f"{where}: give either devices = N or [[bus.device]] tables")
        if not isinstance(explicit, list) or not explicit:
            raise ConfigError(f"{where}.device: must be an array of tables ([[bus.device]])")
        default_profile = table.get("profile")
        out = []
        for i, dev in enumerate(explicit):
            dwhere = f"{where}.device[{i}]"
            if not isinstance(dev, Mapping):
                raise ConfigError(f"{dwhere}: must be a table")
            for key in dev:
                if key not in _DEVICE_KEYS:
                    raise ConfigError(
                        f"{dwhere}.{key}: unknown key (expected {sorted(_DEVICE_KEYS)})"
                    )
            addr = dev.get("address")
            if (
                not isinstance(addr, int)
                or isinstance(addr, bool)
                or not 1 <= addr <= MAX_SLAVE_ADDR
            ):
                raise ConfigError(f"{dwhere}.address: must be an integer 1..{MAX_SLAVE_ADDR}")
            uid = dev.get("uid")
            if uid is not None and (not isinstance(uid, int) or not 0 <= uid <= 0xFFFFFFFF):
                raise ConfigError(f"{dwhere}.uid: must be an integer 0..0xFFFFFFFF")
            profile_name = dev.get("profile", default_profile)
            if profile_name is None:
                raise ConfigError(f"{dwhere}.profile: missing (and the bus has no profile)")
            faults = dev.get("faults")
            out.append(
                DeviceSpec(
                    address=addr,
                    profile=_profile(profile_name, f"{dwhere}.profile", base),
                    uid=uid,
                    faults=None
                    if faults is None
                    else FaultConfig.from_table(faults, f"{dwhere}.faults"),
                    seed=None if "seed" not in dev else _seed(dev["seed"], f"{dwhere}.seed"),
                )
            )
        _unique([str(d.address) for d in out], f"{where}.device[].address")
        return tuple(out)
    count = table.get("devices", 1)
    first = table.get("first_address", 1)
    for key, value in (("devices", count), ("first_address", first)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: must be an integer")
    profile = _profile(table.get("profile", "thermo"), f"{where}.profile", base)
    try:
        return uniform_devices(profile, count, first)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
