"""History + fan-out behind one small interface, and its in-memory implementation. Pure.

The bridge talks to a :class:`Hub`: it publishes bus messages, and attaches client sessions with
topics. :class:`InMemoryHub` serves one node; a Redis-backed hub for several nodes can implement
the same methods later without touching the server or the bus owners.

Fan-out cost is what limits a bridge, so a message is serialized once per publish (not per
client) and delivered through a subscription index instead of testing every session's topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .contract import Position, Topic, dumps
from .history import History
from .session import Session

__all__ = ["FanoutStats", "Hub", "InMemoryHub", "SubscribeResult"]


@dataclass
class FanoutStats:
    published: int = 0
    deliveries: int = 0
    drops: int = 0  # offers refused because a session was over its queue bound
    resumes_recovered: int = 0
    resumes_lost: int = 0


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
    def subscribe(
        self,
        session: Session,
        topics: Iterable[Topic],
        since: Mapping[str, Position],
        now: float,
    ) -> SubscribeResult: ...
    def unsubscribe(self, session: Session, topics: Iterable[Topic]) -> list[str]: ...
    def detach(self, session: Session) -> None: ...


class InMemoryHub:
    """One node's history and subscription index."""

    def __init__(self, *, history_size: int = 1024, history_ttl_s: float = 300.0) -> None:
        self.history_size = history_size
        self.history_ttl_s = history_ttl_s
        self.stats = FanoutStats()
        self._history: dict[str, History] = {}
        self._all: set[Session] = set()
        self._bus: dict[str, set[Session]] = {}
        self._addr: dict[tuple[str, int], set[Session]] = {}

    # -- buses -------------------------------------------------------------------------------

    def add_bus(self, name: str, epoch: int) -> None:
        self._history[name] = History(epoch, size=self.history_size, ttl_s=self.history_ttl_s)

    def buses(self) -> list[str]:
        return list(self._history)

    def history(self, bus: str) -> History:
        return self._history[bus]

    def position(self, bus: str) -> Position:
        h = self._history[bus]
        return Position(h.epoch, h.seq)

    def publish(self, bus: str, message: Mapping[str, Any], now: float) -> int:
        """Number, keep and deliver one bus message; returns its seq."""
        h = self._history[bus]
        seq = h.next_seq()
        addr = message.get("addr")
        full = {"type": message["type"], "bus": bus, "seq": seq, "epoch": h.epoch}
        full.update(message)
        text = dumps(full)
        h.append(seq, float(message.get("ts", now)), addr, text, now)
        self.stats.published += 1
        self._deliver(bus, addr, text)
        return seq

    def _deliver(self, bus: str, addr: int | None, text: str) -> None:
        groups: list[Iterable[Session]] = []
        if self._all:
            groups.append(self._all)
        by_bus = self._bus.get(bus)
        if by_bus:
            groups.append(by_bus)
        if addr is not None:
            by_addr = self._addr.get((bus, addr))
            if by_addr:
                groups.append(by_addr)
        else:  # a bus-level event reaches every subscriber of the bus, once
            extra: set[Session] = set()
            for (b, _), sessions in self._addr.items():
                if b == bus:
                    extra |= sessions
            groups.append(extra)
        delivered = dropped = 0
        for group in groups:
            for session in group:
                if session.offer(text):
                    delivered += 1
                else:
                    dropped += 1
        self.stats.deliveries += delivered
        self.stats.drops += dropped

    # -- sessions ----------------------------------------------------------------------------

    def subscribe(
        self,
        session: Session,
        topics: Iterable[Topic],
        since: Mapping[str, Position],
        now: float,
    ) -> SubscribeResult:
        """Add topics; with ``since``, also the missed messages of those topics, all or nothing.

        Runs without yielding, so no live message can slip between the replay and the
        subscription: the client sees every seq once, in order.
        """
        new = list(dict.fromkeys(topics))
        recovered: dict[str, bool] = {}
        replay: list[str] = []
        for bus, pos in since.items():
            h = self._history.get(bus)
            entries = None if h is None else h.since(pos.epoch, pos.seq, now)
            recovered[bus] = entries is not None
            if entries is None:
                self.stats.resumes_lost += 1
                continue
            self.stats.resumes_recovered += 1
            replay.extend(e.text for e in entries if any(t.matches(bus, e.addr) for t in new))
        self._unindex(session)
        session.topics.update(new)
        self._index(session)
        return SubscribeResult([str(t) for t in new], recovered, replay)

    def unsubscribe(self, session: Session, topics: Iterable[Topic]) -> list[str]:
        gone = [t for t in dict.fromkeys(topics) if t in session.topics]
        self._unindex(session)
        session.topics.difference_update(gone)
        self._index(session)
        return [str(t) for t in gone]

    def detach(self, session: Session) -> None:
        self._unindex(session)
        session.topics.clear()

    def subscribers(self) -> int:
        seen: set[Session] = set(self._all)
        for group in self._bus.values():
            seen |= group
        for group in self._addr.values():
            seen |= group
        return len(seen)

    def _effective(self, session: Session) -> tuple[bool, set[str], set[tuple[str, int]]]:
        """Topics minus the ones a wider topic already covers, so each message is offered to a
        session once."""
        topics = session.topics
        if Topic(None, None) in topics:
            return True, set(), set()
        buses = {t.bus for t in topics if t.addr is None and t.bus is not None}
        addrs = {
            (t.bus, t.addr)
            for t in topics
            if t.bus is not None and t.addr is not None and t.bus not in buses
        }
        return False, buses, addrs

    def _index(self, session: Session) -> None:
        all_, buses, addrs = self._effective(session)
        if all_:
            self._all.add(session)
        for bus in buses:
            self._bus.setdefault(bus, set()).add(session)
        for key in addrs:
            self._addr.setdefault(key, set()).add(session)

    def _unindex(self, session: Session) -> None:
        all_, buses, addrs = self._effective(session)
        if all_:
            self._all.discard(session)
        for bus in buses:
            group = self._bus.get(bus)
            if group is not None:
                group.discard(session)
                if not group:
                    del self._bus[bus]
        for key in addrs:
            group2 = self._addr.get(key)
            if group2 is not None:
                group2.discard(session)
                if not group2:
                    del self._addr[key]
