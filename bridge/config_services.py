"""``[redis]`` and ``[mqtt]``: the services a bridge may talk to besides its buses. Pure.

Their key names are a contract (deployment tools and Home Assistant set-ups write them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_table import Table, require_positive
from .errors import ConfigError

__all__ = ["MqttConfig", "RedisConfig", "mqtt_address", "parse_mqtt", "parse_redis"]


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


def parse_redis(raw: Any, where: str) -> RedisConfig | None:
    if raw is None:
        return None
    t = Table(raw, where)
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


def _topic_prefix(t: Table, key: str, default: str) -> str:
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


def parse_mqtt(raw: Any, where: str, base: Path | None) -> MqttConfig | None:
    if raw is None:
        return None
    t = Table(raw, where)
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
