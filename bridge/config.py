"""Configuration: TOML → frozen dataclasses, validated once, errors naming the key. Pure.

Every limit the bridge enforces is here with a safe default, so an empty ``[limits]`` table gives
a bridge that survives bad and slow clients. Unknown keys are errors: a typo such as
``queue_mesages`` would otherwise silently leave the default in force.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frames import DEFAULT_FORMAT, MAX_SLAVE_ADDR, FrameFormat
from frames.errors import FrameValueError

from .acl import TokenRule
from .config_services import MqttConfig, RedisConfig, mqtt_address, parse_mqtt, parse_redis
from .config_table import Table, dataclass_from, require_positive, strings
from .errors import ConfigError
from .guard import normalize_origin, split_host
from .tenants import Tenancy, TlsConfig
from .tenants_config import parse_tenancy, parse_tls

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found]

__all__ = [
    "BridgeConfig",
    "BusConfig",
    "CaptureConfig",
    "DeviceConfig",
    "HistoryConfig",
    "Limits",
    "MqttConfig",
    "PollConfig",
    "RedisConfig",
    "ServerConfig",
    "load_config",
    "mqtt_address",
    "parse_config",
    "parse_listen",
    "require_positive",
]


@dataclass(frozen=True)
class DeviceConfig:
    addr: int
    profile: str | None = None  # frames device map name or path: names and scales registers
    name: str = ""


@dataclass(frozen=True)
class PollConfig:
    """One poll: ``cmd`` with ``args`` (or raw ``data``) every ``interval_s`` to ``addrs``.

    ``addrs`` None means every device of the bus. A ``read_regs`` poll without args reads each
    device's whole profile register map.
    """

    cmd: int | str = "read_regs"
    args: Mapping[str, Any] | None = None
    data: bytes | None = None
    interval_s: float = 1.0
    addrs: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CaptureConfig:
    """``[bus.capture]``: record the bus's traffic into rotating pcapng files in ``dir``."""

    dir: str
    max_bytes: int = 64 * 1024 * 1024  # a file is closed at this size
    max_age_s: float = 3600.0  # ... or at this age
    keep: int = 10  # newest files kept per bus (older ones are deleted)


@dataclass(frozen=True)
class BusConfig:
    name: str
    url: str
    baudrate: int = 115200
    format: FrameFormat = DEFAULT_FORMAT
    timeout_s: float = 0.2
    retries: int = 1
    gap_s: float | None = None
    discard_echo: bool = False
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 2.0
    devices: tuple[DeviceConfig, ...] = ()
    polls: tuple[PollConfig, ...] = ()
    capture: CaptureConfig | None = None
    # A client request's timeout_s above this is refused (bad_request): one request must not
    # hold the wire for long (issue 10).
    max_timeout_s: float = 2.0
    client_requests: int = 4  # requests queued or on the wire per client on this bus; over: busy
    error_interval_s: float = 1.0  # CRC errors published as one counted crc_error per interval
    unsolicited_per_s: float = 5.0  # late/unexpected frames published per second at most


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    node: str = "node-1"
    tokens: tuple[str | TokenRule, ...] = ()  # empty: any hello token is accepted
    compression: bool = False  # permessage-deflate: ~3x memory per connection
    allowed_origins: tuple[str, ...] = ()  # browser pages besides the bridge's own ("*": any)
    allowed_hosts: tuple[str, ...] = ()  # Host names besides the listen address ("*": any)
    tls: TlsConfig | None = None  # wss:// and https:// (tenants; docs/tenants.md)


@dataclass(frozen=True)
class HistoryConfig:
    size: int = 1024  # messages kept per bus for resume
    ttl_s: float = 300.0


@dataclass(frozen=True)
class Limits:
    max_clients: int = 10_000  # over it: close 1013
    max_message_bytes: int = 64 * 1024  # client message bigger: close 1009
    queue_messages: int = 4096  # per client, over it: close 4000
    queue_bytes: int = 4 * 1024 * 1024
    batch_messages: int = 64
    batch_bytes: int = 64 * 1024
    request_queue: int = 32  # per bus, over it: reply busy
    hello_timeout_s: float = 5.0  # over it: close 4001
    heartbeat_s: float = 30.0
    ping_interval_s: float = 30.0  # 0: no WebSocket pings
    ping_timeout_s: float = 30.0  # 0: a missed pong never closes
    close_timeout_s: float = 5.0
    max_topics: int = 64
    offline_after: int = 1  # consecutive poll timeouts before device_offline
    shutdown_grace_s: float = 5.0  # in-flight requests get this long to finish on SIGTERM
    write_limit_bytes: int = 64 * 1024  # transport buffer before a writer waits for the socket
    incoming_messages: int = 16  # client messages read ahead of the handler (websockets max_queue)
    flush_clients: int = 100  # clients written per event-loop turn (bus I/O runs in between)
    stall_timeout_s: float = 30.0  # a client that reads nothing for this long: close 4000
    max_connections_per_source: int = 256  # per IPv4 address / IPv6 /64; over it: HTTP 429
    max_handshakes_per_source: int = 32  # not yet answered, per source; over it: closed at once
    limit_loopback: bool = False  # apply the per-source limits to 127.0.0.0/8 and ::1 too
    fd_reserve: int = 64  # descriptors kept below RLIMIT_NOFILE; WebSocket clients get 503
    log_burst: int = 20  # the same log message at most this often per log_interval_s
    log_interval_s: float = 10.0
    max_pending: int = 64  # connections without hello yet (apart from max_clients): oldest 1013
    message_rate: float = 200.0  # client messages per second per connection (token bucket) ...
    message_burst: int = 400  # ... and its size; beyond, the bridge stops reading the client
    flood_close_s: float = 10.0  # throttled without pause this long: close 1008
    answer_bytes: int = 16 * 1024  # queued for a client: read none of its messages until sent
    receive_buffer_bytes: int = 8 * 1024  # kernel receive buffer per client (SO_RCVBUF)
    send_buffer_bytes: int = 64 * 1024  # kernel send buffer per client (SO_SNDBUF)
    drain_window_s: float = 5.0  # on SIGTERM, clients get 1001 spread over this long (0: at once)


@dataclass(frozen=True)
class BridgeConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: Limits = field(default_factory=Limits)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    buses: tuple[BusConfig, ...] = ()
    redis: RedisConfig | None = None  # None: one node, everything in memory
    mqtt: MqttConfig | None = None  # None: no MQTT
    tenancy: Tenancy = field(default_factory=Tenancy)  # [tiers.*], [[tenant]], [jwt]

    def bus(self, name: str) -> BusConfig:
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8765`` for IPv6) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("listen", f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_config(path: str | Path) -> BridgeConfig:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(raw, base=Path(path).parent)


def _format(raw: Any, where: str) -> FrameFormat:
    t = Table(raw, where)
    try:
        fmt = FrameFormat(
            start=t.get("start", int, 0xAA),
            end=t.get("end", int, None),
            crc=t.get("crc", str, "modbus"),
            crc_byteorder=t.get("crc_byteorder", str, "little"),
            crc_covers_start=t.get("crc_covers_start", bool, False),
            max_payload=t.get("max_payload", int, 255),
            tagged=t.get("tagged", bool, False),
        )
    except (FrameValueError, ValueError, KeyError) as exc:
        raise ConfigError(where, str(exc)) from None
    t.done()
    return fmt


def _addr(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SLAVE_ADDR:
        raise ConfigError(where, f"device address must be 1..{MAX_SLAVE_ADDR}, got {value!r}")
    return value


def _poll(raw: Any, where: str) -> PollConfig:
    t = Table(raw, where)
    cmd = t.get("cmd", (int, str), "read_regs")
    args = t.get("args", dict, None)
    data_hex = t.get("data", str, None)
    if args is not None and data_hex is not None:
        raise ConfigError(where, "give either args or data, not both")
    try:
        data = None if data_hex is None else bytes.fromhex(data_hex)
    except ValueError:
        raise ConfigError(t.at("data"), "must be hex") from None
    addrs_raw = t.get("addrs", list, None)
    addrs = None
    if addrs_raw is not None:
        addrs = tuple(_addr(a, f"{t.at('addrs')}[{i}]") for i, a in enumerate(addrs_raw))
    poll = PollConfig(cmd, args, data, t.positive("interval_s", 1.0), addrs)
    t.done()
    return poll


def _resolve_profile(name: str, base: Path | None) -> str:
    """A relative profile *path* is relative to the config file; a bare name is a shipped one."""
    if base is not None and (name.endswith(".toml") or "/" in name):
        p = Path(name)
        return str(p if p.is_absolute() else base / p)
    return name


def _bus(raw: Any, where: str, base: Path | None) -> BusConfig:
    t = Table(raw, where)
    name = t.get("name", str, None)
    if not name or not all(c.isalnum() or c in "_.-" for c in name) or len(name) > 64:
        raise ConfigError(t.at("name"), "a bus needs a name of letters, digits, _ . - (<= 64)")
    url = t.get("url", str, None)
    if not url:
        raise ConfigError(t.at("url"), "a bus needs a pyserial URL or device path")
    devices: list[DeviceConfig] = []
    first_at: dict[int, str] = {}  # address → where it was first given
    for i, d in enumerate(t.get("device", list, [])):
        dt = Table(d, f"{t.at('device')}[{i}]")
        addr = _addr(dt.get("addr", int, None), dt.at("addr"))
        if addr in first_at:
            raise ConfigError(dt.at("addr"), f"address {addr} is already used by {first_at[addr]}")
        first_at[addr] = dt.where
        profile = dt.get("profile", str, None)
        if profile is not None:
            profile = _resolve_profile(profile, base)
        devices.append(DeviceConfig(addr, profile, dt.get("name", str, "")))
        dt.done()
    polls = tuple(_poll(p, f"{t.at('poll')}[{i}]") for i, p in enumerate(t.get("poll", list, [])))
    fmt = _format(t.get("format", dict, {}), t.at("format"))
    gap = t.get("gap_s", float, None)
    capture_raw = t.get("capture", dict, None)
    capture = None if capture_raw is None else _capture(capture_raw, t.at("capture"), base)
    bus = BusConfig(
        name=name,
        url=url,
        baudrate=t.positive("baudrate", 115200),
        format=fmt,
        timeout_s=t.positive("timeout_s", 0.2),
        retries=t.positive("retries", 1, zero=True),
        gap_s=gap,
        discard_echo=t.get("discard_echo", bool, False),
        reconnect_min_s=t.positive("reconnect_min_s", 0.05),
        reconnect_max_s=t.positive("reconnect_max_s", 2.0),
        devices=tuple(devices),
        polls=polls,
        capture=capture,
        max_timeout_s=t.positive("max_timeout_s", 2.0),
        client_requests=t.positive("client_requests", 4),
        error_interval_s=t.positive("error_interval_s", 1.0),
        unsolicited_per_s=t.positive("unsolicited_per_s", 5.0),
    )
    t.done()
    return bus


def _capture(raw: Any, where: str, base: Path | None) -> CaptureConfig:
    t = Table(raw, where)
    directory = t.get("dir", str, "")
    if not directory:
        raise ConfigError(t.at("dir"), "capture needs a directory")
    if base is not None and not Path(directory).is_absolute():
        directory = str(base / directory)
    cap = CaptureConfig(
        dir=directory,
        max_bytes=t.positive("max_bytes", CaptureConfig.max_bytes),
        max_age_s=t.positive("max_age_s", CaptureConfig.max_age_s),
        keep=t.positive("keep", CaptureConfig.keep),
    )
    t.done()
    return cap


def _token(raw: Any, where: str) -> str | TokenRule:
    """A token: a string (may do everything) or ``{token, name, buses, read_only}``."""
    if isinstance(raw, str):
        if not raw:
            raise ConfigError(where, "a token must be a non-empty string")
        return raw
    t = Table(raw, where)
    token = t.get("token", str, "")
    if not token:
        raise ConfigError(t.at("token"), "a token must be a non-empty string")
    buses = t.get("buses", list, None)
    if buses is not None and not all(isinstance(b, str) and b for b in buses):
        raise ConfigError(t.at("buses"), "must be a list of bus names")
    rule = TokenRule(
        token=token,
        name=t.get("name", str, ""),
        buses=None if buses is None else frozenset(buses),
        read_only=t.get("read_only", bool, False),
    )
    t.done()
    return rule


def parse_config(raw: Mapping[str, Any], *, base: Path | None = None) -> BridgeConfig:
    """A parsed TOML document → :class:`BridgeConfig` (``base``: where relative paths start)."""
    top = Table(raw, "")
    st = Table(top.get("server", dict, {}), "server")
    host, port = parse_listen(st.get("listen", str, "127.0.0.1:8765"))
    tokens = tuple(
        _token(x, f"server.tokens[{i}]") for i, x in enumerate(st.get("tokens", list, []))
    )
    server = ServerConfig(
        host=host,
        port=port,
        node=st.get("node", str, "node-1"),
        tokens=tokens,
        compression=st.get("compression", bool, False),
        allowed_origins=strings(st, "allowed_origins", normalize_origin, "an origin"),
        allowed_hosts=strings(st, "allowed_hosts", split_host, "a host or host:port"),
    )

    server = replace(server, tls=parse_tls(st.get("tls", dict, None), "server.tls", base))
    st.done()
    lt = Table(top.get("limits", dict, {}), "limits")
    limits = Limits(**dataclass_from(lt, Limits))
    lt.done()
    ht = Table(top.get("history", dict, {}), "history")
    history = HistoryConfig(**dataclass_from(ht, HistoryConfig))
    ht.done()
    buses = tuple(_bus(b, f"bus[{i}]", base) for i, b in enumerate(top.get("bus", list, [])))
    names = {b.name for b in buses}
    if len(names) != len(buses):
        raise ConfigError("bus", "bus names must be unique")
    seen: set[str] = set()
    for i, entry in enumerate(server.tokens):
        rule = entry if isinstance(entry, TokenRule) else TokenRule(entry)
        if rule.token in seen:  # the first would win and silently void the other's limits
            raise ConfigError(f"server.tokens[{i}]", "the same token is listed twice")
        seen.add(rule.token)
        unknown = sorted((rule.buses or set()) - names)
        if unknown:
            raise ConfigError(f"server.tokens[{i}].buses", f"no bus named {unknown[0]!r}")
    redis = parse_redis(top.get("redis", dict, None), "redis")
    mqtt = parse_mqtt(top.get("mqtt", dict, None), "mqtt", base)
    tenancy = parse_tenancy(
        top.get("tiers", dict, None),
        top.get("tenant", list, None),
        top.get("jwt", dict, None),
        names,
        base,
    )
    top.done()
    return BridgeConfig(server, limits, history, buses, redis, mqtt=mqtt, tenancy=tenancy)
