"""Two tenants (and an operator that sees all) on one bridge over the simulator."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection

from bridge.app import Bridge
from tests.bridge.conftest import recv

from .conftest import TOKENS, client, subscribe


async def collect(ws: ClientConnection, until: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while (left := until - time.monotonic()) > 0:
        try:
            out.append(await recv(ws, left))
        except TimeoutError:
            break
    return out


def device_msgs(msgs: list[dict[str, Any]]) -> dict[int, int]:
    """seq → addr of every frame/event of a device."""
    return {m["seq"]: m["addr"] for m in msgs if m["type"] in ("frame", "event") and "addr" in m}


async def request(ws: ClientConnection, rid: int, addr: int, **extra: Any) -> dict[str, Any]:
    msg = {"type": "request", "id": rid, "bus": "bus0", "addr": addr, "cmd": "read_regs"}
    msg.update(args={"start": 0, "count": 1}, **extra)
    await ws.send(json.dumps(msg))
    while True:
        answer = await recv(ws)
        if answer["type"] == "reply" and answer.get("id") == rid:
            return answer


async def test_each_tenant_sees_only_its_devices_live_in_replay_in_state_and_requests(
    bridge: Bridge,
) -> None:
    acme, welcome = await client(bridge, "acme")
    assert welcome["access"] == {"read": ["bus0/1", "bus0/2"], "write": ["bus0/1"]}
    globex, _ = await client(bridge, "globex")
    ops, _ = await client(bridge, "ops")
    start = {}
    for ws in (acme, globex, ops):
        answer = await subscribe(ws, ["*"])
        start[id(ws)] = answer
    assert start[id(acme)]["topics"] == ["bus0/1", "bus0/2"]
    # request traffic of each tenant is on the bus stream: only its own devices' readers see it
    assert (await request(acme, 1, 1))["ok"] is True
    assert (await request(globex, 2, 3))["ok"] is True
    until = time.monotonic() + 1.0
    seen = await asyncio.gather(collect(acme, until), collect(globex, until), collect(ops, until))
    a, g, o = (device_msgs(s) for s in seen)
    assert set(a.values()) == {1, 2} and set(g.values()) == {3, 4}
    assert set(o.values()) == {1, 2, 3, 4}
    # nothing of a tenant's own devices is missing: the operator's view of them, seq for seq
    for mine, addrs in ((a, {1, 2}), (g, {3, 4})):
        lo, hi = min(mine), max(mine)
        assert mine == {s: d for s, d in o.items() if d in addrs and lo <= s <= hi}
    tx = [m for m in seen[0] if m["type"] == "frame" and m.get("dir") == "tx"]
    assert tx and all(m["addr"] in (1, 2) for m in tx)

    # replay (resume) is filtered the same way
    first = min(a)
    since = {"bus0": {"epoch": _epoch(seen[0]), "seq": first}}
    late, _ = await client(bridge, "acme")
    await late.send(json.dumps({"type": "subscribe", "topics": ["*"], "since": since}))
    replay = await collect(late, time.monotonic() + 0.5)
    assert replay[0]["type"] == "subscribed" and replay[0]["recovered"] == {"bus0": True}
    r = device_msgs(replay[1:])
    assert r and set(r.values()) <= {1, 2}
    overlap = {s: d for s, d in o.items() if d in (1, 2) and first < s <= max(o)}
    assert {s: d for s, d in r.items() if s <= max(o)} == overlap

    # state and /api/state list only the tenant's devices
    await acme.send(json.dumps({"type": "state", "id": 9}))
    while (state := await recv(acme))["type"] != "state":
        pass
    assert sorted(state["buses"]["bus0"]["devices"]) == ["1", "2"]
    http = await asyncio.to_thread(_api_state, bridge.http_url, TOKENS["globex"])
    assert sorted(http["buses"]["bus0"]["devices"]) == ["3", "4"]

    # hidden things are answered like nonexistent ones, decided by the patterns alone
    for addr in (3, 200):
        reply = await request(acme, 10 + addr, addr)
        assert reply["error"]["code"] == "forbidden"
    for topic in ("bus0/3", "bus0/200"):
        await acme.send(json.dumps({"type": "subscribe", "topics": [topic], "id": topic}))
        while (err := await recv(acme))["type"] != "error":
            pass
        assert err["code"] == "bad_value" and "outside" in err["message"]
    for ws in (acme, globex, ops, late):
        await ws.close()


def _epoch(msgs: list[dict[str, Any]]) -> int:
    return next(m["epoch"] for m in msgs if "epoch" in m)


def _api_state(base: str, token: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{base}/api/state", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]
