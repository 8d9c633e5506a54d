"""Every quota hit over real clients, answered as specified, while another tenant goes on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bridge.app import Bridge
from firmware_sim.bus import SimulatedBus
from tests.bridge.conftest import recv

from .conftest import build, client, subscribe, tenants_config


@pytest.fixture
async def slow_refill(sim: SimulatedBus) -> Any:
    """The small tier with a burst of 4 refilled at 0.2/s: a token comes back only after 5 s,
    so the rate refusal below does not depend on how fast a loaded machine answers."""
    async with Bridge(build(tenants_config(sim.url, requests_per_s=0.2, requests_burst=4.0))) as b:
        yield b


async def replies(ws: ClientConnection, ids: set[int], timeout: float = 5.0) -> dict[int, Any]:
    out: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while ids - set(out):
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == "reply" and msg.get("id") in ids:
            out[msg["id"]] = msg
    return out


def req(rid: int, addr: int = 1, **extra: Any) -> str:
    msg = {"type": "request", "id": rid, "bus": "bus0", "addr": addr, "cmd": "read_regs"}
    msg.update(args={"start": 0, "count": 1}, **extra)
    return json.dumps(msg)


async def watch(ws: ClientConnection, stop: asyncio.Event) -> list[int]:
    """The other tenant: every seq it receives, while it also keeps requesting (at least six,
    however fast the quotas above went: the caller bounds the wait)."""
    seqs: list[int] = []
    rid = 1000
    while not stop.is_set() or len(seqs) <= 5:
        rid += 1
        await ws.send(req(rid, addr=3))
        while True:
            msg = await recv(ws)
            if "seq" in msg:
                seqs.append(msg["seq"])
            if msg["type"] == "reply" and msg.get("id") == rid:
                assert msg["ok"] is True, msg
                break
    return seqs


async def test_quotas_are_hit_and_answered_while_another_tenant_keeps_working(
    slow_refill: Bridge,
) -> None:
    bridge = slow_refill
    globex, _ = await client(bridge, "globex")
    await subscribe(globex, ["*"])
    stop = asyncio.Event()
    other = asyncio.create_task(watch(globex, stop))

    acme, _ = await client(bridge, "acme")
    # in flight: two requests on the wire, the third refused at once (never queued)
    await acme.send(req(1))
    await acme.send(req(2))
    await acme.send(req(3))
    got = await replies(acme, {1, 2, 3})
    assert got[1]["ok"] and got[2]["ok"], got
    assert got[3]["error"]["code"] == "quota" and "in progress" in got[3]["error"]["message"]
    # rate: 0.2/s with a burst of 4; two were taken, then two more pass, the next is refused
    outcomes = []
    for rid in (4, 5, 6):
        await acme.send(req(rid))
        outcomes.append((await replies(acme, {rid}))[rid])
    assert [o["ok"] for o in outcomes[:2]] == [True, True]
    assert (
        outcomes[2]["error"]["code"] == "quota" and "requests/s" in outcomes[2]["error"]["message"]
    )
    # timeout over the tier's cap (0.5 s)
    await acme.send(req(7, timeout_s=1.0))
    assert (await replies(acme, {7}))[7]["error"]["code"] == "bad_request"
    # connections: 3 per tenant; the 4th is closed 1013 with a reason
    more = [(await client(bridge, "acme"))[0] for _ in range(2)]
    code, reason = await client_closed(bridge, "acme", None)
    assert code == 1013 and "3 connections" in (reason or "")
    # malformed messages: the 'small' tier does not close (no bad_messages); see test_pure
    stop.set()
    seqs = await asyncio.wait_for(other, 10)
    assert len(seqs) > 5 and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    text = (await asyncio.to_thread(_metrics, bridge.http_url)).decode()
    assert 'framebridge_tenant_quota_rejections_total{kind="inflight",tenant="acme"} 1.0' in text
    assert 'framebridge_tenant_quota_rejections_total{kind="rate",tenant="acme"} 1.0' in text
    assert 'framebridge_tenant_quota_rejections_total{kind="connections",tenant="acme"} 1.0' in text
    assert 'framebridge_tenant_connections{tenant="acme"} 3.0' in text
    assert 'framebridge_tenant_requests_total{outcome="ok",tenant="globex"}' in text
    assert 'framebridge_tenant_messages_out_total{tenant="globex"}' in text
    for ws in (acme, globex, *more):
        await ws.close()


async def test_a_tenant_page_from_another_origin_is_refused_after_hello(bridge: Bridge) -> None:
    ws, welcome = await client(bridge, "acme", origin="https://acme.example")
    assert welcome["type"] == "welcome"
    other, _ = await client(bridge, "globex", origin="https://globex.example")
    wrong = await client_closed(bridge, "acme", "https://globex.example")
    assert wrong == (4003, "origin not allowed")
    await ws.close()
    await other.close()


async def client_closed(
    bridge: Bridge, tenant: str, origin: str | None
) -> tuple[int | None, str | None]:
    from websockets.asyncio.client import connect

    from .conftest import TOKENS

    headers = {"Origin": origin} if origin else None
    async with connect(bridge.ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "hello", "token": TOKENS[tenant]}))
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        return ws.close_code, ws.close_reason


def _metrics(base: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        return resp.read()  # type: ignore[no-any-return]
