"""What a device *is*: its register map, as data, and the TOML loader. Pure.

Why it lives in ``frames``: the bridge names and scales what it polls, the simulator brings a
map to life, the dashboard and the C firmware read the same map; none of them should depend on
another for what a device is. The register types and their conversions are in
:mod:`frames.register` (:class:`RegisterDef`, re-exported here).

A device file may also carry the simulator's keys (``firmware``, ``uid``, and per register
``initial`` and ``behaviour``): :func:`parse_device_map` skips those (the simulator reads them,
:mod:`firmware_sim.profile`) and refuses any other unknown key. Every problem is a
:class:`~frames.errors.DeviceMapError` whose message starts with the file and the key
(``thermo.toml: registers[2] (setpoint).scale: ...``). The shipped maps (``thermo``,
``power_meter``, ``io_board``) are in ``frames/devices/``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import DeviceMapError, FrameValueError
from .register import REGISTER_TYPES, RegisterDef, Value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEVICE_DIR",
    "REGISTER_TYPES",
    "DeviceMap",
    "DeviceMapError",
    "RegisterDef",
    "Value",
    "available_device_maps",
    "device_file",
    "load_device_map",
    "parse_device_map",
    "read_device_file",
]

DEVICE_DIR = Path(__file__).resolve().parent / "devices"

# The keys a device file may hold; the simulator's are skipped here and read by firmware_sim.
_TOP_KEYS = {"model", "description", "registers"}
_SIM_TOP_KEYS = {"firmware", "uid"}
_REGISTER_KEYS = {
    "address", "name", "type", "scale", "unit", "writable", "min", "max", "description",
    "labels", "bits", "word_order",
}  # fmt: skip
_SIM_REGISTER_KEYS = {"initial", "behaviour"}


@dataclass(frozen=True)
class DeviceMap:
    """A device type's register map. ``registers`` is ordered by address; no two overlap."""

    name: str
    model: str
    registers: tuple[RegisterDef, ...]
    description: str = ""
    source: str = "<memory>"

    def __post_init__(self) -> None:
        covered: dict[int, str] = {}
        for reg in self.registers:
            for address in range(reg.address, reg.address + reg.count):
                if address in covered:
                    raise FrameValueError(
                        f"{reg.name} at {reg.address} overlaps {covered[address]} (word {address})"
                    )
                covered[address] = reg.name

    @cached_property
    def _by_address(self) -> dict[int, RegisterDef]:
        return {r.address: r for r in self.registers}

    @cached_property
    def _by_name(self) -> dict[str, RegisterDef]:
        return {r.name: r for r in self.registers}

    def find(self, key: int | str) -> RegisterDef | None:
        """The register at an address (its first word) or by name; None when there is none."""
        if isinstance(key, int):
            return self._by_address.get(key)
        return self._by_name.get(key)

    def span(self) -> tuple[int, int] | None:
        """(first address, word count) that one read covering every register needs."""
        if not self.registers:
            return None
        first = self.registers[0].address
        last = max(r.address + r.count for r in self.registers)
        return first, last - first

    def decode(self, start: int, words: Sequence[int]) -> dict[str, Value]:
        """Raw words read from ``start`` on → ``{name: value}`` for every register wholly
        inside them; words the map does not define are skipped."""
        out: dict[str, Value] = {}
        end = start + len(words)
        for reg in self.registers:
            if start <= reg.address and reg.address + reg.count <= end:
                i = reg.address - start
                out[reg.name] = reg.decode(words[i : i + reg.count])
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.registers]


def available_device_maps() -> list[str]:
    """Names of the device maps shipped with ``frames``."""
    return sorted(p.stem for p in DEVICE_DIR.glob("*.toml"))


def device_file(name_or_path: str | Path) -> Path:
    """The file for a shipped name (``"thermo"``) or a path (one with ``/`` or ``.toml``)."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        return Path(text)
    path = DEVICE_DIR / f"{text}.toml"
    if not path.is_file():
        raise DeviceMapError(
            text, "", f"no such device map (shipped: {', '.join(available_device_maps())})"
        )
    return path


def read_device_file(name_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The file's path and parsed TOML; :class:`DeviceMapError` when it cannot be read."""
    path = device_file(name_or_path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DeviceMapError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return path, tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DeviceMapError(str(path), "", f"invalid TOML: {exc}") from exc


def load_device_map(name_or_path: str | Path) -> DeviceMap:
    """A shipped device map by name (``"thermo"``, ``"power_meter"``, ``"io_board"``) or any
    device TOML file by path."""
    path, data = read_device_file(name_or_path)
    return parse_device_map(data, name=path.stem, source=str(path))


def parse_device_map(data: Mapping[str, Any], *, name: str, source: str = "<memory>") -> DeviceMap:
    """A map from already-parsed TOML, validated; the simulator's keys are skipped."""

    def fail(key: str, message: str) -> DeviceMapError:
        return DeviceMapError(source, key, message)

    for key in data:
        if key not in _TOP_KEYS and key not in _SIM_TOP_KEYS:
            raise fail(key, f"unknown key (expected {sorted(_TOP_KEYS | _SIM_TOP_KEYS)})")
    model = data.get("model")
    if not isinstance(model, str) or not model or not model.isascii() or len(model) > 255:
        raise fail("model", "must be a non-empty ASCII string of at most 255 characters")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be a string")
    tables = data.get("registers")
    if not isinstance(tables, list) or not tables:
        raise fail("registers", "must be a non-empty array of tables ([[registers]])")
    if len(tables) > 0xFFFF:
        raise fail("registers", "too many registers")
    registers = [_register(i, t, fail) for i, t in enumerate(tables)]
    seen_addr: dict[int, int] = {}
    seen_name: dict[str, int] = {}
    for i, reg in enumerate(registers):
        for word in range(reg.address, reg.address + reg.count):
            if word in seen_addr:
                raise fail(
                    f"registers[{i}].address", f"{word} repeats registers[{seen_addr[word]}]"
                )
            seen_addr[word] = i
        if reg.name in seen_name:
            raise fail(
                f"registers[{i}].name", f"{reg.name!r} repeats registers[{seen_name[reg.name]}]"
            )
        seen_name[reg.name] = i
    return DeviceMap(
        name=name,
        model=model,
        registers=tuple(sorted(registers, key=lambda r: r.address)),
        description=description,
        source=source,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _names(value: object, what: str, where: str, fail: Any) -> dict[int, str]:
    """``labels``/``bits``: a table of "number" = "name" (TOML keys are strings)."""
    if not isinstance(value, dict):
        raise fail(f"{where}.{what}", 'must be a table like { "0" = "off", "1" = "on" }')
    out: dict[int, str] = {}
    for key, name in value.items():
        try:
            number = int(key, 0)
        except ValueError:
            raise fail(f"{where}.{what}", f"key {key!r} is not a number") from None
        if not isinstance(name, str) or not name:
            raise fail(f"{where}.{what}", f"{key}: the name must be a non-empty string")
        out[number] = name
    return out


def _register(index: int, table: object, fail: Any) -> RegisterDef:
    where = f"registers[{index}]"
    if not isinstance(table, dict):
        raise fail(where, "must be a table")
    for key in table:
        if key not in _REGISTER_KEYS and key not in _SIM_REGISTER_KEYS:
            expected = sorted(_REGISTER_KEYS | _SIM_REGISTER_KEYS)
            raise fail(f"{where}.{key}", f"unknown key (expected {expected})")
    address = table.get("address")
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFFFF:
        raise fail(f"{where}.address", f"must be an integer 0..65535, got {address!r}")
    name = table.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise fail(f"{where}.name", f"must be an identifier (letters, digits, _), got {name!r}")
    where = f"{where} ({name})"
    rtype = table.get("type", "u16")
    if rtype not in REGISTER_TYPES:
        raise fail(f"{where}.type", f"must be one of {list(REGISTER_TYPES)}, got {rtype!r}")
    checks: list[tuple[str, Any, Any]] = [
        ("scale", 1.0, _is_number),
        ("unit", "", lambda v: isinstance(v, str)),
        ("writable", False, lambda v: isinstance(v, bool)),
        ("min", None, _is_number),
        ("max", None, _is_number),
        ("description", "", lambda v: isinstance(v, str)),
        ("word_order", "big", lambda v: isinstance(v, str)),
    ]
    values: dict[str, Any] = {}
    for key, default, ok in checks:
        value = table.get(key, default)
        if value is not default and not ok(value):
            raise fail(f"{where}.{key}", f"has the wrong type: {value!r}")
        values[key] = value
    labels = _names(table["labels"], "labels", where, fail) if "labels" in table else {}
    bits = _names(table["bits"], "bits", where, fail) if "bits" in table else {}
    try:
        return RegisterDef(
            address=address,
            name=name,
            type=rtype,
            scale=float(values["scale"]),
            unit=values["unit"],
            writable=values["writable"],
            min=None if values["min"] is None else float(values["min"]),
            max=None if values["max"] is None else float(values["max"]),
            description=values["description"],
            labels=labels,
            bits=bits,
            word_order=values["word_order"],
        )
    except FrameValueError as exc:
        key, _, message = str(exc).partition(": ")
        raise fail(f"{where}.{key}", message) from exc
