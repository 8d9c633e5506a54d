"""The history store: numbers each bus's messages, keeps the epoch, and replays them. Pure.

This is one of the hub's three parts (:mod:`bridge.fanout` draws the whole): the store is the
*memory* of a bus, shared by every node in a cluster; the broker carries new messages to each
node; each node's local fan-out hands them to its sessions.

Why :meth:`HistoryStore.append` is synchronous while :meth:`HistoryStore.since` is async: a bus
has one owner (the node with its adapter), and the owner assigns ``seq`` — the order is fixed
there, at once, so a publish never waits for the network. A networked store (Redis, issue 11)
writes appended entries to its stream *in that order* in the background (one round trip per
batch) and answers :meth:`since` from its local tail for what is not written yet. Reading
history is the part that needs a round trip, so it is the part that is awaited; the fan-out
buffers live messages meanwhile (:mod:`bridge.fanout`).

The in-memory store below never suspends in :meth:`since`, so a single node keeps today's
guarantee for free: replay and subscription happen in one event-loop step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .contract import Position, dumps
from .history import History

__all__ = ["HistoryStore", "MemoryStore", "Stamped"]


@dataclass(frozen=True, slots=True)
class Stamped:
    """One published message as every node sees it: numbered and serialized once."""

    bus: str
    epoch: int
    seq: int
    ts: float
    addr: int | None  # None: a bus-level event, seen by every subscriber of the bus
    text: str


class HistoryStore(Protocol):
    """What the hub needs from a history store. A Redis store implements the same methods."""

    def add_bus(self, bus: str, epoch: int) -> None:
        """Make ``bus`` known. A store that already has an epoch for it keeps that one."""

    def buses(self) -> list[str]: ...

    def position(self, bus: str) -> Position:
        """The last assigned (epoch, seq) as this node knows it."""

    def append(self, bus: str, message: Mapping[str, Any], now: float) -> Stamped:
        """Number ``message`` (the next seq of ``bus``), serialize it once, and keep it."""

    async def since(self, bus: str, pos: Position, now: float) -> list[Stamped] | None:
        """Every entry of ``bus`` after ``pos``, oldest first; None when that is impossible
        (another epoch, a seq from the future, or the gap is older than what is kept). All or
        nothing: a partial replay would look complete to the client."""


class MemoryStore:
    """One process's history: a :class:`bridge.history.History` ring per bus."""

    def __init__(self, *, size: int = 1024, ttl_s: float = 300.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._history: dict[str, History] = {}

    def add_bus(self, bus: str, epoch: int) -> None:
        if bus not in self._history:
            self._history[bus] = History(epoch, size=self.size, ttl_s=self.ttl_s)

    def buses(self) -> list[str]:
        return list(self._history)

    def history(self, bus: str) -> History:
        return self._history[bus]

    def position(self, bus: str) -> Position:
        h = self._history[bus]
        return Position(h.epoch, h.seq)

    def append(self, bus: str, message: Mapping[str, Any], now: float) -> Stamped:
        h = self._history[bus]
        seq = h.next_seq()
        addr = message.get("addr")
        full = {"type": message["type"], "bus": bus, "seq": seq, "epoch": h.epoch}
        full.update(message)
        text = dumps(full)
        ts = float(message.get("ts", now))
        h.append(seq, ts, addr, text, now)
        return Stamped(bus, h.epoch, seq, ts, addr, text)

    async def since(self, bus: str, pos: Position, now: float) -> list[Stamped] | None:
        h = self._history.get(bus)
        if h is None:
            return None
        entries = h.since(pos.epoch, pos.seq, now)
        if entries is None:
            return None
        epoch = h.epoch
        return [Stamped(bus, epoch, e.seq, e.ts, e.addr, e.text) for e in entries]
