"""The hub the server and the bus owners talk to: a history store, a broker, a local fan-out.

::

    bus owner ──publish──▶ HistoryStore.append      (seq, epoch, serialized once, kept)
                               │
                               ▼
                           Broker.publish ──▶ every node's LocalFanout.receive
                                                  │  (per bus: in seq order, once)
                                                  ▼
                                              Session.offer  (per session: each seq once)

    server ──await subscribe(since)──▶ HistoryStore.since (async) ──▶ LocalFanout.finish
                                       (live messages buffered meanwhile, merged by seq)

:class:`NodeHub` composes the three; :class:`InMemoryHub` is the single-node default (a
:class:`bridge.store.MemoryStore` and a :class:`bridge.broker.MemoryBroker`, i.e. direct
calls). A Redis store and broker (issue 11) plug into :class:`NodeHub` unchanged, and
``tests/bridge/test_hub_conformance.py`` is the suite they must pass. Pure: no I/O here, the
async parts only await the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .broker import Broker, MemoryBroker
from .contract import Position, Topic
from .history import History
from .local_fanout import FanoutStats, LocalFanout
from .session import Session
from .store import HistoryStore, MemoryStore, Stamped

__all__ = ["FanoutStats", "Hub", "InMemoryHub", "NodeHub", "SubscribeResult"]


@dataclass(frozen=True)
class SubscribeResult:
    topics: list[str]
    recovered: dict[str, bool]
    replay: list[str] = field(default_factory=list)


class Hub(Protocol):
    stats: FanoutStats

    def add_bus(self, name: str, epoch: int) -> None: ...
    def buses(self) -> list[str]: ...
    def position(self, bus: str) -> Position: ...
    def publish(self, bus: str, message: Mapping[str, Any], now: float) -> int: ...
    async def subscribe(
        self,
        session: Session,
        topics: Iterable[Topic],
        since: Mapping[str, Position],
        now: float,
    ) -> SubscribeResult: ...
    def unsubscribe(self, session: Session, topics: Iterable[Topic]) -> list[str]: ...
    def detach(self, session: Session) -> None: ...


class NodeHub:
    """One node's view of the hub: its own fan-out over a (possibly shared) store and broker."""

    def __init__(self, store: HistoryStore, broker: Broker) -> None:
        self.store = store
        self.broker = broker
        self.stats = FanoutStats()
        self.fanout = LocalFanout(self.stats)
        for bus in store.buses():
            self.fanout.add_bus(bus, store.position(bus))
        broker.attach(self.fanout.receive)

    def close(self) -> None:
        self.broker.detach(self.fanout.receive)

    # -- buses -------------------------------------------------------------------------------

    def add_bus(self, name: str, epoch: int) -> None:
        self.store.add_bus(name, epoch)
        self.fanout.add_bus(name, self.store.position(name))

    def buses(self) -> list[str]:
        return self.store.buses()

    def position(self, bus: str) -> Position:
        """What this node has passed on to its sessions (a client's resume point)."""
        self.fanout.add_bus(bus, self.store.position(bus))  # a bus another node added
        return self.fanout.position(bus)

    def publish(self, bus: str, message: Mapping[str, Any], now: float) -> int:
        """Number, keep and deliver one bus message; returns its seq. Called by the bus's
        owner; with the in-memory broker the sessions have it queued when this returns."""
        stamped = self.store.append(bus, message, now)
        self.broker.publish(stamped)
        return stamped.seq

    async def catch_up(self, bus: str, now: float) -> bool:
        """Fill a gap this node noticed (held messages) from the store; False if it could not
        (the store no longer has it: the held messages are then passed on after the gap)."""
        pos = self.fanout.position(bus)
        entries = await self.store.since(bus, pos, now)
        for entry in entries or ():
            self.fanout.receive(entry)
        return entries is not None

    # -- sessions ----------------------------------------------------------------------------

    async def subscribe(
        self,
        session: Session,
        topics: Iterable[Topic],
        since: Mapping[str, Position],
        now: float,
    ) -> SubscribeResult:
        """Add topics; with ``since``, also the missed messages of those topics, all or
        nothing per bus, merged with live messages without a gap or a duplicate.

        The caller queues ``subscribed`` and then :attr:`SubscribeResult.replay` in the step
        this returns in, before any later publish can reach the session.
        """
        new = list(dict.fromkeys(topics))
        names = [str(t) for t in new]
        if not since:
            self.fanout.set_topics(session, new)
            return SubscribeResult(names, {})
        waiting = self.fanout.begin(session, new)
        recovered: dict[str, bool] = {}
        replays: dict[str, tuple[Position, list[Stamped]]] = {}
        try:
            for bus, pos in since.items():
                entries = await self.store.since(bus, pos, now) if bus in self.buses() else None
                recovered[bus] = entries is not None
                if entries is None:
                    self.stats.resumes_lost += 1
                else:
                    self.stats.resumes_recovered += 1
                    replays[bus] = (pos, entries)
        finally:  # even when cancelled: the session goes back into the index
            replay = self.fanout.finish(waiting, replays)
        return SubscribeResult(names, recovered, replay)

    def unsubscribe(self, session: Session, topics: Iterable[Topic]) -> list[str]:
        return [str(t) for t in self.fanout.unsubscribe(session, topics)]

    def detach(self, session: Session) -> None:
        self.fanout.detach(session)

    def subscribers(self) -> int:
        return self.fanout.subscribers()


class InMemoryHub(NodeHub):
    """A single node: history in this process, publish delivers before it returns."""

    def __init__(self, *, history_size: int = 1024, history_ttl_s: float = 300.0) -> None:
        self.memory = MemoryStore(size=history_size, ttl_s=history_ttl_s)
        super().__init__(self.memory, MemoryBroker())
        self.history_size = history_size
        self.history_ttl_s = history_ttl_s

    def history(self, bus: str) -> History:
        return self.memory.history(bus)
