"""Slow consumers: closed with 4000, resumed with nothing lost, never delaying others."""

from __future__ import annotations

import asyncio

import pytest

from bridge.client import BridgeClient

from .conftest import Harness

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
    while harness.server.metrics.slow_closes._value.get() == 0:  # bounded by the assert below
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
