"""A real bridge over the simulator, shared by several tenants (``acme``, ``globex``, ``ops``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bridge.app import Bridge
from bridge.config import BridgeConfig, parse_config
from bridge.tenants import hash_token
from firmware_sim.bus import SimulatedBus
from tests.bridge.conftest import make_limits, recv, recv_until

TOKENS = {"acme": "acme-secret", "globex": "globex-secret", "ops": "ops-secret"}


def tenants_config(sim_url: str, **small: Any) -> dict[str, Any]:
    tier = {"connections": 3, "inflight": 2, "requests_per_s": 4.0, "max_timeout_s": 0.5}
    tier.update(small)
    return {
        "server": {"listen": "127.0.0.1:0", "node": "tenants"},
        "limits": {"request_queue": 128},
        "bus": [
            {
                "name": "bus0",
                "url": sim_url,
                "timeout_s": 0.3,  # a loaded 2-core machine: no spurious timeouts
                "retries": 1,
                "client_requests": 8,
                "device": [{"addr": a, "profile": "thermo"} for a in (1, 2, 3, 4)],
                "poll": [{"cmd": "read_regs", "interval_s": 0.1}],
            }
        ],
        "tiers": {"small": tier, "big": {"inflight": 64, "requests_per_s": 10000.0}},
        "tenant": [
            {
                "name": "acme",
                "tier": "small",
                "token_sha256": [hash_token(TOKENS["acme"])],
                "read": ["bus0/1", "bus0/2"],
                "write": ["bus0/1"],
                "allowed_origins": ["https://acme.example"],
            },
            {
                "name": "globex",
                "tier": "big",
                "token_sha256": [hash_token(TOKENS["globex"])],
                "read": ["bus0/3", "bus0/4"],
                "write": ["bus0/3", "bus0/4"],
                "allowed_origins": ["https://globex.example"],
            },
            {
                "name": "ops",
                "tier": "big",
                "token_sha256": [hash_token(TOKENS["ops"])],
                "read": ["*"],
                "write": [],
            },
        ],
    }


def build(raw: dict[str, Any]) -> BridgeConfig:
    config = parse_config(raw)
    return replace(config, limits=replace(make_limits(), request_queue=128))


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatedBus]:
    async with SimulatedBus(count=4, profile="thermo", link=tmp_path / "ttyTEN") as bus:
        yield bus


@pytest.fixture
async def bridge(sim: SimulatedBus) -> AsyncIterator[Bridge]:
    async with Bridge(build(tenants_config(sim.url))) as b:
        yield b


async def client(
    bridge: Bridge, tenant: str, *, origin: str | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    headers = {"Origin": origin} if origin else None
    ws = await connect(
        bridge.ws_url, compression=None, additional_headers=headers, close_timeout=0.5
    )
    await ws.send(json.dumps({"type": "hello", "token": TOKENS[tenant]}))
    return ws, await recv(ws)


async def subscribe(ws: ClientConnection, topics: list[str], **extra: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", "topics": topics, **extra}))
    answer, _ = await recv_until(ws, "subscribed")
    return answer
