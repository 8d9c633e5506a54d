"""Home Assistant MQTT discovery: which entity a register becomes, and its config. Pure.

A register's type in the device map decides the component: a writable bool is a ``switch``, a
read-only one a ``binary_sensor``; a writable enum with labels a ``select``; a writable number
a ``number`` (min/max from the register's limits or its type's range, step from its scale);
anything else a ``sensor``; a bitfield one ``binary_sensor`` per named bit. Every entity names
two availability topics (the bridge's and its device's, both must say ``online``) and the
device block (model, firmware, uid from IDENTIFY), so Home Assistant groups them per device.
:mod:`bridge.mqtt_core` decides the topics and when to publish.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from frames.register import INT_RANGE, RegisterDef

__all__ = ["OFF", "ON", "Entity", "component", "device_block", "entities", "entity_config"]

ON, OFF = "ON", "OFF"
Entity = tuple[str, str, RegisterDef, "str | None"]  # component, object id, register, bit name
# Home Assistant device classes for units that name exactly one quantity.
_DEVICE_CLASS = {
    "°C": "temperature", "°F": "temperature", "K": "temperature",
    "V": "voltage", "mV": "voltage", "A": "current", "mA": "current",
    "W": "power", "kW": "power", "Wh": "energy", "kWh": "energy",
    "Hz": "frequency", "s": "duration", "hPa": "pressure", "Pa": "pressure",
}  # fmt: skip
_TOTAL_UNITS = {"Wh", "kWh"}  # counters: state_class total_increasing


def component(reg: RegisterDef) -> str:
    """The Home Assistant component for a register (bitfields: one binary_sensor per bit)."""
    if reg.type == "bool":
        return "switch" if reg.writable else "binary_sensor"
    if reg.type == "bitfield":
        return "binary_sensor"
    if reg.type == "enum" and reg.labels:
        return "select" if reg.writable else "sensor"
    return "number" if reg.writable else "sensor"


def entities(registers: Sequence[RegisterDef]) -> list[Entity]:
    """(component, object id, register, bit name) of every entity of a device."""
    out: list[Entity] = []
    for reg in registers:
        if reg.type == "bitfield" and reg.bits:
            for _, bit in sorted(reg.bits.items()):
                out.append(("binary_sensor", f"{reg.name}_{bit}", reg, bit))
        else:
            out.append((component(reg), reg.name, reg, None))
    return out


def number_range(reg: RegisterDef) -> tuple[float, float]:
    """A number entity's min/max: the register's limits, else what its type can hold."""
    if reg.type == "f32":
        low, high = -1e9, 1e9
    else:
        lo, hi = INT_RANGE[reg.type]
        low, high = lo * reg.scale, hi * reg.scale
    return (low if reg.min is None else reg.min, high if reg.max is None else reg.max)


def device_block(ident: str, name: str, model: str, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The ``device`` of every entity of one device: IDENTIFY's answers where known."""
    model = identity.get("model") or model
    block: dict[str, Any] = {"identifiers": [ident], "name": name}
    if model:
        block["model"] = model
    firmware = identity.get("firmware")
    if isinstance(firmware, list):
        block["sw_version"] = ".".join(str(x) for x in firmware)
    elif firmware:
        block["sw_version"] = str(firmware)
    uid = identity.get("uid")
    if isinstance(uid, int):
        block["serial_number"] = f"{uid:08X}"
    return block


def entity_config(
    entity: Entity,
    *,
    unique_id: str,
    state_topic: str,
    availability: Sequence[str],
    device: Mapping[str, Any],
    qos: int = 0,
    expire_after_s: float = 0.0,
    origin: str = "framebridge",
) -> str:
    """The retained discovery config (JSON text) of one entity."""
    comp, _, reg, bit = entity
    name = (f"{reg.name} {bit}" if bit else reg.name).replace("_", " ")
    config: dict[str, Any] = {
        "name": name[:1].upper() + name[1:],
        "unique_id": unique_id,
        "state_topic": state_topic,
        "availability": [{"topic": t} for t in availability],
        "availability_mode": "all",
        "device": dict(device),
        "origin": {"name": origin},
        "qos": qos,
    }
    if expire_after_s > 0:
        config["expire_after"] = max(1, math.ceil(expire_after_s))
    if comp in ("switch", "number", "select"):
        config["command_topic"] = f"{state_topic}/set"
    if comp in ("binary_sensor", "switch"):
        config["payload_on"], config["payload_off"] = ON, OFF
    if comp == "switch":
        config["state_on"], config["state_off"] = ON, OFF
    if comp == "select":
        config["options"] = [label for _, label in sorted(reg.labels.items())]
    if comp in ("sensor", "number") and reg.unit:
        config["unit_of_measurement"] = reg.unit
        device_class = _DEVICE_CLASS.get(reg.unit)
        if device_class:
            config["device_class"] = device_class
    if comp == "sensor":
        if reg.type == "enum":
            config["device_class"] = "enum"
            config["options"] = [label for _, label in sorted(reg.labels.items())]
        else:
            config["state_class"] = (
                "total_increasing" if reg.unit in _TOTAL_UNITS else "measurement"
            )
    if comp == "number":
        config["min"], config["max"] = number_range(reg)
        config["step"] = reg.scale if reg.type != "f32" or reg.scale != 1.0 else 0.001
        config["mode"] = "box"
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False)
