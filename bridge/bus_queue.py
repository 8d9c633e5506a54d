"""The requests waiting for one bus: a FIFO per client, bounded, shared fairly by group. Pure.

The scheduler (:mod:`bridge.schedule`) shares the *wire* round-robin between groups (a
tenant; a client without one), but only between requests that got into the queue. With one
bound for the whole bus (``request_queue``), a tenant whose in-flight quota is as large as the
bound filled the queue, and every other tenant's request was refused ``busy`` for as long as
the flood lasted: round-robin on the wire, starvation at the door
(``benchmarks/fairness.py --flood-depth 4``).

So when the queue is full, a request of a group that holds fewer waiting requests than the
largest group still gets in, and the largest group's newest waiting request makes room: it is
answered ``busy``, as it would have been had it come last (longest-queue drop, as in fair
packet buffers). The bound stays exact, and a group is refused only while it holds as many of
the waiting requests as any other (within one, so two groups never trade places back and
forth). Each client's own bound (``client_requests``, queued or on the wire) is checked first.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from .schedule import group_of

__all__ = ["RequestQueues"]

T = TypeVar("T")


class RequestQueues(Generic[T]):
    """Waiting requests per client (what :meth:`Scheduler.pick` chooses among), and how many
    each client has queued or on the wire. The client ``""`` (a caller that names none) has
    no bound of its own."""

    def __init__(self, bound: int, per_client: int) -> None:
        self.bound = bound
        self.per_client = per_client
        self.waiting: dict[str, deque[T]] = {}  # client → its waiting requests, oldest first
        self._count = 0
        self._groups: dict[str, int] = {}  # group → its waiting requests
        self._held: dict[str, int] = {}  # client → requests queued or on the wire

    def __len__(self) -> int:
        return self._count

    def refusal(self, client: str) -> str | None:
        """Why a request of ``client`` cannot be queued now (reply ``busy``), or None."""
        if client and self._held.get(client, 0) >= self.per_client:
            return f"{self.per_client} requests of yours are in progress"
        if self._count >= self.bound and self._victim(group_of(client)) is None:
            return f"{self._count} requests are queued"
        return None

    def push(self, client: str, item: T) -> T | None:
        """Queue ``item`` (after :meth:`refusal` said None); returns the request it pushed
        out of a full queue (the caller answers it ``busy``), or None."""
        evicted = None
        if self._count >= self.bound:
            victim = self._victim(group_of(client))
            assert victim is not None, "push() without refusal()"
            evicted = self.waiting[victim].pop()
            self._dequeued(victim)
            self.finished(victim)
        self.waiting.setdefault(client, deque()).append(item)
        self._count += 1
        group = group_of(client)
        self._groups[group] = self._groups.get(group, 0) + 1
        self._held[client] = self._held.get(client, 0) + 1
        return evicted

    def take(self, client: str) -> T:
        """The oldest waiting request of ``client``, now on the wire (until :meth:`finished`)."""
        item = self.waiting[client].popleft()
        self._dequeued(client)
        return item

    def finished(self, client: str) -> None:
        """A request of ``client`` taken for the wire has ended."""
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]

    def clear(self) -> list[T]:
        """Every waiting request (oldest first per client), removed."""
        items = [item for queue in self.waiting.values() for item in queue]
        for client, queue in self.waiting.items():
            for _ in queue:
                self.finished(client)
        self.waiting.clear()
        self._groups.clear()
        self._count = 0
        return items

    def _dequeued(self, client: str) -> None:
        if not self.waiting[client]:
            del self.waiting[client]
        self._count -= 1
        group = group_of(client)
        left = self._groups[group] - 1
        if left:
            self._groups[group] = left
        else:
            del self._groups[group]

    def _victim(self, group: str) -> str | None:
        """The client whose newest waiting request makes room for one of ``group``: the one
        with the most waiting in the group with the most waiting, if that group holds at
        least two more than ``group``."""
        if not self._groups:
            return None
        largest = max(self._groups, key=self._groups.__getitem__)
        if self._groups[largest] < self._groups.get(group, 0) + 2:
            return None
        members = (c for c in self.waiting if group_of(c) == largest)
        return max(members, key=lambda c: len(self.waiting[c]))
