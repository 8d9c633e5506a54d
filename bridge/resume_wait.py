"""The resume side of one node's fan-out: a subscribe that awaits the store, and its merge. Pure.

:class:`bridge.local_fanout.LocalFanout` keeps the index and the order; this module keeps what a
session that is out of the index while it waits needs: its buffered live messages, its marks
(how far this node must get before it is live), when its wait started, and the merge of a replay
with that buffer. Apart, because the rules are about positions (epoch, seq), not about offers.

- A subscribe with replay must await the store (a round trip with Redis). Meanwhile the session
  is out of the index and its live messages are buffered (bounded by its queue limit); when the
  replay comes, replay and buffer are merged by (epoch, seq) without duplicates (:func:`merge`),
  handed back to the caller in order, and the session is indexed again — all in the step that
  resumes the subscribe, so nothing can slip in between (centrifuge's recovery does the same).
- A client whose position is ahead of this node, in a later seq or a *newer* epoch, waits with
  that position in :attr:`Waiting.ahead` until this node has passed it (:func:`reached`).
- Such a wait is bounded in time (:func:`overdue`): the node closes the session, it resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .contract import Position
from .session import Session
from .store import Stamped

__all__ = ["Replays", "Waiting", "merge", "overdue", "reached"]

# bus → (the client's position, the store's entries after it)
Replays = Mapping[str, tuple[Position, list[Stamped]]]


@dataclass(eq=False)
class Waiting:
    """A session whose subscribe awaits the store; live messages for it wait here."""

    session: Session
    buffer: list[Stamped] = field(default_factory=list)
    cancelled: bool = False
    # bus → (epoch, seq) this node must pass first; only while the wait lasts, never per session
    ahead: dict[str, tuple[int, int]] = field(default_factory=dict)
    since: float | None = None  # when LocalFanout.overdue first saw it wait for this node


def reached(waiting: Waiting, msg: Stamped, mark: tuple[int, int]) -> None:
    """This node has passed ``msg``, at or after the client's position ``mark`` on its bus.
    What was buffered of that bus in an earlier epoch is behind the mark: the client had
    it. In the mark's epoch, the mark is the session's floor; in a later one (this node
    went past the mark's epoch without reaching the mark) it says nothing."""
    bus = msg.bus
    del waiting.ahead[bus]
    waiting.buffer = [m for m in waiting.buffer if m.bus != bus or m.epoch == msg.epoch]
    if msg.epoch == mark[0]:
        waiting.session.seqs[bus] = mark[1]


def merge(
    positions: Mapping[str, list[int]], session: Session, replays: Replays, buffer: list[Stamped]
) -> list[str]:
    """Replays and buffered messages, by bus, epoch and seq, each once, after the client's
    position, and in this node's epoch (``positions``: bus → [epoch, last seq passed on]) above
    what the session had and up to what this node has passed on (later ones come live, in
    order). An older epoch's come first, whole: this node has left it (the history was lost
    during the wait)."""
    topics, seqs = session.topics, session.seqs
    merged: dict[str, dict[tuple[int, int], Stamped]] = {}
    for bus, (pos, entries) in replays.items():
        here = positions.get(bus)
        if here is not None and pos.epoch <= here[0]:  # a newer one comes live, later
            keep = merged.setdefault(bus, {})
            for e in entries:
                if any(t.matches(bus, e.addr) for t in topics):
                    keep[e.epoch, e.seq] = e
    for e in buffer:
        merged.setdefault(e.bus, {})[e.epoch, e.seq] = e
    out: list[str] = []
    for bus, found in merged.items():
        epoch, upto = positions[bus]
        floor = seqs.get(bus, 0)
        mine = replays.get(bus)
        had = None if mine is None else (mine[0].epoch, mine[0].seq)  # the client's position
        order = sorted(
            k for k in found if (had is None or k > had) and (k[0] < epoch or floor < k[1] <= upto)
        )
        out.extend(found[k].text for k in order)
        if order and order[-1][0] == epoch:
            seqs[bus] = order[-1][1]
    return out


def overdue(waits: Iterable[Waiting], now: float, limit: float) -> list[Waiting]:
    """The waits for this node to reach a client's position that have lasted longer than
    ``limit``. A wait's time starts at the first call that sees it (set here)."""
    late: list[Waiting] = []
    for waiting in waits:
        if not waiting.ahead:
            continue
        if waiting.since is None:
            waiting.since = now
        elif now - waiting.since > limit:
            late.append(waiting)
    return late
