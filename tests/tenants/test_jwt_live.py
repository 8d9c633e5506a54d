"""JWTs over real connections: refresh keeps a connection, expiry without one closes 4010."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.app import Bridge
from firmware_sim.bus import SimulatedBus
from tests.bridge.conftest import recv

from .conftest import build, tenants_config

SECRET = "live-secret-live-secret-live-secret!!"


def token(tenant: str, exp_in: float, **extra: Any) -> str:
    claims = {"tenant": tenant, "sub": "svc", "exp": time.time() + exp_in, "aud": "fb", **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
async def jwt_bridge(sim: SimulatedBus) -> AsyncIterator[Bridge]:
    raw = tenants_config(sim.url)
    raw["jwt"] = {"secret": SECRET, "audience": "fb", "leeway_s": 0.0}
    async with Bridge(build(raw)) as b:
        yield b


async def test_refresh_keeps_the_connection_and_expiry_closes_4010(jwt_bridge: Bridge) -> None:
    async with (
        connect(jwt_bridge.ws_url, close_timeout=0.5) as kept,
        connect(jwt_bridge.ws_url, close_timeout=0.5) as lapsed,
    ):
        for ws in (kept, lapsed):
            await ws.send(json.dumps({"type": "hello", "token": token("globex", 1.5)}))
            welcome = await recv(ws)
            assert welcome["type"] == "welcome", welcome
        await kept.send(json.dumps({"type": "refresh", "token": token("acme", 60), "id": 1}))
        assert (await recv(kept))["code"] == "unauthorized"  # another tenant's token
        fresh = token("globex", 60, read=["bus0/3"])
        await kept.send(json.dumps({"type": "refresh", "token": fresh, "id": 2}))
        answer = await recv(kept)
        assert answer["type"] == "refreshed" and answer["id"] == 2
        assert answer["expires"] > time.time() + 50
        with pytest.raises(ConnectionClosed):
            while True:  # bounded: recv times out after 5 s
                await recv(lapsed)
        assert lapsed.close_code == 4010 and lapsed.close_reason == "token expired"
        await kept.send(json.dumps({"type": "ping", "id": 3}))
        while (msg := await recv(kept))["type"] != "pong":
            pass
        assert msg["id"] == 3  # still open after the first token's expiry
        # the refreshed scopes apply: only bus0/3 is readable now
        await kept.send(json.dumps({"type": "subscribe", "topics": ["*"], "id": 4}))
        while (msg := await recv(kept))["type"] != "subscribed":
            pass
        assert msg["topics"] == ["bus0/3"]


@pytest.mark.parametrize(
    "bad",
    [
        token("globex", -10),
        token("globex", 60, nbf=time.time() + 60),
        jwt.encode({"tenant": "globex", "exp": time.time() + 60, "aud": "other"}, SECRET),
        jwt.encode({"tenant": "globex", "exp": time.time() + 60, "aud": "fb"}, SECRET + "x"),
        token("nobody", 60),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-key", "unknown-tenant"],
)
async def test_bad_jwts_are_refused_4003(jwt_bridge: Bridge, bad: str) -> None:
    async with connect(jwt_bridge.ws_url, close_timeout=0.5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": bad}))
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 4003
