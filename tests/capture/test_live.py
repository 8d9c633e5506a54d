"""Real ptys: a faulty simulated bus captured through the tap, and captures replayed into the
simulator's place (a pty answering as recorded) and into the bridge (a live bus for clients)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
import tty
from collections.abc import Iterator
from pathlib import Path

from bridge.app import Bridge
from bridge.client import BridgeClient
from bridge.config import BridgeConfig, BusConfig, HistoryConfig, ServerConfig
from bridge.replay import ReplayMaster
from firmware_sim.bus import SimulatedBus
from firmware_sim.faults import FaultConfig
from firmware_sim.tap import PtyTap
from frames.capture import Record
from frames.commands import READ_REGS
from frames.errors import DeviceError, Timeout
from frames.events import FrameReceived, FrameSent, TrafficEvent
from frames.format import DEFAULT_FORMAT
from frames.frame import Frame
from frames.io.capture import CaptureWriter, read_capture
from frames.io.capture_cli import CaptureMonitor
from frames.io.replay_pty import ReplayPty
from frames.io.serial_async import AsyncMaster
from frames.replay import ReplayBook

from ..bridge.conftest import make_limits
from .helpers import GOOD, records_of

WAIT = 5.0


@contextlib.contextmanager
def sniffer(
    path: Path, mon: CaptureMonitor, enough: asyncio.Event, want: list[int]
) -> Iterator[None]:
    """Read the tap like ``monitor`` does; set ``enough`` once ``want[0]`` frames were seen."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            mon.feed(os.read(fd, 4096), time.time())
        if want[0] and mon.frames >= want[0]:
            enough.set()

    loop.add_reader(fd, readable)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_a_faulty_bus_captured_through_the_tap_reads_back_frame_for_frame(
    tmp_path: Path,
) -> None:
    faults = FaultConfig(corrupt_byte=0.25, garbage=0.25, drop_reply=0.1)
    events: list[TrafficEvent] = []
    cap = tmp_path / "bus.pcapng"
    mon = CaptureMonitor(DEFAULT_FORMAT, io.StringIO(), as_json=True, write=str(cap))
    enough, want = asyncio.Event(), [0]
    async with SimulatedBus(2, "thermo", link=tmp_path / "sim", faults=faults, seed=11) as bus:
        tap = PtyTap(bus, tmp_path / "tap").open()
        with sniffer(tmp_path / "tap", mon, enough, want):
            master = AsyncMaster(bus.url, timeout=0.1, retries=1, on_traffic=events.append)
            await master.open()
            for i in range(40):
                data = READ_REGS.encode_request({"start": 0, "count": 2})
                with contextlib.suppress(Timeout, DeviceError):
                    await master.request(1 + i % 2, 3, data)
            await master.close()
            sent = [e.frame for e in events if isinstance(e, (FrameSent, FrameReceived))]
            want[0] = len(sent)
            if mon.frames < want[0]:
                await asyncio.wait_for(enough.wait(), WAIT)
            mon.idle(time.time())
            mon.close()
        tap.close()
        assert tap.bytes > 0 and bus.counters.as_dict()
    recs = list(read_capture(cap))
    assert [r.frame for r in recs if r.ok] == sent  # the master's own view, frame for frame
    statuses = {r.status for r in recs}
    assert {"crc_error", "garbage"} <= statuses, statuses
    assert all(r.ts > 0 for r in recs)


def conversation() -> list[Record]:
    req1, rep1 = Frame(1, 3, b"\x00\x00\x02"), Frame(1, 3, b"\x02\xd2\x08\x8e\x01")
    req2, rep2 = Frame(2, 6, b"\x02\x00\xfc\x08"), Frame(2, 6, b"\x02\x00\xfc\x08")
    return records_of([req1, rep1, req2, rep2, req1, Frame(1, 3, b"\x02\xd3\x08\x8e\x01")])


async def test_replay_pty_answers_recorded_requests_with_recorded_replies(tmp_path: Path) -> None:
    recs = conversation()
    pty = ReplayPty(ReplayBook(recs), DEFAULT_FORMAT, speed=0, link=str(tmp_path / "rp"))
    await pty.start()
    try:
        master = AsyncMaster(str(tmp_path / "rp"), timeout=0.5, retries=0)
        await master.open()
        got = [await master.request(r.frame.addr, r.frame.cmd, r.frame.data) for r in recs[::2]]  # type: ignore[union-attr]
        await master.close()
    finally:
        await pty.close()
    assert got == [r.frame for r in recs[1::2]]
    assert (pty.answered, pty.unknown) == (3, 0)


async def test_replay_into_the_bridge_gives_clients_the_frames_in_order(tmp_path: Path) -> None:
    recs = records_of(GOOD * 5)
    cap = tmp_path / "session.pcapng"
    with CaptureWriter.open(cap) as w:
        for r in recs:
            w.write(r)
    config = BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node="replay"),
        limits=make_limits(),
        history=HistoryConfig(size=4096),
        buses=(BusConfig("bus0", f"replay://{cap}?speed=0"),),
    )
    async with Bridge(config) as bridge:
        master = bridge.buses["bus0"].master
        await asyncio.wait_for(master.finished.wait(), WAIT)  # type: ignore[union-attr]
        pos = bridge.hub.position("bus0")
        async with BridgeClient(bridge.ws_url) as client:
            client.tracker.positions.clear()  # it took the welcome's seq as seen: we want the history
            await client.subscribe(["bus0/*"], since={"bus0": {"epoch": pos.epoch, "seq": 0}})
            frames: list[dict[str, object]] = []
            while len(frames) < len(recs):
                msg = await client.recv(WAIT)
                if msg["type"] == "frame":
                    frames.append(msg)
            answer = await client.request("bus0", 1, "read_regs", args={"start": 0, "count": 1})
    want = [(r.frame.addr, r.frame.cmd, r.frame.data.hex(), r.direction) for r in recs]  # type: ignore[union-attr]
    assert [(m["addr"], m["cmd"], m["data"], m["dir"]) for m in frames] == want
    assert answer["ok"] is False and answer["error"]["code"] == "bad_request"


async def test_replay_speed_scales_the_recorded_pace(tmp_path: Path) -> None:
    recs = [Record(100.0 + i * 0.05, r.wire, r.status, r.direction, r.frame)
            for i, r in enumerate(records_of(GOOD))]  # fmt: skip
    cap = tmp_path / "paced.pcapng"
    with CaptureWriter.open(cap) as w:
        for r in recs:
            w.write(r)
    loop = asyncio.get_running_loop()
    took = {}
    for speed in ("5", "max"):
        events: list[TrafficEvent] = []
        master = ReplayMaster(f"replay://{cap}?speed={speed}", on_traffic=events.append)
        t0 = loop.time()
        await master.open()
        await asyncio.wait_for(master.finished.wait(), WAIT)
        took[speed] = loop.time() - t0
        await master.close()
        assert [e.frame for e in events if isinstance(e, (FrameSent, FrameReceived))] == GOOD
    recorded = recs[-1].ts - recs[0].ts  # 0.55 s
    assert took["5"] >= recorded / 5 * 0.9
    assert took["max"] < recorded / 5
