"""Back-pressure on answers, /healthz states, /api/state tokens, resume past the history TTL,
compression, metrics and the newer limits: a real server and real clients on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bridge.app import Bridge
from bridge.config import BridgeConfig, BusConfig, ServerConfig, parse_config
from bridge.errors import ConfigError

from .conftest import (
    SLOW_LIMITS,
    TIMEOUT,
    Harness,
    make_limits,
    read_until_closed,
    recv,
    recv_raw,
    recv_until,
    running_harness,
    slow_closes,
    stalled_client,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bridge.md"
PAD = "ab" * 1000  # 2 KB frames: a stalled client's buffers fill after a few of them

# -- helpers ---------------------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _get(url: str, headers: dict[str, str]) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


async def http_get(base: str, path: str, **headers: str) -> tuple[int, Message, bytes]:
    """A real HTTP GET (urllib in a thread; its own timeout bounds it)."""
    return await asyncio.to_thread(_get, base + path, headers)


async def healthz(h: Harness) -> tuple[int, dict[str, Any]]:
    status, headers, body = await http_get(h.http, "/healthz")
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def own_server(*, ready: bool = True, compression: bool = False) -> Any:
    """A server like the ``harness`` fixture's, for what the fixture fixes: readiness
    (``set_ready`` not called yet) and compression."""
    server = ServerConfig(host="127.0.0.1", port=0, node="test", compression=compression)
    return running_harness(server, make_limits(), ready=ready)


def frame_msg(ts: float, data: str = "00") -> dict[str, Any]:
    return {"type": "frame", "ts": ts, "addr": 1, "cmd": 3, "dir": "rx", "data": data}


# -- /healthz --------------------------------------------------------------------------------------


async def test_healthz_starting_ok_degraded_and_stopping() -> None:
    async with own_server(ready=False) as h:
        status, body = await healthz(h)
        assert (status, body["status"]) == (503, "starting")  # listening, set_ready not yet
        assert body["node"] == "test" and body["clients"] == 0
        ws = await h.client()
        h.server.set_ready()
        status, body = await healthz(h)
        assert (status, body["status"]) == (200, "ok")
        assert body["clients"] == 1
        assert isinstance(body["uptime_s"], float) and 0 <= body["uptime_s"] < 60
        assert body["buses"] == {
            "bus0": {"up": True, "epoch": 1000, "seq": 0, "devices": 1, "devices_online": 1},
            "bus1": {"up": True, "epoch": 2000, "seq": 0, "devices": 1, "devices_online": 1},
        }
        h.buses["bus1"].is_up = False
        status, body = await healthz(h)
        assert (status, body["status"]) == (200, "degraded")
        assert body["buses"]["bus1"]["up"] is False and body["buses"]["bus0"]["up"] is True
        h.buses["bus0"].is_up = False  # every bus down: retried, clients kept: still ready
        status, body = await healthz(h)
        assert (status, body["status"]) == (200, "degraded")
        h.buses["bus0"].is_up = True
        h.buses["bus1"].is_up = True
        status, body = await healthz(h)
        assert (status, body["status"]) == (200, "ok")
        h.server.stop_accepting()
        h.server.set_ready()  # too late: a stopping server never turns ready again
        ready, body = h.server.health()
        assert ready is False and h.server.ready is False and body["status"] == "stopping"
        assert body["clients"] == 1 and set(body["buses"]) == {"bus0", "bus1"}
        # the listener stays open through the drain: both probes say 503 at once, and a new
        # WebSocket upgrade is refused before the handshake (a proxy tries another node)
        status, body = await healthz(h)
        assert (status, body["status"]) == (503, "stopping")
        status, _, raw = await http_get(h.http, "/readyz")
        assert status == 503 and json.loads(raw) == {
            "ready": False,
            "node": "test",
            "reasons": ["draining"],
        }
        with pytest.raises(InvalidStatus) as refused:
            await connect(h.url, open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 503
        await ws.close()


async def test_readyz_starting_then_ready_distinct_from_healthz() -> None:
    async with own_server(ready=False) as h:
        status, _, raw = await http_get(h.http, "/readyz")
        assert status == 503 and json.loads(raw)["reasons"] == ["starting"]
        h.server.set_ready()
        status, headers, raw = await http_get(h.http, "/readyz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(raw) == {"ready": True, "node": "test", "reasons": []}
        h.buses["bus0"].is_up = False  # a bus down: degraded health, still ready
        assert (await healthz(h))[1]["status"] == "degraded"
        assert (await http_get(h.http, "/readyz"))[0] == 200


async def test_bridge_start_answers_starting_until_its_buses_had_their_first_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        peers.append(w)

    device = await asyncio.start_server(accept, "127.0.0.1", 0)  # the bus: a TCP serial port
    port = device.sockets[0].getsockname()[1]
    config = BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node="app"),
        limits=make_limits(),
        buses=(BusConfig("bus0", f"socket://127.0.0.1:{port}"),),
    )
    bridge = Bridge(config)
    owner = bridge.buses["bus0"]
    opening, release = asyncio.Event(), asyncio.Event()
    real_start = owner.start

    async def gated_start() -> None:
        opening.set()
        await release.wait()
        await real_start()

    monkeypatch.setattr(owner, "start", gated_start)
    starting = asyncio.create_task(bridge.start())
    try:
        await asyncio.wait_for(opening.wait(), TIMEOUT)  # listening, the bus not yet opened
        status, _, body = await http_get(bridge.http_url, "/healthz")
        assert (status, json.loads(body)["status"]) == (503, "starting")
        release.set()
        await asyncio.wait_for(starting, TIMEOUT)
        status, _, body = await http_get(bridge.http_url, "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
    finally:
        release.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(starting, TIMEOUT)
        await asyncio.wait_for(bridge.stop(), 10)
        for w in peers:
            w.close()
        device.close()
        await device.wait_closed()


# -- /api/state ------------------------------------------------------------------------------------


async def test_api_state_is_open_without_tokens(harness: Harness) -> None:
    for headers in ({}, {"Authorization": "Bearer whatever"}):
        status, _, body = await http_get(harness.http, "/api/state", **headers)
        state = json.loads(body)
        assert status == 200 and state["node"] == "test"
        assert set(state["buses"]) == {"bus0", "bus1"}
        assert state["buses"]["bus0"]["devices"]["1"]["online"] is True


@pytest.mark.tokens("secret")
async def test_api_state_needs_a_configured_token(harness: Harness) -> None:
    refused: list[tuple[str, dict[str, str]]] = [
        ("/api/state", {}),
        ("/api/state", {"Authorization": "Bearer wrong"}),
        ("/api/state", {"Authorization": "Basic secret"}),  # not a bearer token
        ("/api/state?token=wrong", {}),
        ("/api/state?token=", {}),
    ]
    for path, headers in refused:
        status, h, body = await http_get(harness.http, path, **headers)
        assert status == 401, (path, headers)
        assert h["WWW-Authenticate"] == 'Bearer realm="framebridge"'
        assert b"secret" not in body
    accepted: list[tuple[str, dict[str, str]]] = [
        ("/api/state", {"Authorization": "Bearer secret"}),
        ("/api/state", {"Authorization": "bearer  secret "}),
        ("/api/state?token=secret", {}),
    ]
    for path, headers in accepted:
        status, h, body = await http_get(harness.http, path, **headers)
        assert status == 200 and h["Content-Type"] == "application/json", (path, headers)
        assert json.loads(body)["buses"]["bus0"]["epoch"] == 1000
    for path in ("/healthz", "/metrics"):  # stay open: bus names and counts only
        status, _, _ = await http_get(harness.http, path)
        assert status == 200


# -- resume past the history TTL -------------------------------------------------------------------


async def test_resume_after_the_ttl_is_not_recovered_and_replays_nothing(harness: Harness) -> None:
    old = time.time() - 1000  # long past the 300 s TTL
    for _ in range(3):
        harness.hub.publish("bus0", frame_msg(old), old)
    ws = await harness.client()
    since = {"bus0": {"epoch": 1000, "seq": 1}}
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/*"], "since": since}))
    assert await recv(ws) == {
        "type": "subscribed",
        "id": 1,
        "topics": ["bus0/*"],
        "recovered": {"bus0": False},
    }
    harness.bus.frame(data="ff")
    live = await recv(ws)
    assert (live["seq"], live["data"]) == (4, "ff")  # seqs 2 and 3 were not replayed
    # the same resume within the TTL is recovered: it was the age that made the difference
    harness.bus.frame(data="ee")
    assert (await recv(ws))["seq"] == 5
    since = {"bus0": {"epoch": 1000, "seq": 3}}
    await ws.send(json.dumps({"type": "subscribe", "id": 2, "topics": ["bus0/1"], "since": since}))
    sub = await recv(ws)
    assert sub["recovered"] == {"bus0": True}
    harness.bus.frame(data="dd")  # 4 and 5 are not replayed: this session had them already
    assert (await recv(ws))["seq"] == 6
    assert (harness.hub.stats.resumes_lost, harness.hub.stats.resumes_recovered) == (1, 1)


# -- compression -----------------------------------------------------------------------------------


async def test_compression_negotiated_and_shared_batches_decode_for_every_client() -> None:
    async with own_server(compression=True) as h:
        deflate: list[ClientConnection] = []
        plain: list[ClientConnection] = []
        for use in ("deflate", None, "deflate", None):  # interleaved in the writer's order
            ws = await connect(h.url, compression=use, open_timeout=TIMEOUT)
            (deflate if use else plain).append(ws)
        for ws in deflate:
            assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        for ws in plain:
            assert ws.protocol.extensions == []
        server_side = [conn.ws.protocol.extensions for conn in h.server.conns.values()]
        assert sorted(len(e) for e in server_side) == [0, 0, 1, 1]
        clients = deflate + plain
        for ws in clients:
            await ws.send(json.dumps({"type": "hello", "token": "t"}))
            assert (await recv(ws))["type"] == "welcome"
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
            assert (await recv(ws))["type"] == "subscribed"
        seq = 0
        for size in (10, 10, 1, 10):  # same batches for all four, flush after flush
            datas = [f"{seq + i:02x}" * 40 for i in range(size)]
            for data in datas:  # in one loop step: one batch per client
                h.bus.frame(data=data)
            for ws in clients:
                batch = await recv_raw(ws)
                assert [m["seq"] for m in batch] == list(range(seq + 1, seq + size + 1))
                assert [m["data"] for m in batch] == datas
            seq += size
        for ws in clients:
            await ws.close()


async def test_compression_off_by_default_a_client_offering_deflate_gets_none(
    harness: Harness,
) -> None:
    ws = await connect(harness.url, compression="deflate", open_timeout=TIMEOUT)
    assert ws.protocol.extensions == []
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    assert (await recv(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    await recv(ws)
    for _ in range(3):
        harness.bus.frame()
    assert [m["seq"] for m in await recv_raw(ws)] == [1, 2, 3]
    await ws.close()


# -- metrics ---------------------------------------------------------------------------------------


async def scrape(h: Harness) -> dict[str, Any]:
    status, headers, body = await http_get(h.http, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def by_labels(families: dict[str, Any], name: str) -> dict[tuple[str, ...], float]:
    """Counter ``framebridge_<name>``: {label values (sorted by label name): value}."""
    family = f"framebridge_{name}"
    return {
        tuple(v for _, v in sorted(s.labels.items())): s.value
        for s in families[family].samples
        if s.name == f"{family}_total"
    }


def total(families: dict[str, Any], name: str) -> float:
    """Counter ``framebridge_<name>`` without labels."""
    return by_labels(families, name)[()]


def clients(families: dict[str, Any]) -> float:
    (sample,) = families["framebridge_clients"].samples
    return float(sample.value)


def documented_metrics() -> list[tuple[str, str]]:
    section = DOCS.read_text(encoding="utf-8").split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(framebridge_[a-z_]+)[^`]*` \| (\w+) \|", section, re.M)


@pytest.mark.limits(hello_timeout_s=0.3, **SLOW_LIMITS)
async def test_metrics_count_the_traffic(harness: Harness) -> None:
    # fan-out and what the writer sent, exactly: one client, three frames on the wire
    a = await harness.client(hello=False)
    await a.send(json.dumps({"type": "hello", "token": "t"}))
    raws = [await asyncio.wait_for(a.recv(), TIMEOUT)]
    await a.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    raws.append(await asyncio.wait_for(a.recv(), TIMEOUT))
    for _ in range(5):
        harness.bus.frame()
    raws.append(await asyncio.wait_for(a.recv(), TIMEOUT))
    assert [len(json.loads(r)) for r in raws[2:]] == [5]  # a batch of five
    m = await scrape(harness)
    assert clients(m) == 1
    assert total(m, "published_messages") == 5
    assert total(m, "deliveries") == 5
    assert total(m, "messages_out") == 7
    assert total(m, "ws_frames_out") == 3
    bytes_out = total(m, "bytes_out")
    assert bytes_out == sum(len(r) for r in raws)
    assert total(m, "queue_drops") == 0

    # requests: ok, timed out (as the bus owner reports it), unknown bus
    for rid in ("ok", "to"):
        await a.send(json.dumps({"type": "request", "id": rid, "bus": "bus0", "addr": 1, "cmd": 3}))
        _, fut = await asyncio.wait_for(harness.bus.requests.get(), TIMEOUT)
        if rid == "ok":
            fut.set_result({"ok": True, "addr": 1, "cmd": 3, "data": ""})
        else:
            fut.set_result({"ok": False, "error": {"code": "timeout", "message": "no reply"}})
        reply, _ = await recv_until(a, "reply")
        assert reply["id"] == rid
    await a.send(json.dumps({"type": "request", "id": "nb", "bus": "nope", "addr": 1, "cmd": 3}))
    reply, _ = await recv_until(a, "reply")
    assert reply["error"]["code"] == "bad_request"
    # bad messages
    await a.send("{nope")
    await a.send(json.dumps({"type": "dance", "id": 2}))
    assert [(await recv(a))["code"] for _ in range(2)] == ["bad_json", "unknown_type"]
    await a.send(json.dumps({"type": "unsubscribe", "id": 3, "topics": ["*"]}))
    assert (await recv(a))["type"] == "unsubscribed"
    # resumes: one recovered, one not (another epoch)
    b = await harness.client()
    since = {"bus0": {"epoch": 1000, "seq": 3}, "bus1": {"epoch": 1, "seq": 0}}
    await b.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/*"], "since": since}))
    assert (await recv(b))["recovered"] == {"bus0": True, "bus1": False}
    assert [(await recv(b))["seq"] for _ in range(2)] == [4, 5]
    # a hello timeout
    late = await harness.client(hello=False)
    await asyncio.wait_for(late.wait_closed(), TIMEOUT)
    assert late.close_code == 4001
    # a slow consumer: the only subscriber of bus1 stops reading; one publish per loop turn,
    # so the publish that overflows it is the last one and the only one dropped
    slow, slow_conn = await stalled_client(harness)
    await slow.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus1/*"]}))
    await harness.wait_for(lambda: bool(slow_conn.session.topics))
    published = 0
    while slow_closes(harness) == 0:
        assert published < 5000, "the stalled client was never closed"
        harness.buses["bus1"].frame(data=PAD)
        published += 1
        await asyncio.sleep(0)
    got = await read_until_closed(slow)  # what was on the way, then the 4000
    assert got[0]["type"] == "subscribed"
    seqs = [m["seq"] for m in got[1:]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < published
    assert slow.close_code == 4000
    await harness.wait_for(lambda: len(harness.server.conns) == 2)  # a and b

    m = await scrape(harness)
    assert by_labels(m, "requests") == {
        ("bus0", "ok"): 1,
        ("bus0", "timeout"): 1,
        ("", "bad_request"): 1,  # (bus, outcome): an unknown bus is not a label value
    }
    assert by_labels(m, "bad_messages") == {
        ("bad_json",): 1,
        ("unknown_type",): 1,
    }
    assert by_labels(m, "resumes") == {
        ("recovered",): 1,
        ("not_recovered",): 1,
    }
    assert by_labels(m, "rejected_connections") == {("hello_timeout",): 1}
    assert total(m, "slow_consumer_closes") == 1
    assert total(m, "queue_drops") == 1
    assert total(m, "published_messages") == 5 + published
    assert total(m, "deliveries") == 5 + published - 1
    assert clients(m) == 2
    frames_out = total(m, "ws_frames_out")
    messages_out = total(m, "messages_out")
    assert 3 < frames_out <= messages_out
    assert total(m, "bytes_out") > bytes_out
    # bus owners' metrics: no bus owner here, but the families are exposed
    for family in ("framebridge_crc_errors", "framebridge_polls", "framebridge_bus_up"):
        assert m[family].samples == []

    # every metric of docs/bridge.md's table is exposed, with its type
    documented = documented_metrics()
    assert len(documented) >= 16
    for name, kind in documented:
        family = name.removesuffix("_total") if kind == "counter" else name
        assert family in m, name
        assert m[family].type == kind, name
    for ws in (a, b):
        await ws.close()


# -- configuration of the newer limits -------------------------------------------------------------


def test_parse_config_zero_keepalive_and_the_new_limits() -> None:
    limits = parse_config(
        {
            "limits": {
                "ping_interval_s": 0,
                "ping_timeout_s": 0,
                "incoming_messages": 4,
                "flush_clients": 7,
            }
        }
    ).limits
    assert (limits.ping_interval_s, limits.ping_timeout_s) == (0.0, 0.0)
    assert (limits.incoming_messages, limits.flush_clients) == (4, 7)
    defaults = parse_config({}).limits
    assert (defaults.incoming_messages, defaults.flush_clients) == (16, 100)
    assert (defaults.ping_interval_s, defaults.ping_timeout_s) == (30.0, 30.0)


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("heartbeat_s", 0),
        ("incoming_messages", 0),
        ("flush_clients", 0),
        ("ping_interval_s", -1),
        ("incoming_messages", 1.5),
        ("flush_clients", True),
    ],
)
def test_parse_config_refuses_bad_limits_naming_the_key(key: str, bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"limits": {key: bad}})
    assert info.value.where == f"limits.{key}"
    assert str(info.value).startswith(f"limits.{key}: ")


@pytest.mark.limits(ping_interval_s=0, ping_timeout_s=0, incoming_messages=3, flush_clients=1)
async def test_server_without_keepalive_and_with_the_new_limits(harness: Harness) -> None:
    clients = [await harness.client() for _ in range(3)]
    assert len(harness.server.conns) == 3
    for conn in harness.server.conns.values():
        server_ws = conn.ws
        assert server_ws.ping_interval is None and server_ws.ping_timeout is None  # 0: off
        assert server_ws.keepalive_task is None
        # the read-ahead bound reached websockets (its attribute differs across versions)
        high = getattr(server_ws, "max_queue_high", None) or server_ws.max_queue[0]
        assert high == 3
    assert harness.server._writer.flush_clients == 1
    for ws in clients:  # one client per slice, all served
        await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
        await recv(ws)
    for _ in range(4):
        harness.bus.frame()
    for ws in clients:
        assert [(await recv(ws))["seq"] for _ in range(4)] == [1, 2, 3, 4]
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        assert await recv(ws) == {"type": "pong", "id": "p"}
