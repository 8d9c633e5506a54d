"""One client's state: hello, subscriptions and the bounded outbound queue. Pure.

The server's writer task drains :meth:`Session.take_batch`; publishers call :meth:`offer`. The
queue is bounded in messages and bytes: when an offer does not fit, the session is marked
``overflowed`` and the server closes it with 4000 — dropping silently would make a resume look
complete when it is not, while closing lets the client resume from history with nothing lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .contract import Topic

__all__ = ["QueueLimits", "Session"]


@dataclass(frozen=True, slots=True)
class QueueLimits:
    max_messages: int = 4096
    max_bytes: int = 4 * 1024 * 1024
    batch_messages: int = 64  # messages per WebSocket frame at most
    batch_bytes: int = 64 * 1024  # and bytes (a single larger message still goes alone)
    answer_bytes: int = 16 * 1024  # queued this much: read no more of the client's messages


def _nothing() -> None:
    return None


class Session:
    """Per-connection state. ``wake`` is called when the queue goes from empty to non-empty."""

    __slots__ = (
        "_queue",
        "closing",
        "dropped",
        "id",
        "last_sent",
        "limits",
        "overflowed",
        "principal",
        "queued_bytes",
        "sent_bytes",
        "sent_messages",
        "seqs",
        "topics",
        "wake",
        "welcomed",
    )

    def __init__(
        self,
        session_id: str,
        limits: QueueLimits,
        now: float,
        wake: Callable[[], None] = _nothing,
    ) -> None:
        self.id = session_id
        self.limits = limits
        self.wake = wake
        self.welcomed = False
        self.principal: Any = None
        self.topics: set[Topic] = set()
        # bus → the last seq this session has had, recorded by the fan-out when its coverage
        # changes: a replay merge never gives it one at or below that again (a resume on a bus
        # it already receives, a client that comes from a node further on). A seq of this
        # node's current epoch of the bus: an epoch change clears it, and a client's position
        # in an epoch this node has not reached waits in ``Waiting.ahead``, so no epoch here
        self.seqs: dict[str, int] = {}
        self._queue: deque[str] = deque()
        self.queued_bytes = 0
        self.overflowed = False
        self.closing = False
        self.dropped = 0  # messages discarded because the session was over its bound
        self.last_sent = now
        self.sent_messages = 0
        self.sent_bytes = 0

    def __repr__(self) -> str:
        return f"Session({self.id} queued={len(self._queue)} topics={len(self.topics)})"

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, text: str) -> bool:
        """Queue one serialized message; False (and ``overflowed``) when over the bound."""
        # The hot path of fan-out (once per message per client): few lookups, one branch.
        queue = self._queue
        n = len(queue)
        size = len(text)
        limits = self.limits
        if (
            n < limits.max_messages
            and self.queued_bytes + size <= limits.max_bytes
            and not (self.overflowed or self.closing)
        ):
            queue.append(text)
            self.queued_bytes += size
            if not n:
                self.wake()
            return True
        self.dropped += 1
        self.overflow()
        return False

    def overflow(self) -> None:
        """Give up on this client: drop its queue and wake the server, which closes it with
        4000 (it resumes from history). Used when an offer does not fit, and by the writer when
        the client has not read anything for ``stall_timeout_s``."""
        if self.overflowed or self.closing:
            return
        self.overflowed = True
        self.dropped += len(self._queue)
        self._queue.clear()
        self.queued_bytes = 0
        self.wake()

    def force(self, texts: Iterable[str]) -> None:
        """Queue direct answers and replays past the bound: the client asked for them, and
        refusing a large replay would turn a resume into a 4000 loop. What keeps answers
        bounded is the reader, not this: the server reads no more of a client's messages while
        it is :meth:`backlogged`, so a client that asks and never reads holds at most
        ``answer_bytes`` plus one answer or one replay (issue 10, break 7: 2.25 MiB each
        when this was half the queue bound)."""
        if self.overflowed or self.closing:
            return
        queue = self._queue
        was_empty = not queue
        for text in texts:
            queue.append(text)
            self.queued_bytes += len(text)
        if was_empty and queue:
            self.wake()

    def backlogged(self) -> bool:
        """``answer_bytes`` (at most half the byte bound) or half the message bound is waiting:
        read no more from this client for now. Counted in bytes of every queued message,
        answers included: that is what a client that pipelines ``state`` and never reads makes
        the bridge hold."""
        limits = self.limits
        return (
            self.queued_bytes >= min(limits.answer_bytes, limits.max_bytes // 2)
            or 2 * len(self._queue) >= limits.max_messages
        )

    def take_batch(self) -> list[str]:
        """Up to ``batch_messages`` / ``batch_bytes`` of queued messages, oldest first."""
        queue = self._queue
        if not queue:
            return []
        limits = self.limits
        if len(queue) <= limits.batch_messages and self.queued_bytes <= limits.batch_bytes:
            out = list(queue)  # everything fits: the common case, no per-message work
            queue.clear()
            self.queued_bytes = 0
            return out
        first = queue.popleft()
        out = [first]
        size = len(first)
        while queue and len(out) < limits.batch_messages:
            nxt = len(queue[0])
            if size + nxt > limits.batch_bytes:
                break
            out.append(queue.popleft())
            size += nxt
        self.queued_bytes -= size
        return out

    def mark_sent(self, count: int, size: int, now: float) -> None:
        self.sent_messages += count
        self.sent_bytes += size
        self.last_sent = now

    def needs_heartbeat(self, now: float, interval: float) -> bool:
        """True when nothing was sent for ``interval`` and nothing is waiting to be."""
        return (
            self.welcomed
            and not self._queue
            and not self.closing
            and not self.overflowed
            and now - self.last_sent >= interval
        )
