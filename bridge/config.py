"""Configuration: TOML → frozen dataclasses, validated once, errors naming the key. Pure.

Every limit the bridge enforces is here with a safe default, so an empty ``[limits]`` table gives
a bridge that survives bad and slow clients. Unknown keys are errors: a typo such as
``queue_mesages`` would otherwise silently leave the default in force.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from frames import DEFAULT_FORMAT, MAX_SLAVE_ADDR, FrameFormat
from frames.errors import FrameValueError

from .acl import TokenRule
from .errors import ConfigError
from .guard import normalize_origin, split_host
from .tenants import Tenancy, TlsConfig

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
class RedisConfig:
    """``[redis]``: the nodes of a cluster share history, bus ownership, routing and quotas
    through this Redis (these key names are a contract: deployment tools write them)."""

    url: str  # redis://, rediss:// or unix://
    cluster: bool = False  # a Redis Cluster (keys of one bus share a hash tag; sharded pub/sub)
    prefix: str = "framebridge"  # every key and channel starts with this
    connect_timeout_s: float = 2.0
    command_timeout_s: float = 2.0
    ownership_ttl_s: float = 5.0  # a bus owner's lease; renewed every third of it


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: publish device values and Home Assistant discovery to an MQTT broker, and take
    ``.../set`` commands from it (docs/mqtt.md). ``url``, ``prefix`` and ``discovery_prefix`` are
    a contract (deployment tools and Home Assistant set-ups write them)."""

    url: str  # mqtt://HOST:PORT (1883) or mqtts://HOST:PORT (8883, TLS)
    prefix: str = "framebridge"  # state topics: <prefix>/<bus>/<addr>/<register>
    discovery_prefix: str = "homeassistant"  # Home Assistant's discovery prefix
    discovery: bool = True  # false: values and commands only, no discovery configs
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    qos: int = 0  # of everything the bridge publishes and subscribes
    retain: bool = True  # state and availability retained (discovery always is)
    token: str = ""  # the principal /set commands act as (resolved like a hello token)
    client_id: str = ""  # "": framebridge-<server.node>
    expire_after_s: float | None = None  # None: 5 x the bus's slowest poll (>= 30 s); 0: never
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5  # broker unreachable: retry with jittered backoff ...
    reconnect_max_s: float = 30.0  # ... up to this delay
    ca_file: str | None = None  # mqtts: the CA to trust instead of the system's


_MQTT_SCHEMES = ("mqtt://", "mqtts://")


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


class _Table:
    """A TOML table being read: typed getters that name the key on error, and leftovers check."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(where, "must be a table")
        self.raw = raw
        self.where = where
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(self.at(key), f"must be {_names(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise ConfigError(self.at(key), f"must be {_names(kinds)}, got {value!r}")
        return value

    def positive(self, key: str, default: float, *, zero: bool = False) -> Any:
        kind: type = int if isinstance(default, int) else float
        return require_positive(self.at(key), self.get(key, kind, default), zero=zero)

    def done(self) -> None:
        extra = sorted(set(self.raw) - self.used)
        if extra:
            raise ConfigError(self.where or "top level", f"unknown key(s): {', '.join(extra)}")


def _names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_ZERO_ALLOWED = {"size", "ping_interval_s", "ping_timeout_s"}  # 0 means none / off
_ZERO_ALLOWED.add("drain_window_s")  # 0: every client told 1001 at once


def _dataclass_from(table: _Table, cls: type[Any]) -> Any:
    """Numeric/bool/str dataclass fields read from a table of the same names."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        default = f.default
        if isinstance(default, bool):
            values[f.name] = table.get(f.name, bool, default)
        elif isinstance(default, (int, float)):
            values[f.name] = table.positive(f.name, default, zero=f.name in _ZERO_ALLOWED)
        elif isinstance(default, str):
            values[f.name] = table.get(f.name, str, default)
    return values


def _format(raw: Any, where: str) -> FrameFormat:
    t = _Table(raw, where)
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
    t = _Table(raw, where)
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
    t = _Table(raw, where)
    name = t.get("name", str, None)
    if not name or not all(c.isalnum() or c in "_.-" for c in name) or len(name) > 64:
        raise ConfigError(t.at("name"), "a bus needs a name of letters, digits, _ . - (<= 64)")
    url = t.get("url", str, None)
    if not url:
        raise ConfigError(t.at("url"), "a bus needs a pyserial URL or device path")
    devices: list[DeviceConfig] = []
    first_at: dict[int, str] = {}  # address → where it was first given
    for i, d in enumerate(t.get("device", list, [])):
        dt = _Table(d, f"{t.at('device')}[{i}]")
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
    t = _Table(raw, where)
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
    t = _Table(raw, where)
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


def _strings(t: _Table, key: str, check: Callable[[str], object], what: str) -> tuple[str, ...]:
    """A list of strings, each ``"*"`` or accepted by ``check`` (not None)."""
    out = []
    for i, value in enumerate(t.get(key, list, [])):
        if not isinstance(value, str) or (value.strip() != "*" and check(value) is None):
            raise ConfigError(f"{t.at(key)}[{i}]", f'must be {what} or "*", got {value!r}')
        out.append(value.strip())
    return tuple(out)


def parse_config(raw: Mapping[str, Any], *, base: Path | None = None) -> BridgeConfig:
    """A parsed TOML document → :class:`BridgeConfig` (``base``: where relative paths start)."""
    top = _Table(raw, "")
    st = _Table(top.get("server", dict, {}), "server")
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
        allowed_origins=_strings(st, "allowed_origins", normalize_origin, "an origin"),
        allowed_hosts=_strings(st, "allowed_hosts", split_host, "a host or host:port"),
    )
    from .tenants_config import parse_tenancy, parse_tls  # it builds on this module's helpers

    server = replace(server, tls=parse_tls(st.get("tls", dict, None), "server.tls", base))
    st.done()
    lt = _Table(top.get("limits", dict, {}), "limits")
    limits = Limits(**_dataclass_from(lt, Limits))
    lt.done()
    ht = _Table(top.get("history", dict, {}), "history")
    history = HistoryConfig(**_dataclass_from(ht, HistoryConfig))
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
    redis = _redis(top.get("redis", dict, None), "redis")
    mqtt = _mqtt(top.get("mqtt", dict, None), "mqtt", base)
    tenancy = parse_tenancy(
        top.get("tiers", dict, None),
        top.get("tenant", list, None),
        top.get("jwt", dict, None),
        names,
        base,
    )
    top.done()
    return BridgeConfig(server, limits, history, buses, redis, mqtt=mqtt, tenancy=tenancy)


def _redis(raw: Any, where: str) -> RedisConfig | None:
    if raw is None:
        return None
    t = _Table(raw, where)
    url = t.get("url", str, "")
    if not url.startswith(_REDIS_SCHEMES):
        raise ConfigError(t.at("url"), f"must start with one of {', '.join(_REDIS_SCHEMES)}")
    redis = RedisConfig(
        url=url,
        cluster=t.get("cluster", bool, False),
        prefix=t.get("prefix", str, "framebridge"),
        connect_timeout_s=t.positive("connect_timeout_s", 2.0),
        command_timeout_s=t.positive("command_timeout_s", 2.0),
        ownership_ttl_s=t.positive("ownership_ttl_s", 5.0),
    )
    if not redis.prefix or any(ch in redis.prefix for ch in "{}"):
        raise ConfigError(t.at("prefix"), "must be a non-empty string without { or }")
    t.done()
    return redis


def _topic_prefix(t: _Table, key: str, default: str) -> str:
    value = t.get(key, str, default)
    if (
        not value
        or any(ch in value for ch in "+#\0")
        or value.startswith(("/", "$"))
        or value.endswith("/")
        or "//" in value
    ):
        raise ConfigError(
            t.at(key), f"must be a topic prefix without + # or empty levels: {value!r}"
        )
    return str(value)


def _mqtt(raw: Any, where: str, base: Path | None) -> MqttConfig | None:
    if raw is None:
        return None
    t = _Table(raw, where)
    url = t.get("url", str, "")
    if not url.startswith(_MQTT_SCHEMES):
        raise ConfigError(t.at("url"), f"must start with one of {', '.join(_MQTT_SCHEMES)}")
    qos = t.get("qos", int, 0)
    if qos not in (0, 1, 2):
        raise ConfigError(t.at("qos"), f"must be 0, 1 or 2, got {qos}")
    expire = t.get("expire_after_s", float, None)
    if expire is not None:
        require_positive(t.at("expire_after_s"), expire, zero=True)
    ca_file = t.get("ca_file", str, None)
    if ca_file is not None and base is not None and not Path(ca_file).is_absolute():
        ca_file = str(base / ca_file)
    mqtt = MqttConfig(
        url=url,
        prefix=_topic_prefix(t, "prefix", "framebridge"),
        discovery_prefix=_topic_prefix(t, "discovery_prefix", "homeassistant"),
        discovery=t.get("discovery", bool, True),
        username=t.get("username", str, None),
        password=t.get("password", str, None),
        qos=qos,
        retain=t.get("retain", bool, True),
        token=t.get("token", str, ""),
        client_id=t.get("client_id", str, ""),
        expire_after_s=expire,
        keepalive_s=t.positive("keepalive_s", 30),
        reconnect_min_s=t.positive("reconnect_min_s", 0.5),
        reconnect_max_s=t.positive("reconnect_max_s", 30.0),
        ca_file=ca_file,
    )
    t.done()
    try:
        mqtt_address(mqtt.url)
    except ValueError as exc:
        raise ConfigError(t.at("url"), str(exc)) from None
    return mqtt


def mqtt_address(url: str) -> tuple[str, int, bool]:
    """``mqtt://HOST:PORT`` (``mqtts://`` for TLS, ``[::1]`` for IPv6) → (host, port, tls);
    ValueError when it is not one."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    if parts.scheme not in ("mqtt", "mqtts") or parts.path not in ("", "/"):
        raise ValueError(f"{url!r} is not mqtt://HOST:PORT")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: credentials go in username/password, nothing after the port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port must be 1..65535") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if port == 0:
        raise ValueError(f"{url!r}: the port must be 1..65535")
    return parts.hostname, port or (8883 if tls else 1883), tls


def require_positive(where: str, value: Any, *, zero: bool = False) -> Any:
    """The config's rule for every count, size and duration: > 0 (or >= 0 where 0 means off).

    Public so command-line flags that stand for a config key (``demo --interval``) refuse the
    same values with the same message.
    """
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(where, f"must be {'>=' if zero else '>'} 0, got {value}")
    return value
