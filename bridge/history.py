"""Per-bus history: sequence numbers, the epoch, and a bounded replay buffer. Pure.

Every message published on a bus gets the next ``seq`` (1, 2, 3 ...) and is kept, already
serialized, for replay. The buffer is bounded by count *and* age (TTL), so memory stays flat
however long the bridge runs. ``epoch`` names this run of this bus: a restarted bridge has a new
one, and a client resuming with an old epoch is told ``recovered: false`` instead of being fed
seqs that mean something else now.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Entry", "History", "make_epoch"]


def make_epoch(now: float, rand: int) -> int:
    """A per-run id: milliseconds since 1970 times 1000 plus 0..999 of randomness.

    It stays below 2**53 (JSON-safe in browsers) until the year 2255 and grows between runs, so it
    is human-orderable in logs.
    """
    return int(now * 1000) * 1000 + rand % 1000


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    ts: float
    addr: int | None  # None: a bus-level event, seen by every subscriber of the bus
    text: str


class History:
    """The replay buffer of one bus."""

    def __init__(self, epoch: int, *, size: int = 1024, ttl_s: float = 300.0) -> None:
        if size < 0 or ttl_s < 0:
            raise ValueError("history size and ttl must be >= 0")
        self.epoch = epoch
        self.size = size
        self.ttl_s = ttl_s
        self.seq = 0
        self._entries: deque[Entry] = deque()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, seq: int, ts: float, addr: int | None, text: str, now: float) -> None:
        """Keep one published message (its ``seq`` came from :meth:`next_seq`)."""
        if self.size:
            self._entries.append(Entry(seq, ts, addr, text))
            if len(self._entries) > self.size:
                self._entries.popleft()
        self.expire(now)

    def expire(self, now: float) -> None:
        limit = now - self.ttl_s
        entries = self._entries
        while entries and entries[0].ts < limit:
            entries.popleft()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def oldest_seq(self) -> int | None:
        return self._entries[0].seq if self._entries else None

    def since(self, epoch: int, seq: int, now: float) -> list[Entry] | None:
        """Every entry after ``seq``, or None when that is impossible (other epoch, gap too old).

        All or nothing: a partial replay would look like a complete one to the client.
        """
        self.expire(now)
        if epoch != self.epoch or seq > self.seq or seq < 0:
            return None
        if seq == self.seq:
            return []
        oldest = self.oldest_seq
        if oldest is None or oldest > seq + 1:
            return None
        start = seq + 1 - oldest  # seqs in the buffer are consecutive
        return [self._entries[i] for i in range(start, len(self._entries))]
