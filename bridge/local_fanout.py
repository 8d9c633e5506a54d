"""One node's fan-out: the subscription index, the offers to sessions, and the order. Pure.

Fan-out cost is what limits a bridge, so a message is serialized once per publish (by the
store, not per client) and delivered through a subscription index instead of testing every
session's topics.

Order is explicit, at two levels, so that no broker and no store latency can break it:

- Per node and bus, :meth:`LocalFanout.receive` passes on seqs in order: a seq it already
  passed on is a duplicate and dropped; one that comes early is held (bounded) until the gap is
  filled (by the broker, or from the store by :meth:`bridge.fanout.NodeHub.catch_up`).
- Per session and bus, no seq is given twice and seqs only go up. Live delivery gets this by
  construction (a node passes each seq on once, in order, and the index offers a message to a
  session once), so the hot path costs nothing extra per offer. The joins are where it could
  break, so ``Session.seqs`` records, per bus, the last seq the session has had whenever its
  coverage changes (a resume, an unsubscribe), and a replay merge gives it nothing at or below
  that. A client that resumes *ahead* of this node (it came from a node further on) is kept out
  of the index, its live messages buffered, until this node has passed its position: nothing
  it had comes again.
- Epochs: a position counts in its own epoch only. ``Session.seqs`` holds floors in this node's
  current epoch of each bus (an epoch change clears them), so it needs no epoch of its own. A
  client whose position is in a *newer* epoch (Redis was flushed; the store and another node
  are in it, this node not yet) is ahead too: it waits, with the epoch in its
  :attr:`Waiting.ahead` mark, until this node is in that epoch at that seq (or further on: a
  later epoch releases it as well), and what this node passed on before is not for it. A
  position in an *older* epoch (the store answered, then the history was lost while the
  replay was on its way) is no floor here: the client gets the rest of its epoch and then the
  new one, as a live session did. Epochs are ordered: :func:`bridge.history.make_epoch` grows.
- Bounds: such a wait ends after a time (:meth:`LocalFanout.overdue`: the session is closed
  and resumes); and seqs this node passed on that the shared history turns out not to have
  (a former owner's) are withdrawn, not waited past (:meth:`LocalFanout.withdraw`).

The subscribe that awaits the store (its buffer, its wait for this node, the merge of replay
and buffer by (epoch, seq), the wait's time bound) is :mod:`bridge.resume_wait`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .contract import Position, Topic, dumps
from .resume_wait import Replays, Waiting, merge, overdue, reached
from .session import Session
from .store import Stamped

__all__ = ["FanoutStats", "LocalFanout", "Waiting"]

_ALL = Topic(None, None)


@dataclass
class FanoutStats:
    published: int = 0
    deliveries: int = 0
    drops: int = 0  # offers refused because a session was over its queue bound
    resumes_recovered: int = 0
    resumes_lost: int = 0
    duplicates: int = 0  # messages a node had already passed on (a broker resending)
    gaps: int = 0  # seqs given up on after waiting for them (their messages never came)
    epoch_changes: int = 0  # a bus's history was lost and restarted under a new epoch
    withdrawals: int = 0  # seqs passed on that the shared history does not have (withdraw)
    overdue: int = 0  # sessions closed after waiting too long for this node to catch up


class LocalFanout:
    def __init__(self, stats: FanoutStats, *, hold_limit: int = 1024) -> None:
        self.stats = stats
        self.hold_limit = hold_limit  # early messages held per bus while waiting for a gap
        self._pos: dict[str, list[int]] = {}  # bus → [epoch, last seq passed on]
        self._held: dict[str, dict[int, Stamped]] = {}
        self._all: set[Session] = set()
        self._bus: dict[str, set[Session]] = {}
        self._addr: dict[tuple[str, int], set[Session]] = {}
        self._waiting: list[Waiting] = []

    # -- buses and order ---------------------------------------------------------------------

    def add_bus(self, bus: str, pos: Position) -> None:
        self._pos.setdefault(bus, [pos.epoch, pos.seq])

    def position(self, bus: str) -> Position:
        epoch, seq = self._pos[bus]
        return Position(epoch, seq)

    def missing(self, bus: str) -> bool:
        """Messages are held for ``bus`` because an earlier seq has not come yet."""
        return bool(self._held.get(bus))

    def receive(self, msg: Stamped) -> None:
        """The broker's receiver: pass messages on in seq order, each once."""
        pos = self._pos.get(msg.bus)
        if pos is None or pos[0] != msg.epoch:
            if pos is not None:  # the history was lost (Redis flushed): start over
                self.stats.epoch_changes += 1
                self._held.pop(msg.bus, None)
                for session in self._sessions():
                    session.seqs.pop(msg.bus, None)
            pos = self._pos[msg.bus] = [msg.epoch, msg.seq - 1]
        expected = pos[1] + 1
        if msg.seq == expected:
            pos[1] = msg.seq
            self._deliver(msg)
            if self._held.get(msg.bus):
                self._release(msg.bus, pos)
        elif msg.seq < expected:
            self.stats.duplicates += 1
        else:
            held = self._held.setdefault(msg.bus, {})
            held[msg.seq] = msg
            if len(held) > self.hold_limit:  # the gap is not coming: skip it, keep going
                self.stats.gaps += 1
                pos[1] = min(held) - 1
                self._release(msg.bus, pos)

    def skip(self, bus: str, seq: int) -> None:
        """Give up on ``bus``'s seqs up to ``seq``: no store has them any more (a node that
        was cut off longer than the history). Counted as a gap; later ones flow on."""
        pos = self._pos.get(bus)
        if pos is None or seq <= pos[1]:
            return
        self.stats.gaps += 1
        pos[1] = seq
        held = self._held.get(bus)
        if held:
            for s in [s for s in held if s <= seq]:
                del held[s]
            self._release(bus, pos)

    def withdraw(self, bus: str, pos: Position) -> None:
        """This node passed on ``bus``'s seqs after ``pos`` that the shared history does not
        have: it served them as an owner while Redis did not answer, then lost the lease, and
        the next owner numbers those seqs anew. Left alone, it dropped the next owner's
        messages as duplicates of them, its clients silent until the new numbering overtook
        the old, and then holding a history nobody else has. So from ``pos`` on, the stream's
        messages are passed on, and every session on the bus is told to forget its position
        (an unsequenced ``bus_reset``: docs/websocket.md) before it gets them."""
        here = self._pos.get(bus)
        if here is None or here[0] != pos.epoch or here[1] <= pos.seq:
            return
        here[1] = pos.seq
        self.stats.withdrawals += 1
        text = dumps({"type": "bus_reset", "bus": bus})
        for session in self._sessions():
            if not any(t.bus in (None, bus) for t in session.topics):
                continue
            if bus in session.seqs:
                session.seqs[bus] = min(session.seqs[bus], pos.seq)
            session.offer(text)
        # Held messages are all after the old position: they wait on for the stream's. A
        # resume's buffer may hold withdrawn ones: its merge goes no further than this node's
        # position, which passes a seq again only with the stream's message for it, buffered
        # later (and a later message wins in the merge).

    def _release(self, bus: str, pos: list[int]) -> None:
        held = self._held[bus]
        while pos[1] + 1 in held:
            nxt = held.pop(pos[1] + 1)
            pos[1] = nxt.seq
            self._deliver(nxt)

    def _deliver(self, msg: Stamped) -> None:
        bus, addr, text = msg.bus, msg.addr, msg.text
        self.stats.published += 1
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
        elif self._addr:  # a bus-level event reaches every subscriber of the bus, once
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
        if self._waiting:
            self._buffer(msg)

    def _buffer(self, msg: Stamped) -> None:
        for waiting in list(self._waiting):
            session = waiting.session
            if any(t.matches(msg.bus, msg.addr) for t in session.topics):
                waiting.buffer.append(msg)
                if len(waiting.buffer) > session.limits.max_messages:  # as a full queue would
                    waiting.cancelled = True
                    self._waiting.remove(waiting)
                    session.overflow()
                    continue
            mark = waiting.ahead.get(msg.bus)
            if mark is not None and (msg.epoch, msg.seq) >= mark:
                reached(waiting, msg, mark)
                if not waiting.ahead:  # this node has caught up with the client: live from here
                    self._waiting.remove(waiting)
                    for text in merge(self._pos, session, {}, waiting.buffer):
                        session.offer(text)
                    self._index(session)

    # -- sessions ----------------------------------------------------------------------------

    def _waiting_of(self, session: Session) -> Waiting | None:
        return next((w for w in self._waiting if w.session is session), None)

    def set_topics(self, session: Session, topics: Iterable[Topic]) -> None:
        """Add topics at once (no replay): live messages from the next publish on."""
        if self._waiting_of(session) is not None:  # joins the index when its wait ends
            session.topics.update(topics)
            return
        self._unindex(session)
        session.topics.update(topics)
        self._index(session)

    def begin(self, session: Session, topics: Iterable[Topic]) -> Waiting:
        """Add topics, but hold the session's live messages until :meth:`finish`."""
        waiting = Waiting(session)
        earlier = self._waiting_of(session)
        if earlier is None:
            self._record(session)
            self._unindex(session)
        else:  # still waiting for this node to catch up: carry that wait over
            earlier.cancelled = True
            self._waiting.remove(earlier)
            waiting.buffer, waiting.ahead, waiting.since = (
                earlier.buffer,
                earlier.ahead,
                earlier.since,
            )
        session.topics.update(topics)
        self._waiting.append(waiting)
        return waiting

    def finish(self, waiting: Waiting, replays: Replays) -> list[str]:
        """Merge each bus's replay (entries after its position) with the buffered live
        messages; returns the texts to queue, each bus in seq order, and indexes the session
        (unless the client is ahead of this node: then it waits on, see the module docstring)."""
        if waiting in self._waiting:
            self._waiting.remove(waiting)
        session = waiting.session
        if waiting.cancelled or session.closing or session.overflowed:
            return []
        ahead = waiting.ahead
        for bus, (pos, _) in replays.items():
            here = self._pos.get(bus)
            mark = (pos.epoch, pos.seq)
            if here is None:  # this node cannot tell where the bus is: the client's seq is it
                session.seqs[bus] = pos.seq
            elif mark > (here[0], here[1]):  # ahead of this node: a later seq, or epoch
                ahead[bus] = max(mark, ahead.get(bus, mark))
        # what was buffered of a bus still ahead is behind the client's position: not for it
        out = merge(self._pos, session, replays, [m for m in waiting.buffer if m.bus not in ahead])
        waiting.buffer = []
        if ahead:
            self._waiting.append(waiting)
        else:
            self._index(session)
        return out

    def overdue(self, now: float, limit: float) -> int:
        """Close (4000, as a full queue does) the sessions that waited longer than ``limit`` for
        this node to reach their position: it is not catching up (a Redis it cannot read), and
        a silent wait is the one thing a client cannot act on, while a close makes it resume
        (here or on another node). A wait's time starts at the first call that sees it; the
        node calls this about every second."""
        late = overdue(self._waiting, now, limit)
        for waiting in late:
            self._waiting.remove(waiting)
            waiting.cancelled = True
            waiting.session.overflow()
        self.stats.overdue += len(late)
        return len(late)

    def _record(self, session: Session) -> None:
        """Before the session's coverage changes: it has had every seq this node passed on,
        on each bus its topics cover (per-bus positions, as clients keep them)."""
        all_, buses, addrs = self._effective(session)
        covered = set(self._pos) if all_ else buses | {b for b, _ in addrs}
        seqs = session.seqs
        for bus in covered:
            pos = self._pos.get(bus)
            if pos is not None and pos[1] > seqs.get(bus, 0):
                seqs[bus] = pos[1]

    def unsubscribe(self, session: Session, topics: Iterable[Topic]) -> list[Topic]:
        gone = [t for t in dict.fromkeys(topics) if t in session.topics]
        waiting = self._waiting_of(session) is not None
        if not waiting:
            self._record(session)
            self._unindex(session)
        session.topics.difference_update(gone)
        if not waiting:
            self._index(session)
        return gone

    def detach(self, session: Session) -> None:
        self._unindex(session)
        session.topics.clear()
        for waiting in self._waiting:
            if waiting.session is session:
                waiting.cancelled = True
        self._waiting = [w for w in self._waiting if not w.cancelled]

    def subscribers(self) -> int:
        return len(self._sessions())

    def _sessions(self) -> set[Session]:
        seen: set[Session] = set(self._all)
        for group in self._bus.values():
            seen |= group
        for group in self._addr.values():
            seen |= group
        seen.update(w.session for w in self._waiting)
        return seen

    def _effective(self, session: Session) -> tuple[bool, set[str], set[tuple[str, int]]]:
        """Topics minus the ones a wider topic already covers, so each message is offered to a
        session once."""
        topics = session.topics
        if _ALL in topics:
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
