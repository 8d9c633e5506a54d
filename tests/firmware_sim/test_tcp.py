"""TCP mode: socket:// URLs, several connections each with their own view of the bus."""

from __future__ import annotations

import asyncio

import pytest
import serial

from firmware_sim.bus import SimulatedBus, parse_tcp
from firmware_sim.errors import BusError, ConfigError
from frames.codec import encode
from frames.frame import Frame

from .helpers import Host

pytestmark = pytest.mark.timeout(20)


async def test_socket_url_and_multiple_connections() -> None:
    async with SimulatedBus(count=2, tcp="127.0.0.1:0") as bus:
        assert bus.url.startswith("socket://127.0.0.1:") and bus.path is None
        a, b = await Host.open(bus.url), await Host.open(bus.url)
        frame = encode(1, 0x02, b"from-a")
        a.send_raw(frame[:5])  # half a frame on connection a...
        assert await b.request(2, 0x02, b"from-b") == Frame(2, 0x02, b"from-b")  # ...b unaffected
        a.send_raw(frame[5:])
        assert await a.frame() == Frame(1, 0x02, b"from-a")
        b.send(0, 0x06, bytes([3, 0, 1, 0]))  # a broadcast on one connection reaches all devices
        assert (await a.request(1, 0x02, b"sync")).data == b"sync"
        assert [d.get("heater") for d in bus.devices.values()] == [1, 1]
        await a.close()
        await b.close()


async def test_blocking_pyserial_socket_url() -> None:
    async with SimulatedBus(count=1, tcp=("127.0.0.1", 0)) as bus:
        port = serial.serial_for_url(bus.url, timeout=3)
        try:
            port.write(encode(1, 0x02, b"sync"))
            assert await asyncio.to_thread(port.read, 10) == encode(1, 0x02, b"sync")
        finally:
            port.close()


async def test_unplug_disconnects_and_replug_keeps_the_port() -> None:
    async with SimulatedBus(count=1, tcp="127.0.0.1:0") as bus:
        url = bus.url
        host = await Host.open(url)
        assert (await host.request(1, 0x01)).addr == 1
        await bus.unplug()
        with pytest.raises((ConnectionError, serial.SerialException)):
            await host.frame()
        with pytest.raises(OSError):
            await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1])), 3
            )
        await bus.replug()
        assert bus.url == url
        host = await Host.open(url)
        assert (await host.request(1, 0x02, b"again")).data == b"again"
        await host.close()


async def test_port_in_use_is_a_bus_error() -> None:
    async with SimulatedBus(tcp="127.0.0.1:0") as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(BusError, match="cannot listen"):
            async with SimulatedBus(tcp=("127.0.0.1", port)):
                pass


def test_parse_tcp() -> None:
    assert parse_tcp("127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert parse_tcp(":7000") == ("127.0.0.1", 7000)
    for bad in ("7000", "host:x", "h:70000"):
        with pytest.raises(ConfigError):
            parse_tcp(bad)
