"""What the bridge says on MQTT and what it accepts from it: topics, payloads, discovery. Pure.

The adapter (:mod:`bridge.mqtt`) owns the broker connection; this core takes bus messages (the
same dicts WebSocket clients get), command topics and payloads, and ``now``, and returns the
:class:`Publish` messages to send or the :class:`WriteCommand` to submit. No client library, no
task, no clock: tested without a broker.

Topics (``P`` = ``[mqtt] prefix``, ``D`` = ``discovery_prefix``)::

    P/$availability                        the bridge: online / offline (the broker's will)
    P/<bus>/<addr>/$availability           a device: online / offline (and offline on bus_down)
    P/<bus>/<addr>/<register>              its value: scaled number, ON/OFF, an enum's label
    P/<bus>/<addr>/<register>/<bit>        a bitfield's named bit: ON/OFF
    P/<bus>/<addr>/<register>/set          commands (numbers in the register's unit, labels, ON/OFF)
    P/$retained                            JSON list of every retained topic this bridge owns
    D/<component>/<device id>/<object>/config     Home Assistant discovery (retained)

``$`` levels cannot clash with a bus or register name (those are identifiers). ``P/$retained``
is how a device that left the configuration is removed: on connect the bridge reads its old
list back (retained) and clears every topic on it that the new configuration no longer has
(an empty retained payload, which is also Home Assistant's "remove this entity").

A state is published when it changes, and again when ``refresh_s`` has passed since it was last
sent (so Home Assistant's ``expire_after`` does not fire for a value that is merely steady).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from frames.register import RegisterDef, Value

from .mqtt_discovery import OFF, ON, component, device_block, entities, entity_config
from .mqtt_payload import MAX_SET_PAYLOAD, CommandRefused, format_value, parse_set_payload

__all__ = [
    "MAX_SET_PAYLOAD",
    "CommandRefused",
    "DeviceSpec",
    "MqttCore",
    "Publish",
    "WriteCommand",
    "component",
    "expire_after",
    "format_value",
    "parse_set_payload",
]

ONLINE, OFFLINE = "online", "offline"
_IDENTIFY = 0x01


@dataclass(frozen=True, slots=True)
class Publish:
    """One MQTT message to send. An empty ``payload`` with ``retain`` clears a retained topic."""

    topic: str
    payload: str
    retain: bool
    qos: int


@dataclass(frozen=True)
class DeviceSpec:
    """A configured device with a register map: what is announced for it."""

    bus: str
    addr: int
    registers: tuple[RegisterDef, ...]
    name: str = ""
    model: str = ""  # the device map's model, until IDENTIFY says better
    expire_after_s: float = 0.0  # 0: Home Assistant never expires its values


@dataclass(frozen=True, slots=True)
class WriteCommand:
    """A ``/set`` that passed every check the core can make: a request to submit."""

    bus: str
    addr: int
    register: RegisterDef
    value: Value
    words: tuple[int, ...]

    @property
    def cmd(self) -> str:
        return "write_reg" if len(self.words) == 1 else "write_regs"

    @property
    def args(self) -> dict[str, Any]:
        if len(self.words) == 1:
            return {"reg": self.register.address, "value": self.words[0]}
        return {"start": self.register.address, "values": list(self.words)}


def _level(text: str) -> str:
    """A name as one topic level (no / + # or NUL)."""
    return "".join("_" if ch in "/+#\0" else ch for ch in text) or "_"


def _ident(text: str) -> str:
    """A name as a Home Assistant node/object id ([a-zA-Z0-9_-])."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in text)


@dataclass
class _Device:
    spec: DeviceSpec
    by_name: dict[str, RegisterDef]
    ident: str  # Home Assistant device id and unique_id stem
    online: bool | None = None
    identity: dict[str, Any] = field(default_factory=dict)


class MqttCore:
    """Everything the bridge publishes to and accepts from MQTT, for one bridge's devices."""

    def __init__(
        self,
        devices: Iterable[DeviceSpec],
        *,
        prefix: str = "framebridge",
        discovery_prefix: str = "homeassistant",
        discovery: bool = True,
        qos: int = 0,
        retain: bool = True,
        origin: str = "framebridge",
        refresh_s: float = 0.0,
    ) -> None:
        """``refresh_s``: resend an unchanged state after this long (0: only on change)."""
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.discovery = discovery
        self.qos = qos
        self.retain = retain
        self.origin = origin
        self.refresh_s = refresh_s
        self.base = _ident(prefix.replace("/", "_"))
        self.devices: dict[tuple[str, int], _Device] = {}
        for spec in devices:
            self.devices[(spec.bus, spec.addr)] = _Device(
                spec,
                {r.name: r for r in spec.registers},
                f"{self.base}_{_ident(spec.bus)}_{spec.addr}",
            )
        self.bus_up: dict[str, bool] = {}
        # state topic → (payload, when last sent); the latest value of every register
        self._states: dict[str, tuple[str, float]] = {}
        self.owned = frozenset(self._owned())

    # -- topics ------------------------------------------------------------------------------

    @property
    def availability_topic(self) -> str:
        return f"{self.prefix}/$availability"

    @property
    def retained_list_topic(self) -> str:
        return f"{self.prefix}/$retained"

    @property
    def command_filter(self) -> str:
        return f"{self.prefix}/+/+/+/set"

    @property
    def ha_status_topic(self) -> str:
        return f"{self.discovery_prefix}/status"

    def device_topic(self, bus: str, addr: int) -> str:
        return f"{self.prefix}/{_level(bus)}/{addr}"

    def device_availability(self, bus: str, addr: int) -> str:
        return f"{self.device_topic(bus, addr)}/$availability"

    def state_topic(self, bus: str, addr: int, reg: str, bit: str | None = None) -> str:
        topic = f"{self.device_topic(bus, addr)}/{_level(reg)}"
        return topic if bit is None else f"{topic}/{_level(bit)}"

    def _config_topic(self, dev: _Device, comp: str, obj: str) -> str:
        return f"{self.discovery_prefix}/{comp}/{dev.ident}/{_ident(obj)}/config"

    def _owned(self) -> list[str]:
        """Every retained topic this configuration publishes (what ``$retained`` lists)."""
        topics: list[str] = []
        for dev in self.devices.values():
            spec = dev.spec
            if self.retain:
                topics.append(self.device_availability(spec.bus, spec.addr))
            for comp, obj, reg, bit in entities(dev.spec.registers):
                if self.discovery:
                    topics.append(self._config_topic(dev, comp, obj))
                if self.retain:
                    topics.append(self.state_topic(spec.bus, spec.addr, reg.name, bit))
            if self.retain:
                topics += [
                    self.state_topic(spec.bus, spec.addr, r.name)
                    for r in spec.registers
                    if r.type == "bitfield" and r.bits
                ]
        return sorted(set(topics))

    def _msg(self, topic: str, payload: str, retain: bool | None = None) -> Publish:
        return Publish(topic, payload, self.retain if retain is None else retain, self.qos)

    # -- connection --------------------------------------------------------------------------

    def online_messages(self) -> list[Publish]:
        """On every (re)connect: the bridge online, discovery, availability, the last values, and
        the list of owned retained topics (a broker that lost its retained messages gets them
        all back)."""
        out = [self._msg(self.availability_topic, ONLINE, True)]
        out += self.discovery_messages()
        for dev in self.devices.values():
            out += self._availability(dev)
        out += [self._msg(t, p) for t, (p, _) in self._states.items()]
        out.append(self._msg(self.retained_list_topic, json.dumps(sorted(self.owned)), True))
        return out

    def offline_message(self) -> Publish:
        """The bridge's will, and what a graceful stop publishes."""
        return self._msg(self.availability_topic, OFFLINE, True)

    def stale_messages(self, payload: bytes) -> list[Publish]:
        """The old ``$retained`` list (read back on connect) → clear what is no longer owned."""
        try:
            old = json.loads(payload.decode("utf-8")) if payload else []
        except (UnicodeDecodeError, ValueError):
            return []
        if not isinstance(old, list):
            return []
        stale = sorted({t for t in old if isinstance(t, str) and t} - self.owned)
        prefixes = (f"{self.prefix}/", f"{self.discovery_prefix}/")
        return [Publish(t, "", True, self.qos) for t in stale if t.startswith(prefixes)]

    def ha_status(self, payload: bytes) -> list[Publish]:
        """Home Assistant came back (``online`` on its status topic): announce everything again."""
        return self.online_messages() if payload.strip() == b"online" else []

    # -- discovery ---------------------------------------------------------------------------

    def discovery_messages(self, only: _Device | None = None) -> list[Publish]:
        if not self.discovery:
            return []
        devices = [only] if only is not None else list(self.devices.values())
        out = []
        for dev in devices:
            spec = dev.spec
            name = spec.name or f"{spec.model or 'device'} {spec.bus}/{spec.addr}"
            device = device_block(dev.ident, name, spec.model, dev.identity)
            availability = [self.availability_topic, self.device_availability(spec.bus, spec.addr)]
            for entity in entities(spec.registers):
                comp, obj, reg, bit = entity
                config = entity_config(
                    entity,
                    unique_id=f"{dev.ident}_{_ident(obj)}",
                    state_topic=self.state_topic(spec.bus, spec.addr, reg.name, bit),
                    availability=availability,
                    device=device,
                    qos=self.qos,
                    expire_after_s=spec.expire_after_s,
                    origin=self.origin,
                )
                out.append(Publish(self._config_topic(dev, comp, obj), config, True, self.qos))
        return out

    # -- bus messages ------------------------------------------------------------------------

    def bus_message(self, bus: str, msg: Mapping[str, Any], now: float) -> list[Publish]:
        """One bus message (as WebSocket clients get it) → what to publish."""
        kind = msg.get("type")
        if kind == "frame":
            if msg.get("dir") != "rx" or msg.get("kind") is not None:
                return []
            dev = self.devices.get((bus, msg.get("addr", -1)))
            fields = msg.get("fields")
            if dev is None or not isinstance(fields, dict):
                return []
            named = fields.get("named")
            if isinstance(named, dict):
                return self.values(dev, named, now)
            if msg.get("cmd") == _IDENTIFY and "model" in fields:
                return self.identified(bus, dev.spec.addr, fields)
            return []
        if kind == "event":
            event = msg.get("event")
            if event in ("device_online", "device_offline"):
                dev = self.devices.get((bus, msg.get("addr", -1)))
                if dev is None:
                    return []
                dev.online = event == "device_online"
                return self._availability(dev)
            if event in ("bus_up", "bus_down"):
                self.bus_up[bus] = event == "bus_up"
                out: list[Publish] = []
                for (b, _), dev in self.devices.items():
                    if b == bus:
                        out += self._availability(dev)
                return out
        return []

    def _availability(self, dev: _Device) -> list[Publish]:
        if dev.online is None:
            return []  # not polled yet: say nothing rather than guess
        up = dev.online and self.bus_up.get(dev.spec.bus, True)
        topic = self.device_availability(dev.spec.bus, dev.spec.addr)
        return [self._msg(topic, ONLINE if up else OFFLINE)]

    def seed(self, bus: str, addr: int, online: bool | None, identity: Mapping[str, Any]) -> None:
        """What the device book already knew when the adapter started."""
        dev = self.devices.get((bus, addr))
        if dev is not None:
            dev.online = online
            dev.identity = dict(identity)

    def identified(self, bus: str, addr: int, fields: Mapping[str, Any]) -> list[Publish]:
        """An IDENTIFY reply: the device block gains model, firmware and uid (re-announced)."""
        dev = self.devices.get((bus, addr))
        if dev is None:
            return []
        identity = {k: fields.get(k) for k in ("model", "firmware", "uid")}
        if identity == dev.identity:
            return []
        dev.identity = identity
        return self.discovery_messages(dev)

    def values(self, dev: _Device, named: Mapping[str, Any], now: float) -> list[Publish]:
        """Named register values (``fields.named`` of a read reply) → changed states."""
        out: list[Publish] = []
        spec = dev.spec
        for name, value in named.items():
            reg = dev.by_name.get(name)
            if reg is None:
                continue
            self._state(
                out, self.state_topic(spec.bus, spec.addr, name), format_value(reg, value), now
            )
            if reg.type == "bitfield" and reg.bits and isinstance(value, int):
                for bit, bit_name in sorted(reg.bits.items()):
                    topic = self.state_topic(spec.bus, spec.addr, name, bit_name)
                    self._state(out, topic, ON if value >> bit & 1 else OFF, now)
        return out

    def _state(self, out: list[Publish], topic: str, payload: str, now: float) -> None:
        last = self._states.get(topic)
        refresh = self.refresh_s
        if last is not None and last[0] == payload and (refresh <= 0 or now - last[1] < refresh):
            return
        self._states[topic] = (payload, now)
        out.append(self._msg(topic, payload))

    def state(self, topic: str) -> str | None:
        """The last payload published (or to be published) on a state topic."""
        last = self._states.get(topic)
        return None if last is None else last[0]

    # -- commands ----------------------------------------------------------------------------

    def command(self, topic: str, payload: bytes) -> WriteCommand:
        """A message on ``P/<bus>/<addr>/<register>/set`` → the write to submit."""
        head = f"{self.prefix}/"
        parts = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(parts) != 4 or parts[3] != "set" or not parts[1].isdigit():
            raise CommandRefused("unknown_topic", f"not a command topic: {topic[:120]!r}")
        bus, addr, name = parts[0], int(parts[1]), parts[2]
        dev = next(
            (d for (b, a), d in self.devices.items() if _level(b) == bus and a == addr), None
        )
        if dev is None:
            raise CommandRefused("unknown_topic", f"no device {bus}/{addr} with a register map")
        reg = dev.by_name.get(name)
        if reg is None:
            raise CommandRefused("unknown_topic", f"device {bus}/{addr} has no register {name!r}")
        value, words = parse_set_payload(reg, payload)
        return WriteCommand(dev.spec.bus, addr, reg, value, words)

    def written(self, cmd: WriteCommand, now: float) -> list[Publish]:
        """The device accepted a write: its new state at once, before the next poll."""
        dev = self.devices.get((cmd.bus, cmd.addr))
        return [] if dev is None else self.values(dev, {cmd.register.name: cmd.value}, now)


def expire_after(intervals: Sequence[float], explicit: float | None) -> float:
    """Home Assistant's ``expire_after`` for a bus: the configured one, else 5 x its slowest
    poll (at least 30 s), so one or two missed polls do not blank the dashboard."""
    if explicit is not None:
        return explicit
    return max(30.0, 5 * max(intervals, default=0.0))
