"""The server against real websockets clients on loopback, with a bus the test drives."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

import bridge.connection

from .conftest import Harness, recv, recv_raw, recv_until


async def closed_code(ws: object, timeout: float = 5.0) -> int | None:
    from websockets.asyncio.client import ClientConnection

    assert isinstance(ws, ClientConnection)
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code


async def test_hello_welcome_lists_buses_and_heartbeat(harness: Harness) -> None:
    harness.bus.frame()
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "id": "h", "token": "x"}))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["id"] == "h"
    assert welcome["node"] == "test" and welcome["session"]
    assert welcome["buses"] == {
        "bus0": {"epoch": 1000, "seq": 1},
        "bus1": {"epoch": 2000, "seq": 0},
    }
    assert welcome["heartbeat_s"] == 30.0


async def test_messages_before_hello_get_errors_then_hello_works(harness: Harness) -> None:
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "ping", "id": 1}))
    assert await recv(ws) == {
        "type": "error",
        "id": 1,
        "code": "hello_required",
        "message": "send hello first",
    }
    await ws.send("{nope")
    assert (await recv(ws))["code"] == "bad_json"
    await ws.send(json.dumps({"type": "hello", "token": "x"}))
    assert (await recv(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "hello", "token": "x", "id": 2}))
    assert (await recv(ws))["code"] == "already_hello"


async def test_hello_timeout_closes_4001(harness: Harness) -> None:
    ws = await harness.client(hello=False)
    assert await closed_code(ws) == 4001


@pytest.mark.tokens("s3cret")
async def test_wrong_token_closes_4003_right_token_welcomed(harness: Harness) -> None:
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "token": "wrong"}))
    assert await closed_code(ws) == 4003
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "token": "s3cret"}))
    assert (await recv(ws))["type"] == "welcome"


async def test_ping_pong_and_state(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "ping", "id": 7}))
    assert await recv(ws) == {"type": "pong", "id": 7}
    await ws.send(json.dumps({"type": "state", "id": "s"}))
    state = await recv(ws)
    assert state["type"] == "state" and state["id"] == "s"
    assert state["buses"]["bus0"]["up"] is True
    assert state["buses"]["bus0"]["devices"]["1"]["values"]["t"]["value"] == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"id": 1}', "missing_field"),
        ('{"type": 5, "id": 1}', "wrong_type"),
        ('{"type": "dance", "id": 1}', "unknown_type"),
        ('{"type": "subscribe", "id": 1}', "missing_field"),
        ('{"type": "subscribe", "id": 1, "topics": "bus0/*"}', "wrong_type"),
        ('{"type": "subscribe", "id": 1, "topics": ["bus0/x"]}', "bad_value"),
        ('{"type": "subscribe", "id": 1, "topics": ["nobus/*"]}', "bad_value"),
        ('{"type": "subscribe", "id": 1, "topics": ["*"], "since": {"bus0": 3}}', "wrong_type"),
        ('{"type": "request", "id": 1, "addr": 1, "cmd": 3}', "missing_field"),
        ('{"type": "request", "id": 1, "bus": "bus0", "addr": "1", "cmd": 3}', "wrong_type"),
        (
            '{"type": "request", "id": 1, "bus": "bus0", "addr": 1, "cmd": 3, "data": "zz"}',
            "bad_value",
        ),
        ('{"type": "request", "id": 1, "bus": "bus0", "addr": 999, "cmd": 3}', "bad_value"),
        ('{"type": "ping", "id": [1]}', "wrong_type"),
    ],
)
async def test_bad_messages_get_typed_errors_and_connection_stays(
    harness: Harness, message: str, code: str
) -> None:
    ws = await harness.client()
    await ws.send(message)
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == code, err
    assert err["message"]
    await ws.send(json.dumps({"type": "ping", "id": "after"}))
    assert await recv(ws) == {"type": "pong", "id": "after"}


async def test_binary_message_is_an_error_not_a_close(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(b"\x00\x01")
    assert (await recv(ws))["code"] == "bad_message"


@pytest.mark.limits(max_message_bytes=1024)
async def test_oversized_message_closes_1009(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
    assert await closed_code(ws) == 1009


@pytest.mark.limits(max_clients=2)
async def test_node_full_closes_1013(harness: Harness) -> None:
    """The node is full for clients that authenticate: the third is closed after its hello
    (the policy is asked once the client is known)."""
    a = await harness.client()
    b = await harness.client()
    c = await harness.client(hello=False)
    await c.send(json.dumps({"type": "hello", "token": "t"}))
    assert await closed_code(c) == 1013
    await a.close()
    await harness.wait_for(lambda: len(harness.server.conns) == 1)
    d = await harness.client()
    await d.send(json.dumps({"type": "ping", "id": 1}))
    assert (await recv(d))["type"] == "pong"
    await b.close()


async def test_subscribe_topics_filter_by_bus_and_address(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/2", "bus1/*"]}))
    sub = await recv(ws)
    assert sub == {"type": "subscribed", "id": 1, "topics": ["bus0/2", "bus1/*"], "recovered": {}}
    harness.bus.frame(addr=1)
    harness.bus.frame(addr=2, data="02")
    harness.buses["bus1"].frame(addr=9)
    harness.hub.publish("bus0", {"type": "event", "ts": 1.0, "event": "bus_down"}, 1.0)
    got = [await recv(ws) for _ in range(3)]
    assert [(m["bus"], m.get("addr"), m["seq"]) for m in got] == [
        ("bus0", 2, 2),
        ("bus1", 9, 1),
        ("bus0", None, 3),
    ]
    assert got[0]["epoch"] == 1000 and got[0]["data"] == "02" and got[0]["dir"] == "rx"
    assert got[2]["event"] == "bus_down"
    await ws.send(json.dumps({"type": "unsubscribe", "id": 2, "topics": ["bus1/*", "bus0/7"]}))
    assert await recv(ws) == {"type": "unsubscribed", "id": 2, "topics": ["bus1/*"]}
    harness.buses["bus1"].frame(addr=9)
    harness.bus.frame(addr=2)
    assert (await recv(ws))["bus"] == "bus0"


async def test_queued_messages_are_batched_as_one_json_array(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    await recv(ws)
    for _ in range(10):  # published in one loop step: the writer finds them queued together
        harness.bus.frame()
    batch = await recv_raw(ws)
    assert len(batch) == 10
    assert [m["seq"] for m in batch] == list(range(1, 11))


@pytest.mark.limits(flush_clients=2)  # 7 clients: a flush of 4 slices
async def test_flush_in_slices_delivers_everything_in_order(harness: Harness) -> None:
    clients = [await harness.client() for _ in range(7)]
    for ws in clients:
        await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
        await recv(ws)
    for _round in range(3):  # publishes while a sliced flush is under way join the next one
        for _ in range(5):
            harness.bus.frame()
        # let the flush progress between rounds (the order and completeness asserted below hold
        # however the publishes and the slices interleave)
        await asyncio.sleep(0.001)
    for ws in clients:
        seqs = [(await recv(ws))["seq"] for _ in range(15)]
        assert seqs == list(range(1, 16))


async def test_request_reply_is_routed_by_id(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(
        json.dumps(
            {
                "type": "request",
                "id": "r1",
                "bus": "bus0",
                "addr": 1,
                "cmd": "read_regs",
                "args": {"start": 0, "count": 1},
            }
        )
    )
    req, fut = await asyncio.wait_for(harness.bus.requests.get(), 5)
    assert req.cmd == "read_regs" and req.args == {"start": 0, "count": 1} and req.id == "r1"
    fut.set_result({"ok": True, "addr": 1, "cmd": 3, "data": "010100", "rtt_ms": 1.0})
    reply = await recv(ws)
    assert reply == {
        "type": "reply",
        "id": "r1",
        "ok": True,
        "addr": 1,
        "cmd": 3,
        "data": "010100",
        "rtt_ms": 1.0,
    }
    await ws.send(json.dumps({"type": "request", "id": 2, "bus": "nope", "addr": 1, "cmd": 3}))
    reply = await recv(ws)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"


async def test_resume_replays_missed_messages_in_order(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/*"]}))
    await recv(ws)
    harness.bus.frame()
    first = await recv(ws)
    await ws.close()
    for i in range(5):
        harness.bus.frame(data=f"{i:02x}")
    ws = await harness.client()
    since = {"bus0": {"epoch": first["epoch"], "seq": first["seq"]}}
    await ws.send(json.dumps({"type": "subscribe", "id": 2, "topics": ["bus0/*"], "since": since}))
    assert await recv(ws) == {
        "type": "subscribed",
        "id": 2,
        "topics": ["bus0/*"],
        "recovered": {"bus0": True},
    }
    harness.bus.frame(data="ff")  # live, after the replay
    got = [await recv(ws) for _ in range(6)]
    assert [m["seq"] for m in got] == [2, 3, 4, 5, 6, 7]
    assert got[-1]["data"] == "ff"


@pytest.mark.history(size=3)
async def test_resume_not_recovered_when_gap_too_old_or_epoch_differs(harness: Harness) -> None:
    for _ in range(10):
        harness.bus.frame()
    ws = await harness.client()
    since = {"bus0": {"epoch": 1000, "seq": 2}, "bus1": {"epoch": 999, "seq": 0}}
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"], "since": since}))
    sub = await recv(ws)
    assert sub["recovered"] == {"bus0": False, "bus1": False}
    harness.bus.frame()
    nxt = await recv(ws)
    assert nxt["seq"] == 11  # nothing partial was replayed
    since = {"bus0": {"epoch": 1000, "seq": 8}}
    await ws.send(json.dumps({"type": "subscribe", "id": 2, "topics": ["bus0/1"], "since": since}))
    sub = await recv(ws)
    assert sub["recovered"] == {"bus0": True}
    harness.bus.frame()  # 9 and 10 are not replayed after 11: a session's seqs only go up
    assert (await recv(ws))["seq"] == 12


@pytest.mark.limits(heartbeat_s=0.1)
async def test_heartbeat_when_idle(harness: Harness) -> None:
    ws = await harness.client()
    hb = await recv(ws, timeout=2)
    assert hb["type"] == "heartbeat" and isinstance(hb["ts"], float)


@pytest.mark.limits(ping_interval_s=0.1, ping_timeout_s=0.2)
async def test_client_missing_pongs_is_closed(harness: Harness) -> None:
    ws = await harness.client(ping_interval=None)
    assert ws.transport is not None
    ws.transport.pause_reading()  # our pongs stop: pings are never read
    await harness.wait_for(lambda: not harness.server.conns, timeout=3)
    ws.transport.resume_reading()
    await asyncio.wait_for(ws.wait_closed(), 3)
    assert ws.close_code in (1006, 1011)


async def test_http_endpoints(harness: Harness) -> None:
    ws = await harness.client()

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(harness.http + path, timeout=5) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()

    status, ctype, body = await asyncio.to_thread(get, "/healthz")
    health = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert health["clients"] == 1 and health["buses"]["bus0"]["up"] is True
    assert health["uptime_s"] >= 0
    status, ctype, body = await asyncio.to_thread(get, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert b"\nframebridge_clients 1.0\n" in body  # the counters: test_limits_health.py
    status, ctype, body = await asyncio.to_thread(get, "/api/state")
    assert status == 200 and json.loads(body)["buses"]["bus0"]["devices"]["1"]["online"]
    status, ctype, body = await asyncio.to_thread(get, "/")
    assert status == 200 and ctype.startswith("text/html")
    status, _, _ = await asyncio.to_thread(get, "/static/../server.py")
    assert status == 404
    status, _, _ = await asyncio.to_thread(get, "/nope")
    assert status == 404
    harness.server.stop_accepting()
    assert harness.server.health()[0] is False
    await ws.close()


async def test_shutdown_closes_clients_with_1001_after_pending_replies(harness: Harness) -> None:
    ws = await harness.client()
    await ws.send(json.dumps({"type": "request", "id": 1, "bus": "bus0", "addr": 1, "cmd": 1}))
    _, fut = await asyncio.wait_for(harness.bus.requests.get(), 5)
    harness.server.stop_accepting()
    await ws.send(json.dumps({"type": "request", "id": 2, "bus": "bus0", "addr": 1, "cmd": 1}))
    busy = await recv(ws)
    assert busy["id"] == 2 and busy["error"]["code"] == "busy"
    fut.set_result({"ok": True, "addr": 1, "cmd": 1, "data": ""})
    await harness.server.flush(2)
    await harness.server.close()
    reply, _ = await recv_until(ws, "reply")
    assert reply["id"] == 1 and reply["ok"] is True
    assert await closed_code(ws) == 1001


async def test_client_library_ends_even_when_its_queue_was_full(harness: Harness) -> None:
    from bridge.client import BridgeClient
    from bridge.errors import ClientClosed

    async with BridgeClient(harness.url, "t", reconnect=False, max_queue=2) as client:
        await client.subscribe(["*"])
        for _ in range(2):
            harness.bus.frame()
        await harness.wait_for(lambda: client._queue.full())
        await harness.server.close()  # 1001 while the client's queue is full
        assert [(await client.recv(5))["seq"] for _ in range(2)] == [1, 2]
        with pytest.raises(ClientClosed):
            await client.recv(5)  # the end is not lost: no hang until the timeout
        assert client.close_codes == [1001]


async def test_a_bridge_bug_on_one_message_is_an_error_reply_not_a_close(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await harness.client()

    def broken(*_args: object) -> dict[str, object]:
        raise RuntimeError("simulated bridge bug")

    monkeypatch.setattr(bridge.connection, "state_for", broken)
    await ws.send(json.dumps({"type": "state", "id": 7}))
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == "internal_error" and err["id"] == 7
    assert "simulated bridge bug" in caplog.text  # logged with its traceback
    await ws.send(json.dumps({"type": "ping", "id": 8}))
    assert await recv(ws) == {"type": "pong", "id": 8}
