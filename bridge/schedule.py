"""Poll timing and the fair interleaving of client requests with polls. Pure.

The bus owner asks :meth:`Scheduler.pick` what to do next. Polls keep their rate without
bursting after a stall (missed slots are skipped, not replayed), and when both client requests
and due polls wait, they alternate: neither a flood of requests nor a dense poll plan can starve
the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["PollJob", "Scheduler"]


@dataclass(slots=True)
class PollJob:
    addr: int
    cmd: int
    data: bytes
    interval_s: float
    next_due: float = 0.0
    start_reg: int | None = None  # read_regs: first register, to name the reply's values


class Scheduler:
    def __init__(self, jobs: Iterable[PollJob], now: float) -> None:
        self.jobs = list(jobs)
        # Stagger the first run over one interval so devices are not all polled at once.
        n = max(len(self.jobs), 1)
        for i, job in enumerate(self.jobs):
            job.next_due = now + job.interval_s * i / n
        self._last: Literal["request", "poll"] = "poll"

    def due(self, now: float) -> PollJob | None:
        """The most overdue job, or None when none is due."""
        best: PollJob | None = None
        for job in self.jobs:
            if job.next_due <= now and (best is None or job.next_due < best.next_due):
                best = job
        return best

    def done(self, job: PollJob, now: float) -> None:
        nxt = job.next_due + job.interval_s
        job.next_due = nxt if nxt > now else now + job.interval_s

    def next_time(self) -> float | None:
        return min((j.next_due for j in self.jobs), default=None)

    def pick(self, now: float, requests_waiting: bool) -> Literal["request", "poll"] | None:
        """What to run now: alternate when both are ready."""
        poll_ready = self.due(now) is not None
        if requests_waiting and poll_ready:
            choice: Literal["request", "poll"] = "poll" if self._last == "request" else "request"
        elif requests_waiting:
            choice = "request"
        elif poll_ready:
            choice = "poll"
        else:
            return None
        self._last = choice
        return choice
