"""What a replay needs from a capture, without I/O: directions, request → recorded replies. Pure.

A capture from a master's own link (the bridge's recorder, ``monitor --write`` on a master's
port) knows each packet's direction. A tap does not: it sees one stream. :func:`infer_directions`
fills the gaps with the master/slave rule: a frame is a reply when it has the address and command
of the last request and that request has no reply yet; anything else is a request. (A retry of an
unanswered echo request is then taken for its reply: give such captures a known direction.)

:class:`ReplayBook` answers a request as the capture did: the records after the first unused
recorded request equal to it, up to the next request (bad bytes included, so faults replay too).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from .capture import Record
from .frame import Frame

__all__ = ["ReplayBook", "infer_directions"]


def infer_directions(records: Iterable[Record]) -> Iterator[Record]:
    """``records`` with every unknown direction filled in (known ones are kept)."""
    pending: Frame | None = None  # the last request, while it has no reply
    for rec in records:
        direction = rec.direction
        frame = rec.frame
        if not direction:
            if frame is None:
                direction = "rx" if pending is not None else "tx"
            elif (
                pending is not None
                and frame.addr == pending.addr
                and frame.base_cmd == pending.base_cmd
            ):
                direction = "rx"
            else:
                direction = "tx"
            rec = Record(rec.ts, rec.wire, rec.status, direction, frame, rec.note)
        if frame is not None:
            pending = frame if direction == "tx" else None
        yield rec


class ReplayBook:
    """Recorded replies by request, used in order: the n-th identical request gets the n-th
    recorded answer; once they run out, the last one is repeated."""

    def __init__(self, records: Iterable[Record], *, max_records: int = 1_000_000) -> None:
        self._answers: dict[Frame, deque[tuple[float, list[Record]]]] = {}
        self._last: dict[Frame, tuple[float, list[Record]]] = {}
        self.requests = 0
        current: list[Record] | None = None
        sent_at = 0.0
        for kept, rec in enumerate(infer_directions(records)):
            if kept >= max_records:
                break
            if rec.direction == "tx" and rec.frame is not None:
                current = []
                sent_at = rec.ts
                self._answers.setdefault(rec.frame, deque()).append((sent_at, current))
                self.requests += 1
            elif rec.direction == "rx" and current is not None:
                current.append(rec)

    def answer(self, request: Frame) -> list[tuple[float, Record]]:
        """(delay after the request in recorded seconds, record) for each recorded reply."""
        queue = self._answers.get(request)
        if queue:
            entry = queue.popleft()
            self._last[request] = entry
        else:
            got = self._last.get(request)
            if got is None:
                return []
            entry = got
        sent_at, recs = entry
        return [(max(0.0, r.ts - sent_at), r) for r in recs]
