"""Device profiles: a ``frames`` device map brought to life: identity, initial values, behaviour.

What a device *is* (model, register map, types, scales, units) is a
:class:`frames.devicemap.DeviceMap`, loaded by :func:`frames.devicemap.load_device_map` from the
same TOML files (shipped in ``frames/devices/``). A profile adds what only a simulator needs: a
firmware version and uid for IDENTIFY, and per register an ``initial`` value and a
``behaviour``. The map part is parsed by ``frames`` only (no second copy of that parsing here);
this module reads the simulator's keys. Every problem is a :class:`ProfileError` whose message
starts with the file and the key (``thermo.toml: registers[2].scale: ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from frames.devicemap import (
    DEVICE_DIR,
    DeviceMap,
    available_device_maps,
    parse_device_map,
    read_device_file,
)
from frames.errors import DeviceMapError
from frames.register import RegisterDef, Value

from .behaviours import Behaviour, Constant, behaviour_from_table
from .errors import ProfileError, RegisterError, UnknownRegister
from .registers import Register

__all__ = ["PROFILE_DIR", "Profile", "available_profiles", "load_profile", "parse_profile"]

PROFILE_DIR = DEVICE_DIR  # the shipped device files: map and simulator keys in one file

_Fail = Callable[[str, str], ProfileError]


@dataclass(frozen=True)
class Profile:
    """A device type. ``registers`` is ordered by address; ``uid`` is the base the simulator
    adds each device's address to, so devices on one bus have distinct uids."""

    name: str
    model: str
    firmware: tuple[int, int, int]
    uid: int
    registers: tuple[Register, ...]
    description: str = ""
    source: str = "<memory>"

    @cached_property
    def device_map(self) -> DeviceMap:
        """The map part, as the bridge and dashboards see it."""
        return DeviceMap(self.name, self.model, self.registers, self.description, self.source)

    @cached_property
    def _by_address(self) -> dict[int, Register]:
        return {r.address: r for r in self.registers}

    @cached_property
    def _by_word(self) -> dict[int, tuple[Register, int]]:
        return {r.address + i: (r, i) for r in self.registers for i in range(r.count)}

    @cached_property
    def _by_name(self) -> dict[str, Register]:
        return {r.name: r for r in self.registers}

    @property
    def register_count(self) -> int:
        return len(self.registers)

    @property
    def firmware_version(self) -> str:
        return ".".join(str(n) for n in self.firmware)

    def find(self, key: int | str) -> Register | None:
        if isinstance(key, int):
            return self._by_address.get(key)
        return self._by_name.get(key)

    def word(self, address: int) -> tuple[Register, int] | None:
        """The register covering word ``address`` and the word's index in it."""
        return self._by_word.get(address)

    def register(self, key: int | str) -> Register:
        """The register by address or name; :class:`UnknownRegister` when there is none."""
        reg = self.find(key)
        if reg is None:
            raise UnknownRegister(f"{self.name}: no register {key!r}")
        return reg

    def decode(self, start: int, raws: Iterable[int]) -> dict[str, Value]:
        """Raw words read from ``start`` onwards → ``{name: engineering value}``.

        Addresses the map does not define are skipped, so any READ_REGS reply can be decoded.
        """
        return self.device_map.decode(start, list(raws))

    def encode(self, values: Mapping[str, float]) -> dict[int, int]:
        """``{name: engineering value}`` → ``{address: raw word}``, ready for WRITE_REG(S).

        Raises :class:`UnknownRegister` or :class:`~firmware_sim.errors.RegisterError` (code 3,
        value does not fit) before anything is sent.
        """
        out: dict[int, int] = {}
        for name, value in values.items():
            reg = self.register(name)
            for i, word in enumerate(reg.to_words(value)):
                out[reg.address + i] = word
        return out

    def describe(self) -> list[dict[str, Any]]:
        """The register map as JSON-ready dicts (for dashboards and ``framebridge sim``)."""
        return [{**r.describe(), "behaviour": r.behaviour.kind} for r in self.registers]


def available_profiles() -> list[str]:
    """Names of the profiles shipped (the device maps ``frames`` ships)."""
    return available_device_maps()


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``"thermo"``) or any TOML file by path."""
    try:
        path, data = read_device_file(name_or_path)
    except DeviceMapError as exc:
        detail = exc.detail.replace("no such device map", "no such profile")
        raise ProfileError(exc.source, exc.key, detail) from exc
    return parse_profile(data, name=path.stem, source=str(path))


def parse_profile(data: Mapping[str, Any], *, name: str, source: str = "<memory>") -> Profile:
    """A profile from already-parsed TOML (a dict), validated: the map by ``frames``, the
    simulator's keys here."""

    def fail(key: str, message: str) -> ProfileError:
        return ProfileError(source, key, message)

    try:
        device_map = parse_device_map(data, name=name, source=source)
    except DeviceMapError as exc:
        raise fail(exc.key, exc.detail) from exc
    firmware = _firmware(data.get("firmware", [1, 0, 0]), fail)
    uid = data.get("uid", 0)
    if not _is_int(uid) or not 0 <= uid <= 0xFFFFFFFF:
        raise fail("uid", f"must be an integer 0..0xFFFFFFFF, got {uid!r}")
    tables = cast(list[dict[str, Any]], data["registers"])
    index = {t["name"]: i for i, t in enumerate(tables)}
    registers = tuple(
        _simulated(reg, index[reg.name], tables[index[reg.name]], fail)
        for reg in device_map.registers
    )
    return Profile(
        name=name,
        model=device_map.model,
        firmware=firmware,
        uid=uid,
        registers=registers,
        description=device_map.description,
        source=source,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _firmware(value: object, fail: _Fail) -> tuple[int, int, int]:
    parts: list[object]
    if isinstance(value, str):
        parts = list(value.split("."))
        try:
            parts = [int(p) for p in cast(list[str], parts)]
        except ValueError:
            parts = []
    elif isinstance(value, list):
        parts = list(value)
    else:
        parts = []
    if len(parts) != 3 or not all(_is_int(p) and 0 <= cast(int, p) <= 255 for p in parts):
        raise fail(
            "firmware", f'must be three numbers 0..255 ("1.2.0" or [1, 2, 0]), got {value!r}'
        )
    return cast(tuple[int, int, int], tuple(parts))


def _simulated(reg: RegisterDef, index: int, table: Mapping[str, Any], fail: _Fail) -> Register:
    """The map's register plus the simulator's keys (``initial``, ``behaviour``), validated."""
    where = f"registers[{index}] ({reg.name})"
    initial = table.get("initial", 0)
    if not _is_number(initial) and not isinstance(initial, bool):
        raise fail(f"{where}.initial", f"has the wrong type: {initial!r}")
    behaviour: Behaviour = Constant()
    if "behaviour" in table:
        try:
            behaviour = behaviour_from_table(table["behaviour"])
        except ValueError as exc:
            raise fail(f"{where}.behaviour", str(exc)) from exc
    base = {f.name: getattr(reg, f.name) for f in fields(RegisterDef)}
    sim = Register(**base, initial=float(initial), behaviour=behaviour)
    try:
        sim.to_words(sim.initial)
    except RegisterError as exc:
        raise fail(f"{where}.initial", str(exc)) from exc
    return sim
