"""The Redis history store: one Stream and one meta hash per bus (see :mod:`.keys`).

The owner of a bus numbers its messages here, at once and in memory (:meth:`RedisStore.append`
is synchronous, as :mod:`bridge.store` explains), and a single writer task sends what was
appended to Redis in order, one script per bus per batch: XADD each entry, PUBLISH it, move the
meta seq (:data:`.scripts.APPEND`). While Redis is unreachable the entries wait here (up to
``backlog`` per bus) and are written in order once it is back; past that bound they are dropped
and the bus starts a new epoch, since the stream can no longer be contiguous.

The owner's own clients get an entry once it is in Redis (``on_written``), not when it is
numbered: a seq a client has seen must exist in Redis, or an owner killed between the two
would leave its clients holding messages nobody else has, under seqs the standby then numbers
anew (their resume refused, or worse, accepted with a different message under the same seq).
While Redis is unreachable the owner serves its clients at once instead (``degraded``): being
served beats being consistent with a history nobody can read; an owner that dies then leaves
that window unrecoverable, as any single copy would.

Reading (:meth:`RedisStore.since`) asks Redis: the meta hash says the epoch and the last seq,
the Stream gives the entries. The logical limits (``size`` entries, ``ttl_s`` by message time)
are applied on read, so trimming may stay approximate (``MAXLEN ~``, cheap) without a client
ever seeing more, or less, than a single node would give it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from frames.backoff import Backoff

from ..contract import Position, dumps
from ..history import make_epoch
from ..store import Stamped
from .keys import PayloadError, decode_payload, encode_payload
from .link import REDIS_ERRORS, RedisLink
from .scripts import APPEND

__all__ = ["RedisStore"]

log = logging.getLogger("bridge.cluster")

READS_AT_ONCE = 32  # of redis-py's 100 connections: room for the writer, leases, requests
# entries per append script: a backlog is written in several round trips, each one well within
# the command timeout. One script for the whole backlog (up to 10,000 entries) grows with every
# timeout, so a slow Redis could keep the owner degraded (serving what Redis has not confirmed,
# which a lease lost meanwhile then withdraws: the node's _withdraw)
WRITE_BATCH = 256
META_TTL_S = 7 * 24 * 3600.0  # the epoch outlives quiet weeks; a bus silent longer starts anew


class RedisStore:
    def __init__(
        self,
        link: RedisLink,
        *,
        size: int = 1024,
        ttl_s: float = 300.0,
        backlog: int = 10_000,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.keys = link.keys
        self.size = size
        self.ttl_s = ttl_s
        self.backlog = backlog
        self.rng = rng or random.Random()
        self.clock = clock
        self._pos: dict[str, list[int]] = {}  # bus → [epoch, last seq] (assigned or last seen)
        self._own: set[str] = set()  # buses this node appends to
        self._tokens: dict[str, str] = {}  # bus → the lease value the script checks ("" none)
        self._pending: dict[str, list[tuple[int, str]]] = {}  # bus → (seq, payload) unwritten
        self._held: dict[str, list[Stamped]] = {}  # bus → numbered, not yet given to on_written
        self.degraded = False  # the last write failed: on_written gets entries at once
        self._reset: set[str] = set()  # buses whose next batch starts a new epoch
        self._paused: set[str] = set()  # fenced: waiting for the node to retake the lease
        self._writer: asyncio.Task[None] | None = None
        self._written = asyncio.Event()
        self._append = link.script(APPEND)
        self.on_reset: Callable[[str, int], None] = lambda bus, epoch: None
        # this node's own entries, in seq order, once they are in Redis (or at once: degraded)
        self.on_written: Callable[[list[Stamped]], None] = lambda entries: None
        self.on_fenced: Callable[[str, str], None] = lambda bus, token: None
        self.on_taken: Callable[[str], None] = lambda bus: None  # the node calls reopen
        # history reads at a time: a resume storm (a drained node's clients arriving at once)
        # queues here instead of emptying redis-py's pool, whose overflow is an error (and the
        # resume then a needless ``recovered: false``)
        self._reads = asyncio.Semaphore(READS_AT_ONCE)
        self.backoff = Backoff(0.05, 2.0, rng=self.rng)
        self.batches = 0  # scripts sent
        self.written = 0  # entries written
        self.resets = 0

    # -- buses -------------------------------------------------------------------------------

    def add_bus(self, bus: str, epoch: int) -> None:
        """A bus this node appends to (starting at seq 0 of ``epoch`` unless already known)."""
        self._own.add(bus)
        self._pos.setdefault(bus, [epoch, 0])

    async def open_bus(self, bus: str, epoch: int, token: str = "") -> Position:
        """Take over appending to ``bus``: continue Redis's epoch and seq if it has them (an
        owner restarted, or a standby took over), else start ``epoch`` at 0."""
        meta = await self.link.client.hmget(self.keys.meta(bus), "e", "s")
        self.link.round_trips += 1
        if meta[0] is not None:
            self._pos[bus] = [int(meta[0]), int(meta[1] or 0)]
        else:
            self._pos[bus] = [epoch, 0]
        self._own.add(bus)
        self._tokens[bus] = token
        await self.link.client.sadd(self.keys.buses, bus)
        return self.position(bus)

    def release(self, bus: str) -> list[Stamped]:
        """Stop appending to ``bus`` (the lease lapsed): unwritten entries are dropped.
        Returns those of them this node's clients were given anyway (``degraded``): the next
        owner numbers their seqs anew, unless a write that timed out did land after all."""
        self._own.discard(bus)
        self._tokens.pop(bus, None)
        pending = self._pending.pop(bus, [])
        held = {e.seq for e in self._held.pop(bus, ())}  # never shown: numbered anew, unseen
        self._reset.discard(bus)
        self._paused.discard(bus)
        shown = []
        for seq, payload in pending:
            if seq not in held:
                with contextlib.suppress(PayloadError):
                    shown.append(decode_payload(bus, payload)[0])
        return shown

    def resume(self, bus: str, token: str) -> None:
        """The node holds the lease again (under ``token``): write what waited."""
        self._tokens[bus] = token
        self._paused.discard(bus)
        if self._pending.get(bus):
            self._kick()

    def lost(self, bus: str) -> bool:
        """Whether ``bus``'s history is gone from Redis although this node wrote some
        (``meta_seen`` False): the node then calls :meth:`start_over`."""
        return bus in self._own and not self._pending.get(bus) and self._pos[bus][1] > 0

    def start_over(self, bus: str, why: str) -> None:
        if bus in self._own:
            self._start_over(bus, why)

    def owns(self, bus: str) -> bool:
        return bus in self._own

    def track(self, bus: str, pos: Position) -> None:
        """A bus another node owns, last seen at ``pos``."""
        if bus not in self._own:
            self._pos[bus] = [pos.epoch, pos.seq]

    def buses(self) -> list[str]:
        return list(self._pos)

    def position(self, bus: str) -> Position:
        epoch, seq = self._pos[bus]
        return Position(epoch, seq)

    def backlog_of(self, bus: str) -> int:
        return len(self._pending.get(bus, ()))

    # -- writing -----------------------------------------------------------------------------

    def append(self, bus: str, message: Mapping[str, Any], now: float) -> Stamped:
        pos = self._pos[bus]
        pos[1] += 1
        seq, epoch = pos[1], pos[0]
        full = {"type": message["type"], "bus": bus, "seq": seq, "epoch": epoch}
        full.update(message)
        addr = message.get("addr")
        stamped = Stamped(bus, epoch, seq, float(message.get("ts", now)), addr, dumps(full))
        if bus in self._own:
            pending = self._pending.setdefault(bus, [])
            pending.append((seq, encode_payload(stamped, self.link.node)))
            self._held.setdefault(bus, []).append(stamped)
            if len(pending) > self.backlog:  # Redis has been gone too long: the stream
                self._start_over(bus, "backlog")  # cannot be contiguous any more
            elif self.degraded:
                self._hand_over(bus)
            self._kick()
        return stamped

    def _hand_over(self, bus: str, upto: int | None = None) -> None:
        """Give ``on_written`` the held entries of ``bus`` (up to seq ``upto``), in order."""
        held = self._held.get(bus)
        if not held or (upto is None and bus in self._paused):  # fenced: not ours to show
            return
        n = len(held) if upto is None else sum(1 for e in held if e.seq <= upto)
        if n:
            out, held[:] = held[:n], held[n:]
            self.on_written(out)

    def _kick(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def _start_over(self, bus: str, why: str) -> None:
        """The history of ``bus`` is gone: a new epoch, announced by a ``bus_reset`` event
        (the first message of the new epoch, published through the hub by ``on_reset``)."""
        epoch = make_epoch(self.clock(), self.rng.randrange(1000))
        log.warning("event=bus_reset bus=%s why=%s epoch=%d", bus, why, epoch)
        self._hand_over(bus)  # the old epoch's last entries: resumes across it fail anyway
        self.resets += 1
        self._pos[bus] = [epoch, 0]
        self._pending[bus] = []
        self._reset.add(bus)
        self.on_reset(bus, epoch)

    def _writable(self) -> list[str]:
        return [b for b, p in self._pending.items() if p and b not in self._paused]

    async def _write_loop(self) -> None:
        while buses := self._writable():
            try:
                await asyncio.gather(*(self._write(bus) for bus in buses))
            except REDIS_ERRORS as exc:
                self.link.failed("store", exc)
                self.degraded = True
                for bus in list(self._held):
                    self._hand_over(bus)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.degraded = False
            self.link.ok("store")
            self.backoff.reset()
            self._written.set()
            self._written = asyncio.Event()

    async def _write(self, bus: str) -> None:
        batch = self._pending.get(bus, [])[:WRITE_BATCH]
        if not batch:
            return
        epoch = self._pos[bus][0]
        token = self._tokens.get(bus, "")
        reset = bus in self._reset
        args: list[Any] = [
            epoch,
            token,
            max(self.size, 1),
            int(self.ttl_s * 1000) or 1,
            int(max(META_TTL_S, self.ttl_s) * 1000),
            self.keys.channel(bus),
            self.link.publish_command,
            "1" if reset else "0",
        ]
        for seq, payload in batch:
            args += (seq, payload)
        keys = [self.keys.stream(bus), self.keys.meta(bus), self.keys.owner(bus)]
        result, value = await self._append(keys=keys, args=args)
        self.link.round_trips += 1
        self.batches += 1
        if bus not in self._own or self._pos[bus][0] != epoch:
            return  # released or restarted meanwhile: this batch's answer no longer matters
        if reset:
            self._reset.discard(bus)
        if result in ("fenced", "taken"):  # the lease is not ours (any more), or another owner
            if self._tokens.get(bus, "") != token:  # wrote on: hold the entries, ask the node
                return  # unless it took the lease again meanwhile: the next batch will say
            log.warning("event=%s bus=%s", result, bus)
            self._paused.add(bus)
            if result == "fenced":
                self.on_fenced(bus, token)
            else:
                self.on_taken(bus)
            return
        if result in ("lost", "epoch", "gap"):
            self._start_over(bus, result)
            return
        upto = int(value)
        pending = self._pending.get(bus, [])
        done = 0
        while done < len(pending) and pending[done][0] <= upto:
            done += 1
        self.written += done
        del pending[:done]
        self._hand_over(bus, upto)

    async def flush(self, bus: str, timeout: float, upto: int | None = None) -> bool:
        """Until what ``bus`` appended so far (or up to seq ``upto``) is in Redis (False: not
        within ``timeout``)."""
        target = self._pos.get(bus, [0, 0])[1] if upto is None else upto
        deadline = time.monotonic() + timeout
        while True:
            pending = self._pending.get(bus)
            if not pending or pending[0][0] > target:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._written.wait(), left)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # -- reading -----------------------------------------------------------------------------

    async def meta(self, bus: str) -> Position | None:
        e, s = await self.link.client.hmget(self.keys.meta(bus), "e", "s")
        self.link.round_trips += 1
        return None if e is None else Position(int(e), int(s or 0))

    async def entries_after(self, bus: str, seq: int, count: int) -> list[Stamped]:
        """Up to ``count`` raw entries after ``seq`` (no limits applied: for catching up)."""
        rows = await self.link.client.xrange(self.keys.stream(bus), f"0-{seq + 1}", "+", count)
        self.link.round_trips += 1
        out = []
        for _id, fields in rows:
            try:
                out.append(decode_payload(bus, fields["p"])[0])
            except (PayloadError, KeyError):
                log.warning("event=bad_entry bus=%s id=%s", bus, _id)
        return out

    async def since(self, bus: str, pos: Position, now: float) -> list[Stamped] | None:
        if bus not in self._pos:
            return None
        timeout = self.link.config.command_timeout_s
        # A writer that is late (a loaded owner) still lets the resume through when the
        # client's own position is written: what follows reaches it live once written
        # (on_written). Not written: Redis is unreachable, the client reloads state instead.
        if (
            bus in self._own
            and not await self.flush(bus, timeout)
            and not await self.flush(bus, 0.0, upto=pos.seq)
        ):
            return None
        try:
            async with self._reads:
                meta = await self.meta(bus)
                if meta is None:
                    local = self.position(bus)
                    return [] if pos == local and local.seq == 0 else None
                if pos.epoch != meta.epoch or pos.seq > meta.seq or pos.seq < 0:
                    return None
                if pos.seq == meta.seq:
                    return []
                if self.size == 0 or pos.seq + 1 < meta.seq - self.size + 1:
                    return None
                entries = await self.entries_after(bus, pos.seq, meta.seq - pos.seq)
        except REDIS_ERRORS as exc:
            self.link.failed("read", exc)
            return None
        self.link.ok("read")
        if not entries or entries[0].seq != pos.seq + 1 or entries[0].ts < now - self.ttl_s:
            return None
        return [e for e in entries if e.epoch == meta.epoch and e.seq <= meta.seq]
