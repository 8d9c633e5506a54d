"""The owner of one serial bus: polls devices, runs client requests, publishes the traffic.

One worker task per bus runs every transaction, so requests and polls interleave fairly
(:class:`bridge.schedule.Scheduler`) and client requests wait in a bounded queue (``busy`` when
full) rather than in the master's. Everything the master sees on the wire arrives through its
``on_traffic`` callback and is published as ``frame`` and ``event`` messages, so sniffed and late
frames reach clients too. Port loss is the master's to recover (it reconnects with backoff);
this class turns its link changes into ``bus_down``/``bus_up`` and keeps polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frames import MAX_SLAVE_ADDR, STANDARD, CommandRegistry, Frame
from frames.commands import MAX_READ_COUNT, jsonable
from frames.errors import (
    DeviceError,
    FramesError,
    FrameValueError,
    LinkDown,
    MasterClosed,
    Timeout,
    UnknownCommand,
)
from frames.events import CrcErrorSeen, FrameReceived, FrameSent, LinkStateChanged, TrafficEvent
from frames.io.serial_async import AsyncMaster

from . import contract as c
from .config import BusConfig
from .devices import DeviceBook, RegisterInfo
from .errors import ConfigError
from .fanout import Hub
from .metrics import BridgeMetrics
from .schedule import PollJob, Scheduler

__all__ = ["BusOwner", "load_register_maps"]

log = logging.getLogger("bridge.buses")


def load_register_maps(cfg: BusConfig) -> dict[int, dict[int, RegisterInfo]]:
    """addr → register address → profile register, for devices that name a profile."""
    from firmware_sim.profile import load_profile

    maps: dict[int, dict[int, RegisterInfo]] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.profile is None:
            continue
        try:
            profile = load_profile(dev.profile)
        except Exception as exc:  # the profile loader has its own error tree; report any
            raise ConfigError(f"bus {cfg.name} device[{i}].profile", str(exc)) from None
        maps[dev.addr] = {r.address: r for r in profile.registers}
    return maps


@dataclass(slots=True)
class _Pending:
    request: c.Request
    code: int
    data: bytes
    future: asyncio.Future[dict[str, Any]]


def _fail(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}


class BusOwner:
    def __init__(
        self,
        cfg: BusConfig,
        hub: Hub,
        metrics: BridgeMetrics,
        *,
        request_queue: int = 32,
        offline_after: int = 1,
        registry: CommandRegistry = STANDARD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.hub = hub
        self.metrics = metrics
        self.registry = registry
        self.clock = clock
        self.request_queue = request_queue
        self._read_code = registry.resolve_code("read_regs")
        self._write_code = registry.resolve_code("write_reg")
        self._identify_code = registry.resolve_code("identify")
        self._awaiting: int | None = None  # address whose reply the worker waits for
        self._described: tuple[Frame, bool, dict[str, Any] | None] | None = None
        self.down_reason = ""
        maps = load_register_maps(cfg)
        self.book = DeviceBook(
            [(d.addr, d.name, d.profile) for d in cfg.devices], maps, offline_after=offline_after
        )
        self.jobs = self._jobs(maps)
        self.master = AsyncMaster(
            cfg.url,
            baudrate=cfg.baudrate,
            timeout=cfg.timeout_s,
            retries=cfg.retries,
            fmt=cfg.format,
            registry=registry,
            gap=cfg.gap_s,
            discard_echo=cfg.discard_echo,
            reconnect=True,
            reconnect_min=cfg.reconnect_min_s,
            reconnect_max=cfg.reconnect_max_s,
            on_traffic=self._on_traffic,
        )
        self._read_start: dict[int, int] = {}  # addr → start of its last read_regs request
        self._requests: deque[_Pending] = deque()
        self._inflight: _Pending | None = None
        self._idle_changed = asyncio.Event()  # set whenever a request finishes
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._up = False
        metrics.bus_up.labels(self.name).set(0)

    def _jobs(self, maps: dict[int, dict[int, RegisterInfo]]) -> list[PollJob]:
        jobs: list[PollJob] = []
        all_addrs = tuple(d.addr for d in self.cfg.devices)
        for i, poll in enumerate(self.cfg.polls):
            where = f"bus {self.name} poll[{i}]"
            try:
                code = self.registry.resolve_code(poll.cmd)
                base = (
                    poll.data
                    if poll.data is not None
                    else self.registry.get(code).encode_request(poll.args)
                    if poll.args is not None
                    else None
                )
            except (UnknownCommand, FrameValueError) as exc:
                raise ConfigError(where, str(exc)) from None
            for addr in poll.addrs if poll.addrs is not None else all_addrs:
                data, start = base, None
                if data is None and code == self._read_code:
                    regs = sorted(maps.get(addr, {}))
                    if not regs:
                        raise ConfigError(
                            where, f"read_regs without args needs a profile (addr {addr})"
                        )
                    start, count = regs[0], min(regs[-1] - regs[0] + 1, MAX_READ_COUNT)
                    data = self.registry.get(code).encode_request({"start": start, "count": count})
                jobs.append(PollJob(addr, code, data or b"", poll.interval_s, start_reg=start))
        return jobs

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    async def start(self) -> None:
        await self.master.open()
        if not self.master.connected:
            self.down_reason = f"cannot open {self.cfg.url}"
            self._publish_event("bus_down", None, self.clock(), reason=self.down_reason)
        self._worker = asyncio.create_task(self._run(), name=f"bus-{self.name}")

    def idle(self) -> bool:
        return not self._requests and self._inflight is None

    async def wait_idle(self) -> None:
        """Until no client request is queued or on the wire (for a graceful stop)."""
        while not self.idle():
            self._idle_changed.clear()
            await self._idle_changed.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Finish queued and in-flight requests (up to ``grace`` s), then stop polling and close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_idle(), grace)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for pending in self._requests:
            if not pending.future.done():
                pending.future.set_result(_fail("bus_down", "bridge stopping"))
        self._requests.clear()
        await self.master.close()

    # -- requests ----------------------------------------------------------------------------

    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            code = self.registry.resolve_code(request.cmd)
            if request.args is not None:
                data = self.registry.get(code).encode_request(request.args)
            else:
                data = request.data or b""
        except (UnknownCommand, FrameValueError) as exc:
            fut.set_result(_fail("bad_request", str(exc)))
            return fut
        if not 1 <= request.addr <= MAX_SLAVE_ADDR:
            fut.set_result(
                _fail("bad_request", f"addr must be 1..{MAX_SLAVE_ADDR} (no broadcast via request)")
            )
        elif code >= 0x80:
            fut.set_result(_fail("bad_request", "cmd must be 0..127"))
        elif not self._up:
            fut.set_result(_fail("bus_down", f"bus {self.name} is down"))
        elif len(self._requests) >= self.request_queue:
            fut.set_result(_fail("busy", f"bus {self.name} has {len(self._requests)} queued"))
        else:
            self._requests.append(_Pending(request, code, data, fut))
            self._wakeup.set()
        return fut

    async def _run(self) -> None:
        sched = Scheduler(self.jobs, time.monotonic())
        while True:
            now = time.monotonic()
            choice = sched.pick(now, bool(self._requests))
            if choice == "request":
                pending = self._requests.popleft()
                self._inflight = pending
                try:
                    result = await self._transact(pending)
                finally:
                    self._inflight = None
                    self._idle_changed.set()
                if not pending.future.done():
                    pending.future.set_result(result)
            elif choice == "poll":
                job = sched.due(now)
                assert job is not None
                await self._poll(job)
                sched.done(job, time.monotonic())
            else:
                nxt = sched.next_time()
                self._wakeup.clear()
                if self._requests:
                    continue
                delay = None if nxt is None else max(0.0, nxt - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _transact(self, pending: _Pending) -> dict[str, Any]:
        req = pending.request
        t0 = time.perf_counter()
        self._awaiting = req.addr
        try:
            frame = await self.master.request(
                req.addr, pending.code, pending.data, timeout=req.timeout_s
            )
        except Timeout:
            self.book.count_error(req.addr, "timeouts")
            return _fail("timeout", f"no reply from addr {req.addr}")
        except DeviceError as exc:
            self.book.count_error(req.addr, "device_errors")
            self._seen(req.addr)
            return _fail("device_error", str(exc), device_code=exc.code)
        except (LinkDown, MasterClosed) as exc:
            return _fail("bus_down", str(exc) or f"bus {self.name} is down")
        except FramesError as exc:
            return _fail("bad_request", str(exc))
        finally:
            self._awaiting = None
        rtt = (time.perf_counter() - t0) * 1000
        self._seen(req.addr)
        out: dict[str, Any] = {
            "ok": True,
            "bus": self.name,
            "addr": frame.addr,
            "cmd": frame.cmd,
            "data": frame.data.hex(),
        }
        fields = self._fields(frame, False, pending.data)
        if fields is not None:
            out["fields"] = fields
        out["rtt_ms"] = round(rtt, 3)
        return out

    async def _poll(self, job: PollJob) -> None:
        t0 = time.perf_counter()
        self._awaiting = job.addr
        try:
            await self.master.request(job.addr, job.cmd, job.data)
        except Timeout:
            self.metrics.polls.labels(self.name, "timeout").inc()
            if self.book.missed(job.addr):
                self._publish_event("device_offline", job.addr, self.clock())
            return
        except DeviceError:
            self.book.count_error(job.addr, "device_errors")
            self.metrics.polls.labels(self.name, "device_error").inc()
        except (LinkDown, MasterClosed):
            self.metrics.polls.labels(self.name, "bus_down").inc()
            return
        except FramesError as exc:
            log.warning("event=poll_error bus=%s addr=%s error=%s", self.name, job.addr, exc)
            return
        else:
            self.metrics.polls.labels(self.name, "ok").inc()
        finally:
            self._awaiting = None
        self.metrics.poll_latency.labels(self.name).observe(time.perf_counter() - t0)
        self._seen(job.addr)
        if self.book.needs_identity(job.addr):
            await self._identify(job.addr)

    async def _identify(self, addr: int) -> None:
        """Ask a device that just came online who it is, once, so ``state`` can show it.

        The reply reaches the book through the traffic callback like any other frame. A device
        that refuses or ignores IDENTIFY gets an empty identity: it is asked again only the next
        time it comes online, never on every poll.
        """
        self._awaiting = addr
        try:
            await self.master.request(addr, self._identify_code)
        except (LinkDown, MasterClosed):
            return  # the bus, not the device: ask again after the next good poll
        except FramesError as exc:
            log.info("event=identify_failed bus=%s addr=%s error=%s", self.name, addr, exc)
            self.book.identified(addr, {})
        finally:
            self._awaiting = None

    def _seen(self, addr: int) -> None:
        if self.book.seen(addr, self.clock()):
            self._publish_event("device_online", addr, self.clock())

    # -- traffic → messages ------------------------------------------------------------------

    def _fields(
        self, frame: Frame, request: bool, sent: bytes | None = None
    ) -> dict[str, Any] | None:
        fields = self._describe(frame, request)
        if fields is None:
            return None
        out: dict[str, Any] = jsonable(fields)
        if not request and not frame.is_error and frame.cmd == self._read_code:
            start = (
                int.from_bytes(sent[:2], "little")
                if sent is not None and len(sent) >= 2
                else self._read_start.get(frame.addr)
            )
            values = out.get("values")
            if start is not None and isinstance(values, list):
                named = self.book.names(frame.addr, start, values)
                if named:
                    out["named"] = named
        return out

    def _describe(self, frame: Frame, request: bool) -> dict[str, Any] | None:
        """Decoded fields of ``frame``, parsed once: a reply is remembered, published and
        answered to its requester from the same Frame object, and construct parsing is the
        slow part of all three. One entry, keyed by identity (frames are immutable)."""
        cached = self._described
        if cached is not None and cached[0] is frame and cached[1] == request:
            return cached[2]
        fields = self.registry.describe(frame, request=request)
        self._described = (frame, request, fields)
        return fields

    def _on_traffic(self, ev: TrafficEvent) -> None:
        try:
            self._traffic(ev)
        except Exception:  # monitoring must never break the bus
            log.exception("event=traffic_error bus=%s", self.name)

    def _traffic(self, ev: TrafficEvent) -> None:
        if isinstance(ev, FrameSent):
            f = ev.frame
            if f.cmd == self._read_code and len(f.data) >= 2:
                self._read_start[f.addr] = int.from_bytes(f.data[:2], "little")
            self._publish_frame(f, "tx", ev.ts)
        elif isinstance(ev, FrameReceived):
            if ev.kind == "echo":
                return
            f = ev.frame
            if ev.kind == "reply" and not f.is_error:
                self._remember(f, ev.ts)
            self._publish_frame(f, "rx", ev.ts, None if ev.kind == "reply" else ev.kind)
        elif isinstance(ev, CrcErrorSeen):
            self.metrics.crc_errors.labels(self.name).inc(ev.count)
            addr = self._awaiting
            if addr is not None:
                self.book.count_error(addr, "crc_errors", ev.count)
                self._publish_event("crc_error", None, ev.ts, count=ev.count, awaiting=addr)
            else:
                self._publish_event("crc_error", None, ev.ts, count=ev.count)
        elif isinstance(ev, LinkStateChanged):
            if ev.up == self._up:
                return
            self._up = ev.up
            self.down_reason = "" if ev.up else (ev.reason or "port unavailable")
            self.metrics.bus_up.labels(self.name).set(1 if ev.up else 0)
            log.log(
                logging.INFO if ev.up else logging.WARNING,
                "event=%s bus=%s reason=%r",
                "bus_up" if ev.up else "bus_down",
                self.name,
                ev.reason,
            )
            extra = {"reason": ev.reason} if ev.reason else {}
            self._publish_event("bus_up" if ev.up else "bus_down", None, ev.ts, **extra)

    def _remember(self, f: Frame, ts: float) -> None:
        if f.cmd == self._read_code:
            start = self._read_start.get(f.addr)
            fields = self._describe(f, False)
            if start is not None and fields is not None and isinstance(fields.get("values"), list):
                self.book.registers(f.addr, start, fields["values"], ts)
        elif f.cmd == self._identify_code:
            fields = self._describe(f, False)
            if fields is not None:
                self.book.identified(f.addr, jsonable(fields))
        elif f.cmd == self._write_code and len(f.data) == 4:
            reg = int.from_bytes(f.data[:2], "little")
            value = int.from_bytes(f.data[2:], "little")
            self.book.registers(f.addr, reg, [value], ts)

    def _publish_frame(self, f: Frame, direction: str, ts: float, kind: str | None = None) -> None:
        msg: dict[str, Any] = {
            "type": "frame",
            "ts": round(ts, 6),
            "addr": f.addr,
            "cmd": f.cmd,
            "dir": direction,
            "data": f.data.hex(),
        }
        fields = self._fields(f, direction == "tx")
        if fields is not None:
            msg["fields"] = fields
        if kind is not None:
            msg["kind"] = kind
        self.hub.publish(self.name, msg, self.clock())

    def _publish_event(self, event: str, addr: int | None, ts: float, **extra: Any) -> None:
        msg: dict[str, Any] = {"type": "event", "ts": round(ts, 6), "event": event}
        if addr is not None:
            msg["addr"] = addr
        msg.update(extra)
        log.info("event=%s bus=%s addr=%s", event, self.name, addr)
        self.hub.publish(self.name, msg, self.clock())

    def snapshot(self) -> dict[str, Any]:
        return self.book.snapshot()
