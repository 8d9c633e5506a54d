"""Two bridge nodes on one real Redis: a tenant's connections are counted over both."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.tenants import hash_token
from tests.bridge.conftest import recv
from tests.servers import redis_server


def node(redis_url: str, name: str) -> Any:
    return parse_config(
        {
            "server": {"listen": "127.0.0.1:0", "node": name},
            "redis": {"url": redis_url, "prefix": "tq"},
            "tiers": {"two": {"connections": 2}},
            "tenant": [
                {
                    "name": "acme",
                    "tier": "two",
                    "token_sha256": [hash_token("acme-secret")],
                    "read": ["*"],
                }
            ],
        }
    )


async def hello(bridge: Bridge) -> Any:
    ws = await connect(bridge.ws_url, close_timeout=0.5)
    await ws.send(json.dumps({"type": "hello", "token": "acme-secret"}))
    return ws, await recv(ws)


async def test_a_tenants_connections_are_counted_over_two_nodes() -> None:
    with redis_server() as redis:
        async with Bridge(node(redis.url, "a")) as a, Bridge(node(redis.url, "b")) as b:
            opened = [await hello(a) for _ in range(2)]
            assert all(w["type"] == "welcome" for _, w in opened)
            usage = b.server.policy.usage_of("acme")  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while usage.remote_connections < 2:  # shared every 0.5 s
                assert time.monotonic() < deadline, "node b never saw node a's connections"
                await asyncio.sleep(0.05)
            extra = await connect(b.ws_url, close_timeout=0.5)
            await extra.send(json.dumps({"type": "hello", "token": "acme-secret"}))
            with pytest.raises(ConnectionClosed):
                await recv(extra)
            assert extra.close_code == 1013 and "2 connections" in (extra.close_reason or "")
            for ws, _ in opened:
                await ws.close()
