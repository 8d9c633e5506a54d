"""What a bus does next: the poll plan, and a fair share of the wire in bus time. Pure.

The bus owner asks :meth:`Scheduler.pick` which *source* to serve next: polling
(:data:`POLL`) or one of the clients with requests waiting. Fairness is counted in **bus
time**, not in turns (issue 10): a transaction that waited 2 s for an absent device costs its
source 2 s, a 5 ms poll costs 5 ms. Each source's usage decays with ``half_life_s``, and the
ready source with the least recent usage goes first. So a client flooding slow requests gets
the wire only when it has used less of it lately than the others: polling keeps its rate,
another client's request goes before the flooder's next one, and each waits at most one
transaction (itself capped by the bus's ``max_timeout_s``).

Tenants (issue 12): a client id ``tenant:NAME/SESSION`` puts the source in its tenant's group.
The wire is shared between *groups* first (polling, each tenant, each client without a tenant),
by the same least-recent-bus-time rule, then between the sources of the chosen group. So a
tenant with a hundred flooding connections gets one group's share, not a hundred: the other
tenants' requests and the polling go round-robin with it, each waiting at most one transaction.
A client group that was idle does not come back with a credit of idle time to burst through:
when it starts waiting, its usage is raised to within ``max_lead_s`` of the client group served
last (as CFS places a waking task near the run queue's level), so it alternates with the others
at once instead of starving them until its usage has caught up. Polling keeps its credit, and a
newcomer is never lifted past waiting polls.

Polls keep their rate without bursting after a stall (missed slots are skipped, not replayed).
:func:`plan_polls` turns the ``[[bus.poll]]`` config into :class:`PollJob` s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from frames import CommandRegistry
from frames.commands import MAX_READ_COUNT
from frames.errors import FrameValueError, UnknownCommand

from .config import BusConfig
from .errors import ConfigError

__all__ = ["POLL", "TENANT_PREFIX", "PollJob", "Scheduler", "group_of", "plan_polls"]

POLL = "<poll>"  # the scheduler's name for polling (client ids are session ids)
TENANT_PREFIX = "tenant:"  # client ids "tenant:NAME/SESSION" are grouped by tenant


def group_of(source: str) -> str:
    """The fairness group of a source: ``tenant:NAME`` for a tenant's client, else itself."""
    if source.startswith(TENANT_PREFIX):
        return source.partition("/")[0]
    return source


@dataclass(slots=True)
class PollJob:
    addr: int
    cmd: int
    data: bytes
    interval_s: float
    next_due: float = 0.0


def plan_polls(
    cfg: BusConfig, registry: CommandRegistry, maps: Mapping[int, Mapping[int, Any]]
) -> list[PollJob]:
    """One job per (poll, device). A ``read_regs`` poll without args reads the device's whole
    register map (``maps``: addr → register address → register)."""
    read_code = registry.resolve_code("read_regs")
    jobs: list[PollJob] = []
    all_addrs = tuple(d.addr for d in cfg.devices)
    for i, poll in enumerate(cfg.polls):
        where = f"bus {cfg.name} poll[{i}]"
        try:
            code = registry.resolve_code(poll.cmd)
            base = poll.data
            if base is None and poll.args is not None:
                base = registry.get(code).encode_request(poll.args)
        except (UnknownCommand, FrameValueError) as exc:
            raise ConfigError(where, str(exc)) from None
        for addr in poll.addrs if poll.addrs is not None else all_addrs:
            data = base
            if data is None and code == read_code:
                regs = sorted(maps.get(addr, {}))
                if not regs:
                    raise ConfigError(
                        where, f"read_regs without args needs a profile (addr {addr})"
                    )
                start, count = regs[0], min(regs[-1] - regs[0] + 1, MAX_READ_COUNT)
                data = registry.get(code).encode_request({"start": start, "count": count})
            jobs.append(PollJob(addr, code, data or b"", poll.interval_s))
    return jobs


class Scheduler:
    def __init__(
        self,
        jobs: Iterable[PollJob],
        now: float,
        *,
        half_life_s: float = 5.0,
        max_lead_s: float = 0.01,
    ) -> None:
        self.jobs = list(jobs)
        self.half_life_s = half_life_s
        self.max_lead_s = max_lead_s
        # Stagger the first run over one interval so devices are not all polled at once.
        n = max(len(self.jobs), 1)
        for i, job in enumerate(self.jobs):
            job.next_due = now + job.interval_s * i / n
        self._usage: dict[str, tuple[float, float]] = {}  # source → (bus seconds, as of)
        self._served: dict[str, int] = {}  # source → turn it was last served (ties)
        self._waiting_groups: set[str] = set()  # the groups of the previous pick
        self._last_group: str | None = None  # the client group served last
        self._turn = 0

    # -- polls -------------------------------------------------------------------------------

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

    # -- sharing the wire --------------------------------------------------------------------

    def usage(self, source: str, now: float) -> float:
        """Bus seconds ``source`` used lately (decayed with ``half_life_s``)."""
        used, at = self._usage.get(source, (0.0, now))
        return used * 2.0 ** (-(now - at) / self.half_life_s) if now > at else used

    def charge(self, source: str, seconds: float, now: float) -> None:
        """``source`` held the wire for ``seconds`` (a transaction that ended at ``now``); its
        tenant's group is charged too."""
        spent = max(seconds, 0.0)
        self._usage[source] = (self.usage(source, now) + spent, now)
        group = group_of(source)
        if group != source:
            self._usage[group] = (self.usage(group, now) + spent, now)

    def pick(self, now: float, waiting: Iterable[str]) -> str | None:
        """The source to serve now: :data:`POLL` or a client in ``waiting``; None: idle."""
        candidates = list(waiting)
        if self.due(now) is not None:
            candidates.append(POLL)
        if not candidates:
            return None
        served = self._served
        groups: dict[str, list[str]] = {}
        for source in candidates:
            groups.setdefault(group_of(source), []).append(source)
        self._wake(groups, now)
        group = min(groups, key=lambda g: (self.usage(g, now), served.get(g, -1), g == POLL))
        if group != POLL:
            self._last_group = group
        members = groups[group]
        best = members[0]
        if len(members) > 1:
            best = min(members, key=lambda s: (self.usage(s, now), served.get(s, -1)))
        self._turn += 1
        served[best] = served[group] = self._turn
        return best

    def _wake(self, groups: dict[str, list[str]], now: float) -> None:
        """Groups that start waiting now get no more than ``max_lead_s`` of credit over the
        client group served last."""
        before, self._waiting_groups = self._waiting_groups, set(groups)
        last = self._last_group
        if last is None:
            return
        floor = self.usage(last, now) - self.max_lead_s
        if POLL in groups:  # a newcomer keeps its place ahead of polling that has more usage
            floor = min(floor, self.usage(POLL, now) - self.max_lead_s)
        for g in groups:
            if g != POLL and g != last and g not in before and self.usage(g, now) < floor:
                self._usage[g] = (floor, now)

    def prune(self, now: float, keep: Iterable[str]) -> None:
        """Drop clients whose usage has decayed to nothing (bounded memory, many clients)."""
        keep = set(keep) | {POLL}
        keep |= {group_of(s) for s in keep}
        for source in [s for s in self._usage if s not in keep]:
            if self.usage(source, now) < 1e-6:
                del self._usage[source]
                self._served.pop(source, None)
