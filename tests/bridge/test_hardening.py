"""Issue 10's breaks in the bridge's connection handling, over real sockets on loopback.

Each test here failed on main before the connection core (noted per test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .conftest import SLOW_LIMITS, TIMEOUT, Harness, recv, rejected, stalled_client
from .test_server import closed_code


def deep(levels: int) -> str:
    """A ping with ``levels`` nested lists around a string with a ``\\u`` escape. Which depth
    broke main depends on the stack in use (the JSON encoder that checked the escapes ran a
    frame deeper than the decoder: a window of one level), so the tests sweep a range."""
    return '{"type": "ping", "id": 1, "x": ' + "[" * levels + '"\\u00e9"' + "]" * levels + "}"


DEPTHS = range(930, 1001)


@pytest.mark.tokens("good")
@pytest.mark.limits(max_clients=2, max_pending=4)
async def test_hello_less_connections_do_not_lock_out_valid_tokens(harness: Harness) -> None:
    """Break 3. On main every connection counted against ``max_clients``: the idle ones made
    the valid token get 1013."""
    idle = [await harness.client(hello=False) for _ in range(10)]
    # the oldest went, one per newcomer over 4
    await harness.wait_for(lambda: rejected(harness, "pending") == 6)
    assert len(harness.server.pending) == 4
    for ws in idle[:6]:
        assert await closed_code(ws) == 1013
    good = [await harness.client(hello=False) for _ in range(3)]
    for ws in good:
        await ws.send(json.dumps({"type": "hello", "token": "good"}))
    outcomes = sorted([await _welcome_or_close(ws) for ws in good], key=str)
    assert outcomes == [1013, "welcome", "welcome"]  # max_clients counts authenticated ones
    assert harness.server.clients() == 2


async def test_hello_without_token_is_accepted_without_tokens(harness: Harness) -> None:
    """Papercut. On main: ``error`` ``missing_field``."""
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "id": 1}))
    welcome = await recv(ws)
    assert (welcome["type"], welcome["id"]) == ("welcome", 1)


@pytest.mark.tokens("good")
async def test_hello_without_token_is_missing_field_with_tokens(harness: Harness) -> None:
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "id": 1}))
    assert (await recv(ws))["code"] == "missing_field"


async def test_deep_json_is_never_an_internal_error_before_or_after_hello(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Break 6. On main, at one depth near 1,000 (the re-encoding check ran out of stack where
    the decoder had not): the handler died with 1011 before hello, and answered
    ``internal_error`` with a logged traceback after."""
    caplog.set_level(logging.DEBUG)
    ws = await harness.client(hello=False)
    for levels in DEPTHS:
        await ws.send(deep(levels))
        assert (await recv(ws))["type"] in ("error", "pong")  # hello_required or bad_json
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    assert (await recv(ws))["type"] == "welcome"
    for levels in DEPTHS:
        await ws.send(deep(levels))
        answer = await recv(ws)
        assert answer["type"] == "pong" or answer["code"] == "bad_json", (levels, answer)
    await ws.send(deep(5000))
    assert (await recv(ws))["code"] == "bad_json"
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.limits(**{**SLOW_LIMITS, "queue_messages": 4096, "queue_bytes": 4 * 1024 * 1024})
async def test_pipelined_state_never_read_holds_a_bounded_answer_backlog(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break 7: a client that pipelines ``state`` and reads nothing. On main its answers were
    queued up to half the 4 MiB bound (2.25 MiB per client with buffers); now reading stops at
    ``answer_bytes`` (64 KiB) of queued answers."""
    big = {str(a): {"addr": a, "pad": "x" * 1000} for a in range(1, 11)}  # ~10 KB answers
    for bus in harness.buses.values():
        monkeypatch.setattr(bus, "snapshot", lambda: dict(big))
    ws, conn = await stalled_client(harness)
    answer = len(json.dumps({"type": "state", "buses": {"bus0": {"devices": big}}})) * 2
    flood = asyncio.create_task(_send_many(ws, {"type": "state"}, 400))
    try:
        await harness.wait_for(lambda: conn.room is not None)  # the reader stopped reading
        limit = harness.server.limits.answer_bytes
        assert conn.session.queued_bytes <= limit + answer
        buffered = conn.ws.transport.get_write_buffer_size()
        assert buffered <= harness.server.limits.write_limit_bytes + answer
        assert not conn.session.overflowed  # answers are held back, not a reason for 4000
    finally:
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood


@pytest.mark.limits(message_rate=50.0, message_burst=10, flood_close_s=0.3)
async def test_a_sustained_ping_flood_is_closed_1008(harness: Harness) -> None:
    """Break 8. On main there was no per-connection rate: the flood was answered for ever."""
    ws = await harness.client()
    flood = asyncio.create_task(_send_many(ws, {"type": "ping"}, 100_000))
    try:
        assert await closed_code(ws) == 1008
    finally:
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await flood
    assert rejected(harness, "flood") == 1


@pytest.mark.limits(message_rate=50.0, message_burst=10, flood_close_s=1.0)
async def test_a_burst_is_slowed_down_not_closed(harness: Harness) -> None:
    ws = await harness.client()
    for i in range(20):  # twice the bucket: the second half is paced, not refused
        await ws.send(json.dumps({"type": "ping", "id": i}))
    got = [await recv(ws) for _ in range(20)]
    assert [g["id"] for g in got] == list(range(20))
    await ws.send(json.dumps({"type": "ping", "id": "after"}))
    assert (await recv(ws))["id"] == "after"


async def test_requests_name_their_client(harness: Harness) -> None:
    """The bus owner gets ``client=`` the session id (the per-client in-flight limit's key)."""
    seen: list[str] = []
    bus = harness.bus
    original = bus.submit

    def submit(request: Any, client: str = "") -> Any:
        seen.append(client)
        return original(request, client)

    bus.submit = submit  # type: ignore[method-assign]
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    session = (await recv(ws))["session"]
    await ws.send(json.dumps({"type": "request", "bus": "bus0", "addr": 1, "cmd": 3, "id": 1}))
    _request, fut = await asyncio.wait_for(bus.requests.get(), TIMEOUT)
    fut.set_result({"ok": True})
    assert (await recv(ws))["ok"] is True
    assert seen == [session]


async def _send_many(ws: ClientConnection, message: dict[str, Any], count: int) -> None:
    text = json.dumps(message)
    with contextlib.suppress(ConnectionClosed):
        for _ in range(count):
            await ws.send(text)


async def _welcome_or_close(ws: ClientConnection) -> str | int | None:
    try:
        return str((await recv(ws))["type"])
    except ConnectionClosed:
        return ws.close_code
