"""The owner of one serial bus: the thin worker that runs transactions and publishes traffic.

What to do next is :class:`bridge.schedule.Scheduler`'s decision (polls and each client share
the wire by bus time); what the traffic means is :class:`bridge.traffic.TrafficCore`'s (frames
and events, the device book, noise coalescing). This module only owns the port and the task:
it asks, awaits the master, tells, and publishes. Client requests wait here in per-client
queues (:class:`bridge.bus_queue.RequestQueues`: ``busy`` when the client's bound is reached, or
the bus's and its group holds as much of it as any), not in the master's. Port loss
is the master's to recover (it reconnects with backoff); its link changes become
``bus_down``/``bus_up``, and polling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frames import MAX_SLAVE_ADDR, STANDARD, CommandRegistry
from frames.errors import (
    DeviceError,
    FramesError,
    FrameValueError,
    LinkDown,
    MasterClosed,
    Timeout,
    UnknownCommand,
)
from frames.events import CrcErrorSeen, LinkStateChanged, TrafficEvent
from frames.io.serial_async import AsyncMaster

from . import contract as c
from .bus_queue import RequestQueues
from .config import BusConfig
from .devices import DeviceBook, load_register_maps
from .fanout import Hub
from .metrics import BridgeMetrics
from .replay import ReplayMaster, capture_recorder, is_replay_url
from .schedule import POLL, PollJob, Scheduler, plan_polls
from .series import SeriesStore
from .traffic import Message, NoiseLimits, TrafficCore

__all__ = ["BusOwner", "load_register_maps"]

log = logging.getLogger("bridge.buses")

_QUIET_EVENTS = {"crc_error", "frames_dropped"}  # coalesced noise: debug only
_LINK_EVENTS = {"bus_up", "bus_down"}  # logged once, where the link change is handled


@dataclass(slots=True)
class _Pending:
    request: c.Request
    client: str
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
        series: SeriesStore | None = None,
    ) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.url = cfg.url  # shown in `state` (the dashboard's "port")
        self.hub = hub
        self.metrics = metrics
        self.registry = registry
        self.clock = clock
        self.down_reason = ""
        maps = load_register_maps(cfg)
        self.book = DeviceBook(
            [(d.addr, d.name, d.profile) for d in cfg.devices], maps, offline_after=offline_after
        )
        noise = NoiseLimits(cfg.error_interval_s, cfg.unsolicited_per_s)
        self.core = TrafficCore(cfg.name, registry, self.book, noise, series)
        self.jobs: list[PollJob] = plan_polls(cfg, registry, maps)
        self.recorder = capture_recorder(cfg)  # None unless [bus.capture] is set
        self.master: AsyncMaster | ReplayMaster = AsyncMaster(
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
        if is_replay_url(cfg.url):  # a capture played back as a live bus (bridge/replay.py)
            self.master = ReplayMaster(cfg.url, on_traffic=self._on_traffic)
        self.queues: RequestQueues[_Pending] = RequestQueues(request_queue, cfg.client_requests)
        self._inflight: _Pending | None = None
        self._idle_changed = asyncio.Event()  # set whenever a request finishes
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self.scheduler = Scheduler(self.jobs, time.monotonic())
        metrics.bus_up.labels(self.name).set(0)
        # labelled children looked up once: labels() costs more than the increment
        outcomes = ("ok", "timeout", "device_error", "bus_down")
        self._polls = {o: metrics.polls.labels(self.name, o) for o in outcomes}
        self._poll_latency = metrics.poll_latency.labels(self.name)
        self._crc_errors = metrics.crc_errors.labels(self.name)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.core.up

    async def start(self) -> None:
        await self.master.open()
        if not self.master.connected:
            self.down_reason = f"cannot open {self.cfg.url}"
            log.warning("event=bus_down bus=%s reason=%r", self.name, self.down_reason)
            self._publish(
                [self.core.event("bus_down", None, self.clock(), reason=self.down_reason)]
            )
        self._worker = asyncio.create_task(self._run(), name=f"bus-{self.name}")

    def idle(self) -> bool:
        return not self.queues and self._inflight is None

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
        if self._ticker is not None:
            self._ticker.cancel()
        for pending in self.queues.clear():
            if not pending.future.done():
                pending.future.set_result(_fail("bus_down", "bridge stopping"))
        await self.master.close()
        if self.recorder is not None:
            self.recorder.close()

    # -- requests ----------------------------------------------------------------------------

    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]:
        """Queue a client's request; refused at once (a done future) when it cannot be run.

        ``client`` (the session id) is the source the bus's time is shared between and what
        ``client_requests`` counts; "" (a caller that names none) is one shared source, bounded
        by ``request_queue`` only. A full queue makes room for a group holding less of it than
        another (:mod:`bridge.bus_queue`): that other's newest request is answered ``busy``."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        refusal = self._refusal(request, client)
        if isinstance(refusal, dict):
            fut.set_result(refusal)
            return fut
        code, data = refusal
        evicted = self.queues.push(client, _Pending(request, client, code, data, fut))
        if evicted is not None and not evicted.future.done():
            text = f"bus {self.name} queue is full: room made for another client's request"
            evicted.future.set_result(_fail("busy", text))
        self._wakeup.set()
        return fut

    def _refusal(self, request: c.Request, client: str) -> dict[str, Any] | tuple[int, bytes]:
        """The error reply for a request that cannot run, or its (command code, payload)."""
        try:
            code = self.registry.resolve_code(request.cmd)
            if request.args is not None:
                data = self.registry.get(code).encode_request(request.args)
            else:
                data = request.data or b""
        except (UnknownCommand, FrameValueError) as exc:
            return _fail("bad_request", str(exc))
        cap = self.cfg.max_timeout_s
        if not 1 <= request.addr <= MAX_SLAVE_ADDR:
            return _fail(
                "bad_request", f"addr must be 1..{MAX_SLAVE_ADDR} (no broadcast via request)"
            )
        if code >= 0x80:
            return _fail("bad_request", "cmd must be 0..127")
        if request.timeout_s is not None and request.timeout_s > cap:
            return _fail("bad_request", f"timeout_s must be <= {cap:g} on bus {self.name}")
        if not self.up:
            return _fail("bus_down", f"bus {self.name} is down")
        busy = self.queues.refusal(client)
        if busy is not None:
            return _fail("busy", f"bus {self.name}: {busy}")
        return code, data

    # -- the worker --------------------------------------------------------------------------

    async def _run(self) -> None:
        sched = self.scheduler
        turns = 0
        while True:
            start = time.monotonic()
            source = sched.pick(start, self.queues.waiting)
            if source is None:
                self._wakeup.clear()
                if self.queues:
                    continue
                nxt = sched.next_time()
                delay = None if nxt is None else max(0.0, nxt - start)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                continue
            if source == POLL:
                job = sched.due(start)
                assert job is not None
                await self._poll(job)
                sched.done(job, time.monotonic())
            else:
                await self._request(self.queues.take(source))
            end = time.monotonic()
            sched.charge(source, end - start, end)
            turns += 1
            if turns % 256 == 0:
                sched.prune(end, self.queues.waiting)

    async def _request(self, pending: _Pending) -> None:
        self._inflight = pending
        try:
            result = await self._transact(pending)
        finally:
            self._inflight = None
            self.queues.finished(pending.client)
            self._idle_changed.set()
        if not pending.future.done():
            pending.future.set_result(result)

    async def _transact(self, pending: _Pending) -> dict[str, Any]:
        req = pending.request
        t0 = time.perf_counter()
        self.core.awaiting = req.addr
        try:
            frame = await self.master.request(
                req.addr, pending.code, pending.data, timeout=req.timeout_s
            )
        except Timeout:
            self.book.count_error(req.addr, "timeouts")
            return _fail("timeout", f"no reply from addr {req.addr}")
        except DeviceError as exc:
            self.book.count_error(req.addr, "device_errors")
            self._publish(self.core.answered(req.addr, self.clock()))
            return _fail("device_error", str(exc), device_code=exc.code)
        except (LinkDown, MasterClosed) as exc:
            return _fail("bus_down", str(exc) or f"bus {self.name} is down")
        except FramesError as exc:
            return _fail("bad_request", str(exc))
        finally:
            self.core.awaiting = None
        rtt = (time.perf_counter() - t0) * 1000
        self._publish(self.core.answered(req.addr, self.clock()))
        return self.core.reply(frame, pending.data, rtt)

    async def _poll(self, job: PollJob) -> None:
        t0 = time.perf_counter()
        self.core.awaiting = job.addr
        try:
            await self.master.request(job.addr, job.cmd, job.data)
        except Timeout:
            self._polls["timeout"].inc()
            self._publish(self.core.poll_missed(job.addr, self.clock()))
            return
        except DeviceError:
            self.book.count_error(job.addr, "device_errors")
            self._polls["device_error"].inc()
        except (LinkDown, MasterClosed):
            self._polls["bus_down"].inc()
            return
        except FramesError as exc:
            log.warning("event=poll_error bus=%s addr=%s error=%s", self.name, job.addr, exc)
            return
        else:
            self._polls["ok"].inc()
        finally:
            self.core.awaiting = None
        self._poll_latency.observe(time.perf_counter() - t0)
        self._publish(self.core.answered(job.addr, self.clock()))
        if self.book.needs_identity(job.addr):
            await self._identify(job.addr)

    async def _identify(self, addr: int) -> None:
        """Ask a device that just came online who it is, once, so ``state`` can show it.

        The reply reaches the book through the traffic callback like any other frame. A device
        that refuses or ignores IDENTIFY gets an empty identity: it is asked again only the next
        time it comes online, never on every poll.
        """
        self.core.awaiting = addr
        try:
            await self.master.request(addr, self.core.identify_code)
        except (LinkDown, MasterClosed):
            return  # the bus, not the device: ask again after the next good poll
        except FramesError as exc:
            log.info("event=identify_failed bus=%s addr=%s error=%s", self.name, addr, exc)
            self.book.identified(addr, {})
        finally:
            self.core.awaiting = None

    # -- traffic → messages ------------------------------------------------------------------

    def _on_traffic(self, ev: TrafficEvent) -> None:
        try:
            if self.recorder is not None:
                self.recorder.traffic(ev)
            if isinstance(ev, CrcErrorSeen):
                self._crc_errors.inc(ev.count)
            was_up = self.core.up
            self._publish(self.core.traffic(ev, self.clock()))
            if isinstance(ev, LinkStateChanged) and self.core.up != was_up:
                self._link_changed(ev)
            self._arm_ticker()
        except Exception:  # monitoring must never break the bus
            log.exception("event=traffic_error bus=%s", self.name)

    def _link_changed(self, ev: LinkStateChanged) -> None:
        self.down_reason = self.core.down_reason
        self.metrics.bus_up.labels(self.name).set(1 if ev.up else 0)
        if ev.up:
            log.info("event=bus_up bus=%s", self.name)
        else:
            log.warning("event=bus_down bus=%s reason=%r", self.name, ev.reason)

    def _arm_ticker(self) -> None:
        """Publish coalesced noise counts when their interval ends, even if the line then goes
        quiet (the core has no timer of its own)."""
        deadline = self.core.next_deadline()
        if deadline is None or self._ticker is not None:
            return
        loop = asyncio.get_running_loop()
        self._ticker = loop.call_later(max(0.0, deadline - self.clock()), self._tick)

    def _tick(self) -> None:
        self._ticker = None
        self._publish(self.core.tick(self.clock()))
        self._arm_ticker()

    def _publish(self, messages: list[Message]) -> None:
        for msg in messages:
            if msg["type"] == "event" and msg["event"] not in _LINK_EVENTS:
                level = logging.DEBUG if msg["event"] in _QUIET_EVENTS else logging.INFO
                log.log(level, "event=%s bus=%s addr=%s", msg["event"], self.name, msg.get("addr"))
            self.hub.publish(self.name, msg, self.clock())

    def snapshot(self) -> dict[str, Any]:
        return self.book.snapshot()
