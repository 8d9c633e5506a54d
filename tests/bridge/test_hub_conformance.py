"""What every hub implementation must do: order, replay at the edges, concurrency.

Parametrised over implementations through :func:`make_nodes`: each returns ``n`` node hubs that
share one store and one broker: in memory, and over a real ``redis-server``
(:class:`bridge.cluster.store.RedisStore`; the nodes of one process share its store and broker
as the in-memory ones do, so the Redis Stream, meta hash and scripts are what is tested here;
``tests/cluster/`` runs nodes as separate processes). A :class:`GatedStore` wraps any store so
a test can hold a subscribe's ``since`` open while it publishes: interleavings are forced, never
slept for.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest

from bridge import contract as c
from bridge.broker import Broker, MemoryBroker
from bridge.cluster.broker import RedisBroker
from bridge.cluster.link import RedisLink
from bridge.cluster.store import RedisStore
from bridge.config import RedisConfig
from bridge.contract import Position
from bridge.fanout import InMemoryHub, NodeHub
from bridge.session import QueueLimits, Session
from bridge.store import HistoryStore, MemoryStore, Stamped
from tests.servers import redis_server

EPOCH = 77
SIZE = 8
TTL = 100.0

NodesFactory = Callable[..., list[NodeHub]]


class GatedStore:
    """A store whose ``since`` waits for the test to open a gate: a slow network store."""

    def __init__(self, inner: HistoryStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def add_bus(self, bus: str, epoch: int) -> None:
        self.inner.add_bus(bus, epoch)

    def buses(self) -> list[str]:
        return self.inner.buses()

    def position(self, bus: str) -> Position:
        return self.inner.position(bus)

    def append(self, bus: str, message: Mapping[str, Any], now: float) -> Stamped:
        return self.inner.append(bus, message, now)

    async def since(self, bus: str, pos: Position, now: float) -> list[Stamped] | None:
        # read first, answer late: what the store had when asked, as a network store would
        entries = await self.inner.since(bus, pos, now)
        self.entered.set()
        await asyncio.wait_for(self.gate.wait(), 5.0)
        return entries


def memory_nodes(n: int = 1, *, gated: bool = False) -> list[NodeHub]:
    store: HistoryStore = MemoryStore(size=SIZE, ttl_s=TTL)
    if gated:
        store = GatedStore(store)
    store.add_bus("b", EPOCH)
    store.add_bus("z", EPOCH + 1)
    broker = MemoryBroker()
    return [NodeHub(store, broker) for _ in range(n)]


_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
async def make_nodes(request: pytest.FixtureRequest) -> AsyncIterator[NodesFactory]:
    if request.param == "memory":
        yield memory_nodes
        return
    url: str = request.getfixturevalue("redis_url")
    opened: list[tuple[RedisStore, RedisLink]] = []

    def redis_nodes(n: int = 1, *, gated: bool = False) -> list[NodeHub]:
        link = RedisLink(RedisConfig(url, prefix=f"conf{next(_prefixes)}"), node="n1")
        redis_store = RedisStore(link, size=SIZE, ttl_s=TTL)
        opened.append((redis_store, link))
        store: HistoryStore = GatedStore(redis_store) if gated else redis_store
        store.add_bus("b", EPOCH)
        store.add_bus("z", EPOCH + 1)
        broker: Broker = RedisBroker(link)  # one process: its nodes share it, as in memory
        return [NodeHub(store, broker) for _ in range(n)]

    yield redis_nodes
    for store, link in opened:
        await store.close()
        await link.close()


def session(name: str = "s", max_messages: int = 4096) -> Session:
    return Session(name, QueueLimits(max_messages=max_messages), 0.0)


def drain(s: Session) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while batch := s.take_batch():
        out.extend(json.loads(t) for t in batch)
    return out


def frame(addr: int = 1, ts: float = 0.0) -> dict[str, Any]:
    return {"type": "frame", "addr": addr, "ts": ts, "data": "00"}


def publish(hub: NodeHub, n: int, bus: str = "b", ts: float = 0.0) -> list[int]:
    return [hub.publish(bus, frame(1 + i % 3, ts), ts) for i in range(n)]


ALL = [c.parse_topic("*")]
B = [c.parse_topic("b/*")]


# -- order -------------------------------------------------------------------------------------


async def test_seqs_are_consecutive_and_every_node_delivers_in_order(
    make_nodes: NodesFactory,
) -> None:
    a, b = make_nodes(2)
    sa, sb = session("a"), session("b")
    await a.subscribe(sa, ALL, {}, 0.0)
    await b.subscribe(sb, B, {}, 0.0)
    assert publish(a, 5) == [1, 2, 3, 4, 5]
    a.publish("z", frame(), 0.0)
    assert [m["seq"] for m in drain(sa) if m["bus"] == "b"] == [1, 2, 3, 4, 5]
    got = drain(sb)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5] and {m["epoch"] for m in got} == {EPOCH}
    assert a.position("b") == b.position("b") == Position(EPOCH, 5)


async def test_a_node_drops_duplicates_and_holds_early_messages_until_the_gap_fills(
    make_nodes: NodesFactory,
) -> None:
    (hub,) = make_nodes(1)
    s = session()
    await hub.subscribe(s, B, {}, 0.0)
    stamped = [hub.store.append("b", frame(), 0.0) for _ in range(3)]
    hub.fanout.receive(stamped[0])
    hub.fanout.receive(stamped[2])  # early: held
    hub.fanout.receive(stamped[0])  # again: dropped
    assert [m["seq"] for m in drain(s)] == [1] and hub.fanout.missing("b")
    assert await hub.catch_up("b", 0.0)  # the gap is filled from the store
    assert [m["seq"] for m in drain(s)] == [2, 3] and not hub.fanout.missing("b")
    assert hub.stats.duplicates >= 1


# -- replay at the edges -----------------------------------------------------------------------


async def resume(hub: NodeHub, since: Position, now: float = 0.0) -> tuple[bool, list[int]]:
    s = session()
    result = await hub.subscribe(s, B, {"b": since}, now)
    return result.recovered["b"], [json.loads(t)["seq"] for t in result.replay]


@pytest.mark.parametrize(
    ("since_seq", "expected"),
    [
        (12, (True, [])),  # up to date
        (10, (True, [11, 12])),
        (4, (True, list(range(5, 13)))),  # exactly the oldest kept (5) is the first replayed
        (3, (False, [])),  # seq 4 is gone: all or nothing
        (0, (False, [])),  # seq 0 with a history that lost its start
        (13, (False, [])),  # from the future
    ],
)
async def test_replay_edges_of_size(
    make_nodes: NodesFactory, since_seq: int, expected: tuple[bool, list[int]]
) -> None:
    (hub,) = make_nodes(1)
    publish(hub, 12)  # SIZE 8 keeps 5..12
    assert await resume(hub, Position(EPOCH, since_seq)) == expected


async def test_replay_from_seq_0_while_everything_is_kept(make_nodes: NodesFactory) -> None:
    (hub,) = make_nodes(1)
    assert await resume(hub, Position(EPOCH, 0)) == (True, [])
    publish(hub, 3)
    assert await resume(hub, Position(EPOCH, 0)) == (True, [1, 2, 3])


async def test_replay_wrong_epoch_and_unknown_bus(make_nodes: NodesFactory) -> None:
    (hub,) = make_nodes(1)
    publish(hub, 3)
    assert await resume(hub, Position(EPOCH + 5, 1)) == (False, [])
    s = session()
    result = await hub.subscribe(s, B, {"nope": Position(EPOCH, 1)}, 0.0)
    assert result.recovered == {"nope": False}
    assert hub.stats.resumes_lost == 2


async def test_replay_edges_of_ttl(make_nodes: NodesFactory) -> None:
    (hub,) = make_nodes(1)
    publish(hub, 2, ts=0.0)
    publish(hub, 2, ts=50.0)
    assert await resume(hub, Position(EPOCH, 0), now=TTL) == (True, [1, 2, 3, 4])
    assert await resume(hub, Position(EPOCH, 0), now=TTL + 1) == (False, [])  # 1, 2 expired
    assert await resume(hub, Position(EPOCH, 2), now=TTL + 1) == (True, [3, 4])
    assert await resume(hub, Position(EPOCH, 4), now=10 * TTL) == (True, [])  # up to date


async def test_a_resume_on_a_bus_the_session_has_replays_nothing_twice(
    make_nodes: NodesFactory,
) -> None:
    (hub,) = make_nodes(1)
    s = session()
    await hub.subscribe(s, B, {}, 0.0)
    publish(hub, 3)
    result = await hub.subscribe(s, B, {"b": Position(EPOCH, 1)}, 0.0)
    assert result.recovered == {"b": True} and result.replay == []
    publish(hub, 1)
    assert [m["seq"] for m in drain(s)] == [1, 2, 3, 4]


async def test_a_client_ahead_of_this_node_gets_no_seq_twice(make_nodes: NodesFactory) -> None:
    (hub,) = make_nodes(1)
    publish(hub, 3)
    s = session()
    # it had 5 from a node further on; this node has passed on 3 so far
    stamped = [hub.store.append("b", frame(), 0.0) for _ in range(3)]  # 4, 5, 6: not delivered
    result = await hub.subscribe(s, B, {"b": Position(EPOCH, 5)}, 0.0)
    assert result.recovered == {"b": True} and result.replay == []
    for st in stamped:
        hub.fanout.receive(st)
    assert [m["seq"] for m in drain(s)] == [6]


async def test_a_client_ahead_joins_live_only_once_this_node_passes_it(
    make_nodes: NodesFactory,
) -> None:
    (hub,) = make_nodes(1)
    publish(hub, 2)
    s = session()
    stamped = [hub.store.append("b", frame(), 0.0) for _ in range(4)]  # 3..6, not delivered
    await hub.subscribe(s, B, {"b": Position(EPOCH, 5)}, 0.0)
    await hub.subscribe(s, [c.parse_topic("z/*")], {}, 0.0)  # more topics while it waits
    hub.publish("z", frame(), 0.0)
    for st in stamped[:2]:
        hub.fanout.receive(st)
    assert drain(s) == []  # 3, 4: it had them; z's message waits with them
    for st in stamped[2:]:
        hub.fanout.receive(st)
    hub.publish("z", frame(), 0.0)
    got = [(m["bus"], m["seq"]) for m in drain(s)]
    assert sorted(got) == [("b", 6), ("z", 1), ("z", 2)] and got.index(("z", 1)) < got.index(
        ("z", 2)
    )


async def test_unsubscribe_then_resume_gives_nothing_twice(make_nodes: NodesFactory) -> None:
    (hub,) = make_nodes(1)
    s = session()
    await hub.subscribe(s, B, {}, 0.0)
    publish(hub, 3)
    hub.unsubscribe(s, B)
    publish(hub, 2)
    result = await hub.subscribe(s, B, {"b": Position(EPOCH, 1)}, 0.0)
    s.force(result.replay)
    assert [m["seq"] for m in drain(s)] == [1, 2, 3, 4, 5]  # 4, 5 replayed; 2, 3 not again


async def test_after_a_flush_a_client_in_the_new_epoch_gets_no_seq_twice(redis_url: str) -> None:
    # Redis flushed: the store (and the node the client came from) went on in a new epoch that
    # this node has not passed on yet; the client had its seqs 1 and 2 (docs/testing.md)
    link = RedisLink(RedisConfig(redis_url, prefix=f"conf{next(_prefixes)}"), node="n1")
    store = RedisStore(link, size=SIZE, ttl_s=TTL)
    try:
        store.add_bus("b", EPOCH)
        hub = NodeHub(store, RedisBroker(link))
        publish(hub, 3)
        store.start_over("b", "flushed")
        newer = [store.append("b", frame(), 0.0) for _ in range(3)]  # not passed on here yet
        epoch = newer[0].epoch
        assert epoch > EPOCH
        s = session()
        result = await hub.subscribe(s, B, {"b": Position(epoch, 2)}, 0.0)
        assert result.recovered == {"b": True} and result.replay == []
        for st in newer:
            hub.fanout.receive(st)
        assert [(m["epoch"], m["seq"]) for m in drain(s)] == [(epoch, 3)]
    finally:
        await store.close()
        await link.close()


# -- concurrency: a slow store forces the interleavings ----------------------------------------


async def subscribe_while(
    hub: NodeHub, s: Session, since: Mapping[str, Position], during: Callable[[], object]
) -> list[int]:
    store = hub.store
    assert isinstance(store, GatedStore)
    store.gate.clear()
    store.entered.clear()
    task = asyncio.create_task(hub.subscribe(s, B, since, 0.0))
    await asyncio.wait_for(store.entered.wait(), 5.0)
    during()
    store.gate.set()
    result = await asyncio.wait_for(task, 5.0)
    s.force(result.replay)
    return [m["seq"] for m in drain(s)]


@pytest.fixture
def gated(make_nodes: NodesFactory) -> list[NodeHub]:
    return make_nodes(2, gated=True)


async def test_publish_during_a_resume_is_merged_in_order_without_duplicates(
    gated: list[NodeHub],
) -> None:
    a, b = gated
    publish(a, 4)
    s = session()
    got = await subscribe_while(b, s, {"b": Position(EPOCH, 1)}, lambda: publish(a, 3))
    assert got == [2, 3, 4, 5, 6, 7]  # replay 2..4 (what the store had) + live 5..7
    publish(a, 1)
    assert [m["seq"] for m in drain(s)] == [8]


async def test_a_resume_that_is_not_recovered_still_gets_the_live_messages(
    gated: list[NodeHub],
) -> None:
    a, b = gated
    publish(a, 2)
    s = session()
    got = await subscribe_while(b, s, {"b": Position(EPOCH + 1, 1)}, lambda: publish(a, 2))
    assert got == [3, 4]


async def test_sessions_resuming_and_live_at_once_each_see_every_seq_once(
    gated: list[NodeHub],
) -> None:
    a, b = gated
    live = session("live")
    await a.subscribe(live, B, {}, 0.0)
    publish(a, 3)
    resumers = [session(f"r{i}") for i in range(3)]
    store = b.store
    assert isinstance(store, GatedStore)
    store.gate.clear()
    tasks = [
        asyncio.create_task(b.subscribe(r, B, {"b": Position(EPOCH, i)}, 0.0))
        for i, r in enumerate(resumers)
    ]
    await asyncio.wait_for(store.entered.wait(), 5.0)
    publish(a, 2)
    b.detach(resumers[2])  # the client went away while waiting: it is not indexed again
    store.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    for r, result in zip(resumers, results, strict=True):
        r.force(result.replay)  # as the server does, in the step the subscribe returns in
    publish(a, 1)
    for i, r in enumerate(resumers[:2]):
        assert [m["seq"] for m in drain(r)] == list(range(i + 1, 7))
    assert results[2].replay == [] and drain(resumers[2]) == []
    assert [m["seq"] for m in drain(live)] == [1, 2, 3, 4, 5, 6]


async def test_live_messages_buffered_past_the_queue_bound_overflow_the_session(
    gated: list[NodeHub],
) -> None:
    a, b = gated
    s = session(max_messages=4)
    await subscribe_while(b, s, {"b": Position(EPOCH, 0)}, lambda: publish(a, 6))
    assert s.overflowed  # closed with 4000 by the server; it resumes from history


def test_in_memory_hub_keeps_the_old_constructor() -> None:
    hub = InMemoryHub(history_size=2, history_ttl_s=5.0)
    hub.add_bus("b", 3)
    hub.publish("b", frame(), 0.0)
    assert hub.position("b") == Position(3, 1) and len(hub.history("b")) == 1
