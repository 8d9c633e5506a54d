"""``[redis]``: the cluster table's names are a contract (deployment tools write them)."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, RedisConfig, parse_config


def test_no_redis_table_is_one_node() -> None:
    assert parse_config({}).redis is None


def test_redis_table_keys_and_defaults() -> None:
    cfg = parse_config({"redis": {"url": "redis://127.0.0.1:6380/0", "cluster": True}})
    assert cfg.redis == RedisConfig(url="redis://127.0.0.1:6380/0", cluster=True)
    assert cfg.redis.prefix == "framebridge" and cfg.redis.ownership_ttl_s == 5.0
    unix = parse_config({"redis": {"url": "unix:///run/redis.sock", "prefix": "fb-test"}})
    assert unix.redis is not None and unix.redis.prefix == "fb-test"


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({}, "redis.url"),
        ({"url": "http://x"}, "redis.url"),
        ({"url": "redis://x", "prefix": "a{b}"}, "redis.prefix"),
        ({"url": "redis://x", "command_timeout_s": 0}, "redis.command_timeout_s"),
        ({"url": "redis://x", "nope": 1}, "redis"),
    ],
)
def test_bad_redis_tables_name_the_key(table: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"redis": table})
    assert str(info.value).startswith(where)
