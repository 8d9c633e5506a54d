"""Device profiles: a model, firmware version, uid and register map, loaded from TOML.

A profile is data, validated once when loaded; every problem is a :class:`ProfileError` whose
message starts with the file and the key (``thermo.toml: registers[2].scale: ...``) so the
author finds it without reading Python. The bridge loads profiles too, to put names, units and
scales on the raw words it polls: :meth:`Profile.decode` and :meth:`Profile.encode` do that.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from .behaviours import Behaviour, Constant, behaviour_from_table
from .errors import ProfileError, RegisterError, UnknownRegister
from .registers import TYPES, Register, RegisterType

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["PROFILE_DIR", "Profile", "available_profiles", "load_profile", "parse_profile"]

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

_Fail = Callable[[str, str], ProfileError]

_TOP_KEYS = {"model", "firmware", "uid", "description", "registers"}
_REGISTER_KEYS = {
    "address",
    "name",
    "type",
    "scale",
    "unit",
    "writable",
    "initial",
    "behaviour",
    "min",
    "max",
    "description",
}


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
    def _by_address(self) -> dict[int, Register]:
        return {r.address: r for r in self.registers}

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

    def register(self, key: int | str) -> Register:
        """The register by address or name; :class:`UnknownRegister` when there is none."""
        reg = self.find(key)
        if reg is None:
            raise UnknownRegister(f"{self.name}: no register {key!r}")
        return reg

    def decode(self, start: int, raws: Iterable[int]) -> dict[str, float | int]:
        """Raw words read from ``start`` onwards → ``{name: engineering value}``.

        Addresses the map does not define are skipped, so any READ_REGS reply can be decoded.
        """
        out: dict[str, float | int] = {}
        for address, raw in enumerate(raws, start):
            reg = self._by_address.get(address)
            if reg is not None:
                out[reg.name] = reg.to_value(raw)
        return out

    def encode(self, values: Mapping[str, float]) -> dict[int, int]:
        """``{name: engineering value}`` → ``{address: raw word}``, ready for WRITE_REG(S).

        Raises :class:`UnknownRegister` or :class:`~firmware_sim.errors.RegisterError` (code 3,
        value does not fit) before anything is sent.
        """
        return {self.register(n).address: self.register(n).to_raw(v) for n, v in values.items()}

    def describe(self) -> list[dict[str, Any]]:
        """The register map as JSON-ready dicts (for dashboards and ``framebridge sim``)."""
        return [
            {
                "address": r.address,
                "name": r.name,
                "type": r.type,
                "scale": r.scale,
                "unit": r.unit,
                "writable": r.writable,
                "behaviour": r.behaviour.kind,
                "description": r.description,
            }
            for r in self.registers
        ]


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``"thermo"``) or any TOML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text):
        path = PROFILE_DIR / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(
                text, "", f"no such profile (shipped: {', '.join(available_profiles())})"
            )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(str(path), "", f"invalid TOML: {exc}") from exc
    return parse_profile(data, name=path.stem, source=str(path))


def parse_profile(data: Mapping[str, Any], *, name: str, source: str = "<memory>") -> Profile:
    """A profile from already-parsed TOML (a dict), validated."""

    def fail(key: str, message: str) -> ProfileError:
        return ProfileError(source, key, message)

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(key, f"unknown key (expected {sorted(_TOP_KEYS)})")
    model = data.get("model")
    if not isinstance(model, str) or not model or not model.isascii() or len(model) > 255:
        raise fail("model", "must be a non-empty ASCII string of at most 255 characters")
    firmware = _firmware(data.get("firmware", [1, 0, 0]), fail)
    uid = data.get("uid", 0)
    if not _is_int(uid) or not 0 <= uid <= 0xFFFFFFFF:
        raise fail("uid", f"must be an integer 0..0xFFFFFFFF, got {uid!r}")
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
        if reg.address in seen_addr:
            raise fail(
                f"registers[{i}].address",
                f"{reg.address} repeats registers[{seen_addr[reg.address]}]",
            )
        if reg.name in seen_name:
            raise fail(
                f"registers[{i}].name", f"{reg.name!r} repeats registers[{seen_name[reg.name]}]"
            )
        seen_addr[reg.address] = i
        seen_name[reg.name] = i
    return Profile(
        name=name,
        model=model,
        firmware=firmware,
        uid=uid,
        registers=tuple(sorted(registers, key=lambda r: r.address)),
        description=description,
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


def _register(index: int, table: object, fail: _Fail) -> Register:
    where = f"registers[{index}]"
    if not isinstance(table, dict):
        raise fail(where, "must be a table")
    for key in table:
        if key not in _REGISTER_KEYS:
            raise fail(f"{where}.{key}", f"unknown key (expected {sorted(_REGISTER_KEYS)})")
    address = table.get("address")
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFFFF:
        raise fail(f"{where}.address", f"must be an integer 0..65535, got {address!r}")
    name = table.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise fail(f"{where}.name", f"must be an identifier (letters, digits, _), got {name!r}")
    where = f"{where} ({name})"
    rtype = table.get("type", "u16")
    if rtype not in TYPES:
        raise fail(f"{where}.type", f"must be one of {sorted(TYPES)}, got {rtype!r}")
    checks: list[tuple[str, Any, Any]] = [
        ("scale", 1.0, _is_number),
        ("unit", "", lambda v: isinstance(v, str)),
        ("writable", False, lambda v: isinstance(v, bool)),
        ("initial", 0, _is_number),
        ("min", None, _is_number),
        ("max", None, _is_number),
        ("description", "", lambda v: isinstance(v, str)),
    ]
    values: dict[str, Any] = {}
    for key, default, ok in checks:
        value = table.get(key, default)
        if value is not default and not ok(value):
            raise fail(f"{where}.{key}", f"has the wrong type: {value!r}")
        values[key] = value
    behaviour: Behaviour = Constant()
    if "behaviour" in table:
        try:
            behaviour = behaviour_from_table(table["behaviour"])
        except ValueError as exc:
            raise fail(f"{where}.behaviour", str(exc)) from exc
    try:
        reg = Register(
            address=address,
            name=name,
            type=cast(RegisterType, rtype),
            scale=float(values["scale"]),
            unit=values["unit"],
            writable=values["writable"],
            initial=float(values["initial"]),
            behaviour=behaviour,
            minimum=None if values["min"] is None else float(values["min"]),
            maximum=None if values["max"] is None else float(values["max"]),
            description=values["description"],
        )
    except ValueError as exc:
        raise fail(f"{where}.{str(exc).split(':')[0]}", str(exc).split(": ", 1)[-1]) from exc
    try:
        reg.to_raw(reg.initial)
    except RegisterError as exc:
        raise fail(f"{where}.initial", str(exc)) from exc
    return reg
