"""Slow consumers: closed with 4000, resumed with nothing lost, never delaying others; clients
that send faster than they read are back-pressured; a client that reads nothing never holds a
connection (or a shutdown) for longer than the limits say."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bridge.client import BridgeClient
from bridge.session import QueueLimits, Session

from .conftest import SLOW_LIMITS, TIMEOUT, Harness, recv, recv_raw, slow_closes, stalled_client

PAD = "ab" * 1000  # 2 KB per frame so the socket buffers fill after a few MB


@pytest.mark.limits(queue_messages=200, queue_bytes=1_000_000)
@pytest.mark.history(size=20_000)
async def test_stalled_client_closed_4000_resumes_without_loss(harness: Harness) -> None:
    slow = BridgeClient(harness.url, max_queue=5)  # stops reading when 5 are unconsumed
    fast = BridgeClient(harness.url)
    await slow.connect()
    await fast.connect()
    await slow.subscribe(["bus0/*"])
    await fast.subscribe(["bus0/*"])
    got_fast: list[int] = []

    async def consume_fast() -> None:
        while len(got_fast) < total[0]:
            got_fast.append((await fast.recv(5))["seq"])

    total = [10**9]
    fast_task = asyncio.create_task(consume_fast())
    published = 0
    while slow_closes(harness) == 0:  # bounded by the assert below
        for _ in range(50):
            harness.bus.frame(data=PAD)
        published += 50
        assert published < 12_000, "the stalled client was never closed"
        await asyncio.sleep(0.002)
    for _ in range(100):  # published while the slow client is gone: history covers it
        harness.bus.frame(data=PAD)
    published += 100
    total[0] = published
    await asyncio.wait_for(fast_task, 15)
    assert got_fast == list(range(1, published + 1))  # the healthy client got everything
    assert fast.close_codes == []
    got_slow = [(await slow.recv(5))["seq"] for _ in range(published)]
    assert got_slow == list(range(1, published + 1))
    assert 4000 in slow.close_codes
    assert slow.resumes and slow.resumes[-1]["recovered"]["bus0"] is True
    await slow.close()
    await fast.close()


# -- answers past the bound: the server stops reading the client instead (pure part) ----------


def test_force_queues_past_the_bound_and_backlogged_says_stop_reading() -> None:
    wakes: list[int] = []
    s = Session("s", QueueLimits(max_messages=6, max_bytes=1000), 0.0, lambda: wakes.append(1))
    assert all(s.offer(f"m{i}") for i in range(2))
    assert wakes == [1] and not s.backlogged()
    s.force(["pong-1"])
    assert len(s) == 3 and s.backlogged()  # half the bound: read nothing more from this client
    s.force(["pong-2", "pong-3", "pong-4", "pong-5"])  # what was already read is answered
    assert len(s) == 7 and not s.overflowed and wakes == [1]  # even past the bound
    assert s.take_batch() == ["m0", "m1", "pong-1", "pong-2", "pong-3", "pong-4", "pong-5"]
    assert not s.backlogged()
    assert all(s.offer(f"n{i}") for i in range(2))  # live traffic goes on
    assert not s.backlogged()


def test_backlogged_counts_bytes_too() -> None:
    s = Session("s", QueueLimits(max_messages=100, max_bytes=20), 0.0)
    assert s.offer("012345678") and not s.backlogged()
    s.force(["a"])
    assert s.queued_bytes == 10 and s.backlogged()


def test_overflow_drops_the_queue_once_and_wakes() -> None:
    wakes: list[int] = []
    s = Session("s", QueueLimits(), 0.0, lambda: wakes.append(1))
    assert s.offer("a") and s.offer("b")
    s.overflow()  # what the writer does to a client that read nothing for stall_timeout_s
    assert s.overflowed and len(s) == 0 and s.dropped == 2 and wakes == [1, 1]
    s.overflow()
    assert s.dropped == 2 and wakes == [1, 1]  # once


def test_big_replay_is_queued_whole_and_in_order() -> None:
    wakes: list[int] = []
    limits = QueueLimits(max_messages=3, max_bytes=50, batch_messages=64, batch_bytes=1 << 20)
    s = Session("s", limits, 0.0, lambda: wakes.append(1))
    replay = [f'{{"seq":{i},"pad":"{"x" * 20}"}}' for i in range(100)]
    s.force(["subscribed", *replay])  # 101 messages, ~3 KB: far past the bound
    assert len(s) == 101 and not s.overflowed and wakes == [1] and s.backlogged()
    drained: list[str] = []
    while len(s):
        drained += s.take_batch()
    assert drained == ["subscribed", *replay]  # in order, nothing lost


def test_force_on_an_overflowed_or_closing_session_queues_nothing() -> None:
    s = Session("s", QueueLimits(max_messages=1, max_bytes=1000), 0.0)
    assert s.offer("a") and not s.offer("b")  # overflowed: the server closes it with 4000
    s.force(["pong"])
    assert len(s) == 0
    t = Session("t", QueueLimits(), 0.0)
    t.closing = True
    t.force(["pong"])
    assert len(t) == 0


# -- a client that sends faster than it reads is read no faster than it reads ----------------------


@pytest.mark.limits(**SLOW_LIMITS)
async def test_pipelined_pings_without_reading_are_back_pressured_and_all_answered(
    harness: Harness,
) -> None:
    healthy = await harness.client()
    await healthy.send(json.dumps({"type": "subscribe", "id": "s", "topics": ["bus0/*"]}))
    assert (await recv(healthy))["type"] == "subscribed"
    slow, slow_conn = await stalled_client(harness)
    bound = SLOW_LIMITS["queue_messages"]
    count = 40 * bound
    pad = "p" * 100  # pongs echo the id: ~130 bytes each

    async def send_all() -> None:  # blocks when the buffers fill: the server stopped reading
        for i in range(count):
            await slow.send(json.dumps({"type": "ping", "id": f"{i:06d}{pad}"}))

    sender = asyncio.create_task(send_all())
    try:
        # the server's reader for that client waits for room, its queue at half the bound + 1
        await harness.wait_for(lambda: slow_conn.room is not None)
        assert bound // 2 <= len(slow_conn.session) <= bound // 2 + 1
        # meanwhile another client is served as usual
        for i in range(5):
            harness.bus.frame()
            await healthy.send(json.dumps({"type": "ping", "id": f"h{i}"}))
        got = [await recv(healthy) for _ in range(10)]
        assert [m["seq"] for m in got if m["type"] == "frame"] == [1, 2, 3, 4, 5]
        assert [m["id"] for m in got if m["type"] == "pong"] == [f"h{i}" for i in range(5)]
        assert len(slow_conn.session) <= bound // 2 + 1  # still stalled, still bounded
        # the slow client reads at last: every ping is answered, in order; nobody was closed
        ids: list[int] = []
        while len(ids) < count:
            ids += [int(m["id"][:6]) for m in await recv_raw(slow) if m["type"] == "pong"]
        assert ids == list(range(count))
        await asyncio.wait_for(sender, TIMEOUT)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
    assert slow.close_code is None and healthy.close_code is None
    assert len(harness.server.conns) == 2 and slow_closes(harness) == 0


@pytest.mark.limits(queue_messages=50)
async def test_a_reading_client_may_pipeline_more_pings_than_the_queue_bound(
    harness: Harness,
) -> None:
    ws = await harness.client()
    got: list[dict[str, Any]] = []

    async def read() -> None:
        while len(got) < 200:
            got.append(await recv(ws))

    reader = asyncio.create_task(read())
    for i in range(200):  # one burst: the server reads them all in one go
        await ws.send(json.dumps({"type": "ping", "id": i}))
    await asyncio.wait_for(reader, TIMEOUT)
    assert [m["id"] for m in got] == list(range(200))
    assert slow_closes(harness) == 0


@pytest.mark.limits(**{**SLOW_LIMITS, "close_timeout_s": 0.3}, stall_timeout_s=0.5)
async def test_a_client_that_reads_nothing_is_closed_after_the_stall_timeout(
    harness: Harness,
) -> None:
    """Not subscribed, so no live traffic would ever overflow it; websockets' keepalive pings
    wait behind the full buffer too: only the stall timeout ends it."""
    slow, slow_conn = await stalled_client(harness)
    big = "s" * 2000

    async def send_states() -> None:  # big answers: the buffers fill after a few
        for i in range(1000):
            await slow.send(json.dumps({"type": "state", "id": f"{i}{big}"}))

    sender = asyncio.create_task(send_states())
    try:
        await harness.wait_for(lambda: slow_conn.blocked)  # the writer waits for the socket
        await harness.wait_for(lambda: slow_conn.session.id not in harness.server.conns)
        # ended by the stall timeout (nothing else would end it): the 4000 was sent
        assert slow_conn.session.overflowed and slow_closes(harness) == 1
        close_sent = slow_conn.ws.protocol.close_sent
        assert close_sent is not None and close_sent.code == 4000
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender


@pytest.mark.limits(hello_timeout_s=0.5, close_timeout_s=0.3)
async def test_junk_before_hello_without_reading_is_closed_in_time(harness: Harness) -> None:
    """The error answers before hello fill the buffers: the 4001 close must still be bounded
    (websockets' close() waits for the buffer to drain before its own timeout applies)."""
    slow, slow_conn = await stalled_client(harness, hello=False)
    junk = json.dumps({"type": "ping", "id": "j" * 3000})  # "send hello first", echoing the id

    async def send_junk() -> None:
        for _ in range(1000):
            await slow.send(junk)

    sender = asyncio.create_task(send_junk())
    try:
        await harness.wait_for(lambda: slow_conn.session.id not in harness.server.conns)
        assert slow_conn.ws.transport.is_closing()
        hello_timeouts = harness.server.metrics.registry.get_sample_value(
            "framebridge_rejected_connections_total", {"reason": "hello_timeout"}
        )
        assert hello_timeouts == 1  # closed by the hello deadline, not by anything else
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender


@pytest.mark.limits(**{**SLOW_LIMITS, "close_timeout_s": 0.3}, stall_timeout_s=60.0)
async def test_shutdown_is_not_held_up_by_a_client_that_reads_nothing(harness: Harness) -> None:
    healthy = await harness.client()
    slow, slow_conn = await stalled_client(harness)
    big = "s" * 2000

    async def send_states() -> None:
        for i in range(1000):
            await slow.send(json.dumps({"type": "state", "id": f"{i}{big}"}))

    sender = asyncio.create_task(send_states())
    try:
        await harness.wait_for(lambda: slow_conn.blocked)
        # stall_timeout_s is 60 s: only close_timeout_s (0.3 s) can end the slow client's close
        # within this bound
        await asyncio.wait_for(harness.server.close(), 10)
        assert harness.server.conns == {}
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(healthy)
        assert healthy.close_code == 1001 and healthy.close_reason == "shutdown"
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
