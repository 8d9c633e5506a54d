"""Each fault kind, carried out by the bus on a real pty."""

from __future__ import annotations

import time

import pytest

from firmware_sim.bus import SimulatedBus
from firmware_sim.device import SimulatedDevice
from firmware_sim.faults import FaultConfig, OfflineWindow
from frames.frame import Frame

from .helpers import Host

pytestmark = pytest.mark.timeout(20)


async def test_drop_reply_still_acts() -> None:
    async with SimulatedBus(count=2) as bus:
        bus.devices[1].faults = FaultConfig(drop_reply=1)
        host = await Host.open(bus.url)
        host.send(1, 0x06, bytes([3, 0, 1, 0]))  # the write happens, the reply is lost
        assert await host.request(2, 0x02, b"next") == Frame(2, 0x02, b"next")
        assert bus.devices[1].get("heater") == 1
        assert bus.devices[1].counters.faults["drop_reply"] == 1
        assert bus.counters.faults["drop_reply"] == 1
        await host.close()


async def test_corrupt_byte_is_a_crc_error_for_the_host() -> None:
    async with SimulatedBus(count=2) as bus:
        bus.devices[1].faults = FaultConfig(corrupt_byte=1)
        host = await Host.open(bus.url)
        host.send(1, 0x02, b"hello")
        assert await host.request(2, 0x02, b"ok") == Frame(2, 0x02, b"ok")
        assert b"".join(host.chunks)  # the corrupt reply did arrive
        assert host.decoder.stats.crc_errors + host.decoder.stats.discarded_bytes >= 1
        assert bus.counters.faults["corrupt_byte"] == 1
        await host.close()


async def test_garbage_before_reply_is_recovered() -> None:
    async with SimulatedBus(count=1, faults=FaultConfig(garbage=1, garbage_max=20), seed=3) as bus:
        host = await Host.open(bus.url)
        for i in range(5):
            assert await host.request(1, 0x02, bytes([i])) == Frame(1, 0x02, bytes([i]))
        assert host.decoder.stats.discarded_bytes >= 5
        assert bus.counters.faults["garbage"] == 5
        await host.close()


async def test_split_writes_arrive_in_pieces() -> None:
    faults = FaultConfig(split_writes=1, split_gap=0.05)
    async with SimulatedBus(count=1, faults=faults) as bus:
        host = await Host.open(bus.url)
        assert await host.request(1, 0x02, b"0123456789") == Frame(1, 0x02, b"0123456789")
        assert len(host.chunks) >= 2  # 50 ms apart, the host saw separate reads
        assert bus.counters.faults["split_writes"] == 1
        await host.close()


async def test_delay_and_jitter() -> None:
    async with SimulatedBus(count=1, faults=FaultConfig(delay=0.15, jitter=0.05)) as bus:
        host = await Host.open(bus.url)
        t0 = time.monotonic()
        await host.request(1, 0x01)
        assert time.monotonic() - t0 >= 0.15  # never early; how late depends on the machine
        await host.close()


async def test_offline_window_and_manual_offline() -> None:
    dev = SimulatedDevice(1, "thermo", faults=FaultConfig(offline=(OfflineWindow(0, 3600),)))
    async with SimulatedBus(devices=[dev, SimulatedDevice(2, "thermo")]) as bus:
        host = await Host.open(bus.url)
        host.send(1, 0x01)
        assert (await host.request(2, 0x02, b"x")).addr == 2  # device 1 said nothing
        dev.faults = None
        bus.devices[2].go_offline()
        host.send(2, 0x01)
        assert (await host.request(1, 0x02, b"y")).addr == 1
        bus.devices[2].go_online()
        assert (await host.request(2, 0x02, b"z")).addr == 2
        assert dev.counters.ignored_offline == 1
        await host.close()


async def test_wire_time_pacing() -> None:
    # At 9600 baud the 6-byte request and 22-byte identify reply take 29 ms on a real line.
    async with SimulatedBus(count=1, baudrate=9600, pacing=True) as bus:
        host = await Host.open(bus.url)
        t0 = time.monotonic()
        reply = await host.request(1, 0x01)
        elapsed = time.monotonic() - t0
        wire = (6 + 6 + len(reply.data)) * 10 / 9600
        assert elapsed >= wire * 0.95  # never faster than the line; slower depends on the machine
        assert bus.counters.bytes_out == 6 + len(reply.data)
        await host.close()


async def test_queue_bound_drops_replies_not_the_bus() -> None:
    async with SimulatedBus(count=1, max_pending=2, faults=FaultConfig(delay=0.2)) as bus:
        host = await Host.open(bus.url)
        for i in range(6):
            host.send(1, 0x02, bytes([i]))
        # All six arrive in one read: two fit the queue, four are dropped and counted.
        got = [await host.frame() for _ in range(2)]
        assert [f.data for f in got] == [b"\x00", b"\x01"]
        assert bus.counters.overflows == 4
        bus.faults = FaultConfig()
        assert (await host.request(1, 0x02, b"ok")).data == b"ok"
        await host.close()
