"""The ``[mqtt]`` table: names, defaults, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import MqttConfig, mqtt_address, parse_config
from bridge.errors import ConfigError


def mqtt(**table: Any) -> MqttConfig | None:
    return parse_config({"mqtt": table}).mqtt


def test_defaults() -> None:
    cfg = mqtt(url="mqtt://127.0.0.1:1884")
    assert cfg is not None
    assert (cfg.prefix, cfg.discovery_prefix, cfg.qos, cfg.retain) == (
        "framebridge",
        "homeassistant",
        0,
        True,
    )
    assert (cfg.token, cfg.client_id, cfg.expire_after_s) == ("", "", None)
    assert parse_config({}).mqtt is None


def test_every_key() -> None:
    cfg = mqtt(
        url="mqtts://broker.example:8884",
        prefix="site/fb",
        discovery_prefix="ha",
        discovery=False,
        username="u",
        password="secret",
        qos=1,
        retain=False,
        token="t",
        client_id="fb-1",
        expire_after_s=0,
        keepalive_s=10,
        reconnect_min_s=0.1,
        reconnect_max_s=5,
        ca_file="/etc/ca.pem",
    )
    assert cfg is not None
    assert cfg.prefix == "site/fb" and cfg.qos == 1 and cfg.expire_after_s == 0.0
    assert "secret" not in repr(cfg)  # the password never reaches a log through repr


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"url": "tcp://h:1"}, "mqtt.url"),
        ({}, "mqtt.url"),
        ({"url": "mqtt://h:99999"}, "mqtt.url"),
        ({"url": "mqtt://user:pw@h:1"}, "mqtt.url"),
        ({"url": "mqtt://h:1", "qos": 3}, "mqtt.qos"),
        ({"url": "mqtt://h:1", "prefix": "a/+/b"}, "mqtt.prefix"),
        ({"url": "mqtt://h:1", "prefix": ""}, "mqtt.prefix"),
        ({"url": "mqtt://h:1", "discovery_prefix": "ha/"}, "mqtt.discovery_prefix"),
        ({"url": "mqtt://h:1", "expire_after_s": -1}, "mqtt.expire_after_s"),
        ({"url": "mqtt://h:1", "prefx": "x"}, "mqtt"),
    ],
)
def test_errors_name_the_key(table: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        mqtt(**table)
    assert info.value.where == where


def test_address() -> None:
    assert mqtt_address("mqtt://h") == ("h", 1883, False)
    assert mqtt_address("mqtts://h") == ("h", 8883, True)
    assert mqtt_address("mqtt://[::1]:1884") == ("::1", 1884, False)


def test_token_must_be_accepted(tmp_path: Any) -> None:
    from bridge.app import Bridge

    config = parse_config(
        {"server": {"tokens": ["good"]}, "mqtt": {"url": "mqtt://127.0.0.1:1", "token": "bad"}}
    )
    with pytest.raises(ConfigError) as info:
        Bridge(config)
    assert info.value.where == "mqtt.token"
