"""One node of a cluster: bus leases, the buses of the other nodes, position checks.

Ownership (a lease per bus): ``SET {P:bus}:owner "<node> <token>" NX PX ttl``, the token from
``INCR {P:bus}:fence``; the owner renews it every third of the TTL (a script that renews only
its own value). The append script checks the value, so a node whose lease lapsed and was taken
cannot write a single entry (fencing). A node configured for a bus that another node holds does
not poll it (it says why: log, ``/healthz``) and serves it as a remote bus; it retries the lease
at every renewal tick, so it takes over within one TTL when the owner dies (a standby).

While Redis is unreachable an owner keeps polling and serving its local clients (seqs stay
contiguous; the store keeps what Redis must get, see :mod:`.store`); a lease that expired
meanwhile is taken again if it is free, and given up (polling stops) if another node took it.

Every node serves every bus: each ``check_s`` it lists the cluster's buses and reads each one's
meta and owner in one pipeline. A bus it does not know yet is watched (pub/sub) from then on.
The position check: when a bus's meta is at a seq this node had not passed on by the previous
check, or at another epoch, the node reads the stream and feeds the fan-out, which orders and
deduplicates (a pub/sub link that died silently costs at most two checks of latency, no gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import BusConfig
from ..contract import Position
from ..fanout import NodeHub
from ..history import make_epoch
from ..store import Stamped
from .broker import RedisBroker
from .link import REDIS_ERRORS, RedisLink
from .owned import OwnedBus, Owner
from .remote import RemoteBus, RequestRouter
from .scripts import RELEASE, RENEW
from .store import RedisStore

__all__ = ["ClusterHub", "ClusterNode", "OwnedBus"]

log = logging.getLogger("bridge.cluster")

# A client ahead of this node waits until the node has caught up (the position check does it
# within two checks); one that waited this long is closed and resumes (LocalFanout.overdue)
WAIT_LIMIT_S = 10.0


class ClusterHub(NodeHub):
    """A node hub that publishes only on buses whose lease it holds (an owner stopping after
    its lease lapsed may still have a frame in flight: it is dropped, not numbered), and gives
    its own clients a message once the store has written it (:mod:`.store` says why)."""

    store: RedisStore

    def __init__(self, store: RedisStore, broker: RedisBroker) -> None:
        super().__init__(store, broker)
        self.store = store
        self.not_owned = 0
        store.on_written = self._written

    def _written(self, entries: list[Stamped]) -> None:
        for entry in entries:
            self.broker.publish(entry)

    def publish(self, bus: str, message: Any, now: float) -> int:
        if not self.store.owns(bus):
            self.not_owned += 1
            return 0
        return self.store.append(bus, message, now).seq  # delivered by _written


class ClusterNode:
    def __init__(
        self,
        link: RedisLink,
        hub: ClusterHub,
        broker: RedisBroker,
        buses: dict[str, Any],
        configured: Mapping[str, BusConfig],
        make_owner: Callable[[BusConfig], Owner],
        *,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.link = link
        self.node = link.node
        self.keys = link.keys
        self.hub = hub
        self.store = hub.store
        self.broker = broker
        self.buses = buses  # the server's view: name → OwnedBus | RemoteBus (shared dict)
        self.configured = dict(configured)
        self.make_owner = make_owner
        self.ttl_ms = int(link.config.ownership_ttl_s * 1000)
        self.check_s = check_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.router = RequestRouter(link)
        self.owned: dict[str, Owner] = {}
        self.leases: dict[str, str] = {}  # bus → our lease value
        self.owners: dict[str, str | None] = {}  # bus → its owner node, as last read
        self.notes: dict[str, str] = {}  # configured bus → why this node does not poll it
        self._seen_meta: dict[str, int] = {}  # bus → meta seq at the previous check
        self._renew = link.script(RENEW)
        self._release = link.script(RELEASE)
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()  # lease changes one at a time
        self.catch_ups = 0  # times the stream had what pub/sub had not delivered
        self.caught = 0  # messages delivered from the stream by those
        self.position_checks = 0
        self.store.on_reset = self._on_reset
        self.store.on_fenced = lambda bus, token: self._spawn(self._refenced(bus, token))
        self.store.on_taken = lambda bus: self._spawn(self._reopen(bus))
        broker.on_resubscribed = lambda: self._spawn(self._catch_up_all())

    @property
    def degraded(self) -> bool:
        return self.link.degraded

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.broker.listen(self.keys.replies(self.node), self.router.on_reply)
        try:
            await self.link.connect()
        except REDIS_ERRORS as exc:
            self.link.failed("node", exc)
        self.broker.start()
        try:
            await self._leases()
            await self._check()
        except REDIS_ERRORS as exc:
            self.link.failed("node", exc)
        self._task = asyncio.create_task(self._loop(), name="cluster-node")

    async def stop(self) -> None:
        """Stop polling, write what is pending (bounded), give the leases up (a standby takes
        over at once instead of after a TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for owner in list(self.owned.values()):
            await owner.stop(grace=0)
        for bus in list(self.leases):
            await self.store.flush(bus, self.link.config.command_timeout_s)
            with contextlib.suppress(*REDIS_ERRORS):
                await self._release(keys=[self.keys.owner(bus)], args=[self.leases[bus]])
        for task in list(self._tasks):
            task.cancel()
        await self.router.close()
        await self.broker.close()
        await self.store.close()
        await self.link.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _loop(self) -> None:
        lease_every = max(self.ttl_ms / 3000, 0.05)
        next_lease = next_check = time.monotonic()
        while True:
            now = time.monotonic()
            self.hub.fanout.overdue(now, WAIT_LIMIT_S)  # Redis or not
            try:
                if now >= next_lease:
                    next_lease = now + lease_every
                    await self._leases()
                if now >= next_check:
                    next_check = now + self.check_s
                    await self._check()
                self.link.ok("node")
            except REDIS_ERRORS as exc:
                self.link.failed("node", exc)
            await asyncio.sleep(max(0.0, min(next_lease, next_check) - time.monotonic()))

    # -- leases ------------------------------------------------------------------------------

    async def _take(self, bus: str) -> str | None:
        """Try to take ``bus``'s lease; its value, or None (another node holds it)."""
        self.link.round_trips += 1
        if await self.link.client.exists(self.keys.owner(bus)):  # a standby's usual answer
            return None
        token = await self.link.client.incr(self.keys.fence(bus))
        value = f"{self.node} {token}"
        ok = await self.link.client.set(self.keys.owner(bus), value, nx=True, px=self.ttl_ms)
        self.link.round_trips += 2
        return value if ok else None

    async def _leases(self) -> None:
        async with self._lock:
            for bus, value in list(self.leases.items()):
                renewed = await self._renew(keys=[self.keys.owner(bus)], args=[value, self.ttl_ms])
                self.link.round_trips += 1
                if not renewed:
                    await self._retake(bus)
            for bus in self.configured:
                if bus not in self.leases:
                    await self._try_own(bus)

    async def _try_own(self, bus: str) -> None:
        value = await self._take(bus)
        if value is None:
            holder = await self.link.client.get(self.keys.owner(bus))
            who = holder.split(" ")[0] if holder else "?"
            note = f"bus {bus} is owned by node {who}: not polled here (standby)"
            if self.notes.get(bus) != note:
                log.warning("event=bus_refused bus=%s owner=%s", bus, who)
            self.notes[bus] = note
            self._watch(bus, await self.store.meta(bus))
            remote = self.buses[bus]
            if isinstance(remote, RemoteBus):
                remote.note = note
            return
        self.leases[bus] = value
        self.notes.pop(bus, None)
        epoch = make_epoch(self.clock(), self.rng.randrange(1000))
        pos = await self.store.open_bus(bus, epoch, value)
        self.broker.watch(bus)
        self.hub.fanout.add_bus(bus, pos)
        await self._catch_up(bus)  # a standby taking over: pass on what the old owner wrote
        owner = self.make_owner(self.configured[bus])
        self.owned[bus] = owner
        self.owners[bus] = self.node
        self.buses[bus] = OwnedBus(owner, self.node)
        self.router.own(bus, owner)
        self.broker.listen(self.keys.requests(bus), self.router.on_request)
        log.info("event=bus_owned bus=%s epoch=%d seq=%d lease=%r", bus, pos.epoch, pos.seq, value)
        await owner.start()

    async def _retake(self, bus: str) -> None:
        """Our lease is gone (expired while Redis was away, or flushed): take it again if it
        is free, else stop polling."""
        value = await self._take(bus)
        if value is not None:
            self.leases[bus] = value
            self.store.resume(bus, value)
            log.info("event=lease_retaken bus=%s lease=%r", bus, value)
        else:
            await self._lose(bus)

    async def _refenced(self, bus: str, token: str) -> None:
        async with self._lock:
            if self.leases.get(bus) == token:  # not taken again since that write
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._retake(bus)

    async def _reopen(self, bus: str) -> None:
        """The lease is ours again, but another node numbered on meanwhile (the store's write
        said ``taken``): go on from Redis's epoch and seq, and withdraw what this node's
        clients were given under the stale numbering."""
        async with self._lock:
            value = self.leases.get(bus)
            if value is None:
                return
            shown = self.store.release(bus)
            try:
                pos = await self.store.open_bus(bus, self.store.position(bus).epoch, value)
            except REDIS_ERRORS as exc:
                self.link.failed("node", exc)
                await self._lose(bus)  # a standby, until the lease is taken anew
            else:
                log.warning("event=reopened bus=%s epoch=%d seq=%d", bus, pos.epoch, pos.seq)
            await self._withdraw(bus, shown)

    async def _lose(self, bus: str) -> None:
        log.warning("event=ownership_lost bus=%s", bus)
        self.leases.pop(bus, None)
        shown = self.store.release(bus)
        self.router.disown(bus)
        owner = self.owned.pop(bus, None)
        remote = RemoteBus(bus, self.router, lambda: self.owners.get(bus))
        remote.note = self.notes[bus] = f"the lease of bus {bus} lapsed: not polled here"
        self.buses[bus] = remote
        if owner is not None:
            await owner.stop(grace=0)
        await self._withdraw(bus, shown)

    async def _withdraw(self, bus: str, shown: list[Stamped]) -> None:
        """This node served ``shown`` to its clients while Redis did not answer, and lost the
        lease before writing them: the next owner numbers those seqs anew. From the first one
        the stream does not hold as served (a write that timed out may have landed), the
        clients of this node hold another history than everyone else's: the fan-out withdraws
        it (its sessions forget the bus's position: ``bus_reset``) and passes the stream's on.
        Left alone, the node dropped the new owner's messages as duplicates until it overtook
        this node's seq: clients silent for as long, then a history that is not the stream's."""
        there: list[Stamped] = []
        if shown:
            with contextlib.suppress(*REDIS_ERRORS):  # unreadable: withdraw all of them
                there = await self.store.entries_after(bus, shown[0].seq - 1, len(shown))
        stream = {e.seq: e for e in there}
        first = next((e for e in shown if stream.get(e.seq) != e), None)
        if first is not None:
            log.warning("event=withdrawn bus=%s from=%d upto=%d", bus, first.seq, shown[-1].seq)
            self.hub.fanout.withdraw(bus, Position(first.epoch, first.seq - 1))
        with contextlib.suppress(*REDIS_ERRORS):
            await self._catch_up(bus)  # the stream's, from there (or from where this node is)

    def _on_reset(self, bus: str, epoch: int) -> None:
        now = self.clock()
        self.hub.publish(bus, {"type": "event", "event": "bus_reset", "ts": round(now, 3)}, now)

    # -- every bus, and the position check ---------------------------------------------------

    def _watch(self, bus: str, meta: Position | None) -> None:
        if bus in self.buses:
            return
        self.store.track(bus, meta or Position(0, 0))
        self.hub.fanout.add_bus(bus, self.store.position(bus))
        self.broker.watch(bus)
        self.buses[bus] = RemoteBus(bus, self.router, lambda: self.owners.get(bus))

    async def _check(self) -> None:
        names = sorted(await self.link.client.smembers(self.keys.buses))
        pipe = self.link.client.pipeline(transaction=False)
        for bus in names:
            pipe.hmget(self.keys.meta(bus), "e", "s")
            pipe.get(self.keys.owner(bus))
        replies = await pipe.execute() if names else []
        self.link.round_trips += 2
        self.position_checks += 1
        for i, bus in enumerate(names):
            (e, s), holder = replies[2 * i], replies[2 * i + 1]
            meta = None if e is None else Position(int(e), int(s or 0))
            self.owners[bus] = holder.split(" ")[0] if holder else None
            if bus in self.leases:
                if meta is None and self.store.lost(bus):  # flushed while quiet
                    self.store.start_over(bus, "lost")
                continue
            self._watch(bus, meta)
            if meta is None:
                continue
            here = self.hub.fanout.position(bus)
            behind = here.seq < self._seen_meta.get(bus, 0)  # not passed on for a whole check
            if meta.epoch != here.epoch or behind or self.hub.fanout.missing(bus):
                await self._catch_up(bus)
            self._seen_meta[bus] = meta.seq if meta.epoch == here.epoch else 0

    async def _catch_up(self, bus: str) -> None:
        """Pass on, from the stream, what this node has not: the rest of its epoch, or the
        whole new epoch."""
        meta = await self.store.meta(bus)
        if meta is None:
            return
        here = self.hub.fanout.position(bus)
        after = here.seq if meta.epoch == here.epoch else 0
        if meta.seq <= after:
            return
        entries = await self.store.entries_after(bus, after, meta.seq - after)
        entries = [e for e in entries if e.epoch == meta.epoch]
        if not entries:
            return
        self.catch_ups += 1
        if meta.epoch == here.epoch and entries[0].seq > after + 1:
            self.hub.fanout.skip(bus, entries[0].seq - 1)  # older than the stream keeps
        before = self.hub.stats.published
        for entry in entries:
            self.hub.fanout.receive(entry)
        got = self.hub.stats.published - before
        self.caught += got
        if got:
            log.info("event=caught_up bus=%s messages=%d upto=%d", bus, got, meta.seq)

    async def _catch_up_all(self) -> None:
        for bus in list(self.buses):
            if bus not in self.leases:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._catch_up(bus)

    # -- health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "redis": "degraded" if self.degraded else "ok",
            "pubsub": self.broker.connected,
            "owned": sorted(self.leases),
            "standby": dict(self.notes),
            "backlog": {b: self.store.backlog_of(b) for b in self.leases},
            "catch_ups": self.catch_ups,
            "late_replies": self.router.late_replies,
        }
