"""Lease churn: an owner whose Redis is too slow for its lease (issue 13's overloaded host)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bridge.cluster.keys import encode_payload
from bridge.cluster.link import RedisLink
from bridge.cluster.scripts import APPEND
from bridge.cluster.store import WRITE_BATCH, RedisStore
from bridge.config import RedisConfig
from bridge.contract import Position
from bridge.store import Stamped
from tests.servers import RedisProcess

from .harness import (
    Client,
    NodeProc,
    PausableProxy,
    redis_cli,
    start_node,
    until,
    wait_for,
    watching,
)


def owner_key(prefix: str) -> str:
    return f"{{{prefix}:bus0}}:owner"


def owned(node: NodeProc) -> list[str] | None:
    return ((node.health_now() or {}).get("cluster") or {}).get("owned")


def accepted(client: Client, bus: str) -> dict[int, dict[str, Any]]:
    """What the client holds as the bus's history, by seq: an unsequenced ``bus_reset``
    withdraws everything before it (the client forgets its position, docs/websocket.md)."""
    start = max(client.resets, default=0)
    return {m["seq"]: m for m in client.messages[start:] if m["bus"] == bus}


async def test_an_owner_that_served_while_degraded_and_lost_its_lease_resets_its_clients(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    """Regression (issue 13, lease churn on a loaded host): A's Redis stops answering for
    longer than the lease. A's writes time out, so it serves its own client at once
    (degraded), under seqs Redis never gets; B takes the lease and numbers the same seqs anew.
    A then loses the lease. Its client used to get nothing (B's messages were duplicates of
    seqs it had passed on) until B overtook A's seq, and then B's messages as if nothing had
    happened: a silent stall, and seqs that mean another message on every other node (its
    resume said ``recovered: false``, or ``true`` with the wrong history). Now A tells its
    client to forget the bus's position (an unsequenced ``bus_reset``) and passes B's
    messages on from where Redis is: every seq the client holds is the one B's client has."""
    proxy = await PausableProxy(redis.port).start()
    via = f"redis://127.0.0.1:{proxy.port}/0"
    a = await start_node(tmp_path, "A", via, {"bus0": sim}, prefix=prefix)
    b = await start_node(tmp_path, "B", redis.url, {"bus0": sim}, prefix=prefix)
    try:
        on_a, on_b = await watching(a, b)
        proxy.pause()  # A's Redis answers nothing; its lease runs out
        await wait_for(lambda: owned(b) == ["bus0"], "B takes bus0 over")
        count = len(on_b.seqs("bus0"))
        await wait_for(lambda: len(on_b.seqs("bus0")) >= count + 3, "B's own frames")
        served = max(on_a.seqs("bus0"))
        proxy.resume()
        resumed = time.monotonic()
        await wait_for(lambda: owned(a) == [], "A gives bus0 up")
        mark = len(on_a.messages)
        await wait_for(lambda: len(on_a.messages) >= mark + 3, "frames on A after the churn")
        stall = time.monotonic() - resumed
        await wait_for(
            lambda: max(on_b.seqs("bus0")) >= max(on_a.seqs("bus0")), "B's client as far"
        )
        theirs = accepted(on_b, "bus0")
        mine = accepted(on_a, "bus0")
        differ = [s for s, m in mine.items() if s in theirs and theirs[s] != m]
        assert not differ, (served, differ[:5], on_a.resets)
        seqs = sorted(mine)
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs
        assert stall < 5.0, stall
        assert "framebridge_cluster_withdrawals_total 1.0" in await a.metrics()
        for client in (on_a, on_b):
            await client.close()
    finally:
        await a.stop()
        await b.stop()
        await proxy.close()


async def test_an_owner_that_takes_its_lease_again_after_another_wrote_numbers_after_redis(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    """Regression (issue 13, lease churn): A's Redis answers nothing (no error: its writes and
    its lease renewal hang) for longer than the lease; B takes the bus over and numbers
    frames, then B dies and its lease runs out too; Redis answers A again: the renewal fails,
    A takes the free lease again and writes what it numbered meanwhile. A used to go on with
    its own numbering: the append script skipped every seq B had written as "already there",
    A gave its clients its own messages under B's seqs, and the stream did not move until
    A's numbering overtook B's (everyone else's clients silent meanwhile). Now the script
    says ``taken`` and A numbers on from Redis: every client holds the stream's history."""
    proxy = await PausableProxy(redis.port).start()
    via = f"redis://127.0.0.1:{proxy.port}/0"
    a = await start_node(tmp_path, "A", via, {"bus0": sim}, prefix=prefix, command_timeout_s=30.0)
    b = await start_node(tmp_path, "B", redis.url, {"bus0": sim}, prefix=prefix)
    c = await start_node(tmp_path, "C", redis.url, {}, prefix=prefix)
    try:
        await wait_for(lambda: "bus0" in (c.health_now() or {}).get("buses", {}), "C: bus0")
        on_a, on_c = await watching(a, c)
        proxy.pause()
        try:
            await wait_for(lambda: owned(b) == ["bus0"], "B takes bus0 over")
            count = len(on_c.seqs("bus0"))
            await wait_for(lambda: len(on_c.seqs("bus0")) >= count + 20, "B's frames on C")
            await b.stop(kill=True)
            await wait_for(
                lambda: redis_cli(redis, "exists", owner_key(prefix)) == "0", "B's lease expires"
            )
        finally:
            proxy.resume()
        woke = time.monotonic()
        mark = len(on_c.messages)
        await wait_for(lambda: len(on_c.messages) >= mark + 5, "A's frames on C")
        stall = time.monotonic() - woke
        await wait_for(lambda: owned(a) == ["bus0"], "A owns bus0")
        seqs = on_c.seqs("bus0")
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs
        await wait_for(
            lambda: max(on_a.seqs("bus0")) >= max(on_c.seqs("bus0")), "A's client as far"
        )
        theirs, mine = accepted(on_c, "bus0"), accepted(on_a, "bus0")
        differ = [s for s, m in mine.items() if s in theirs and theirs[s] != m]
        assert not differ, (differ[:5], on_a.resets)
        assert stall < 5.0, stall
        for client in (on_a, on_c):
            await client.close()
    finally:
        for node in (a, b, c):
            await node.stop()
        await proxy.close()


async def test_a_numbering_gone_stale_is_refused_as_taken_and_a_retried_batch_is_not(
    redis: RedisProcess, prefix: str
) -> None:
    """The append script, driven by two stores on one real Redis with the leases set by hand:
    A writes seqs 1-3, its lease goes to B which writes 4-6, then A holds the lease again and
    appends its next seq, 4. Before: the script skipped 4 as "already written" and answered
    ok, so A gave its clients its own 4 (the stream has B's) and went on numbering below the
    stream. Now it answers ``taken`` and A shows nothing. A batch of A's own that is sent
    again (a write whose answer timed out) still passes."""
    la = RedisLink(RedisConfig(redis.url, prefix=prefix), "A")
    lb = RedisLink(RedisConfig(redis.url, prefix=prefix), "B")
    a, b = RedisStore(la), RedisStore(lb)
    shown: list[Stamped] = []
    taken: list[str] = []
    a.on_written, a.on_taken = shown.extend, taken.append
    owner = la.keys.owner("bus0")

    async def write(store: RedisStore, token: str, n: int) -> None:
        await la.client.set(owner, token)
        await store.open_bus("bus0", 7, token)
        for i in range(n):
            store.append("bus0", {"type": "frame", "addr": 1, "data": f"{i:02x}"}, 0.0)
        assert await store.flush("bus0", 5.0)

    try:
        await write(a, "A 1", 3)
        await write(b, "B 2", 3)
        await la.client.set(owner, "A 3")
        a.resume("bus0", "A 3")  # A's numbering is still at 3
        a.append("bus0", {"type": "frame", "addr": 1, "data": "ff"}, 0.0)
        await asyncio.wait_for(until(lambda: taken or len(shown) > 3), 5)
        assert taken == ["bus0"] and [e.seq for e in shown] == [1, 2, 3]
        assert await a.meta("bus0") == Position(7, 6)
        again: list[object] = [7, "A 3", 1024, 300_000, 300_000, "ch", "publish", "0"]
        for e in shown:
            again += [e.seq, encode_payload(e, "A")]
        keys = [la.keys.stream("bus0"), la.keys.meta("bus0"), owner]
        assert await la.script(APPEND)(keys=keys, args=again) == ["ok", "6"]
    finally:
        for store, link in ((a, la), (b, lb)):
            await store.close()
            await link.close()


async def test_a_backlog_is_written_in_bounded_batches(redis: RedisProcess, prefix: str) -> None:
    """A backlog goes to Redis in scripts of at most WRITE_BATCH entries, each within the
    command timeout, instead of one script that grows with every timeout."""
    link = RedisLink(RedisConfig(redis.url, prefix=prefix), "A")
    store = RedisStore(link)
    try:
        await store.open_bus("bus0", 7)
        for i in range(2 * WRITE_BATCH + 1):  # numbered at once: the writer runs after
            store.append("bus0", {"type": "frame", "addr": 1, "data": f"{i:04x}"}, 0.0)
        assert await store.flush("bus0", 10.0)
        assert store.batches == 3 and store.written == 2 * WRITE_BATCH + 1
        assert await store.meta("bus0") == Position(7, 2 * WRITE_BATCH + 1)
    finally:
        await store.close()
        await link.close()
