"""SimulatedBus on a real pty, talked to with pyserial-asyncio."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest
import serial

from firmware_sim.bus import SimulatedBus
from firmware_sim.device import SimulatedDevice
from firmware_sim.errors import BusError, ConfigError
from frames.commands import STANDARD
from frames.frame import Frame

from .helpers import Host

pytestmark = pytest.mark.timeout(20)


async def test_every_standard_command() -> None:
    async with SimulatedBus(count=3, profile="thermo") as bus:
        assert bus.url == bus.path and bus.url.startswith("/dev/")
        host = await Host.open(bus.url)
        ident = await host.request(2, 0x01)
        assert STANDARD.get("identify").decode_response(ident.data)["uid"] == 0x54480002
        assert await host.request(3, 0x02, b"\xaa\x00\x0d\x0a\x11\x13") == Frame(
            3,
            0x02,
            b"\xaa\x00\x0d\x0a\x11\x13",  # raw mode: no byte is translated
        )
        assert await host.request(1, 0x06, struct.pack("<HH", 2, 1900)) == Frame(
            1, 0x06, struct.pack("<HH", 2, 1900)
        )
        assert await host.request(1, 0x10, struct.pack("<HB2H", 2, 2, 2000, 1)) == Frame(
            1, 0x10, struct.pack("<HB", 2, 2)
        )
        reply = await host.request(1, 0x03, struct.pack("<HB", 2, 2))
        assert STANDARD.get("read_regs").decode_response(reply.data)["values"] == [2000, 1]
        assert bus.devices[1].get("setpoint") == 20.0
        await host.close()


async def test_error_replies() -> None:
    async with SimulatedBus(count=1) as bus:
        host = await Host.open(bus.url)
        assert await host.request(1, 0x55) == Frame(1, 0xD5, b"\x01")
        assert await host.request(1, 0x06, struct.pack("<HH", 0, 5)) == Frame(1, 0x86, b"\x02")
        assert await host.request(1, 0x06, struct.pack("<HH", 2, 9000)) == Frame(1, 0x86, b"\x03")
        assert await host.request(1, 0x03, struct.pack("<HB", 0, 0)) == Frame(1, 0x83, b"\x03")
        assert bus.devices[1].counters.error_replies == 4
        await host.close()


async def test_broadcast_and_address_filtering() -> None:
    async with SimulatedBus(count=3) as bus:
        host = await Host.open(bus.url)
        host.send(0, 0x06, struct.pack("<HH", 3, 1))  # broadcast: nobody answers
        host.send(7, 0x01)  # nobody has address 7
        # The next reply is the echo: nothing was sent before it.
        assert await host.request(2, 0x02, b"after") == Frame(2, 0x02, b"after")
        assert [d.get("heater") for d in bus.devices.values()] == [1, 1, 1]
        assert bus.counters.unaddressed == 1 and bus.counters.frames_in == 3
        await host.close()


async def test_explicit_devices_and_live_data() -> None:
    devices = [SimulatedDevice(4, "power_meter"), SimulatedDevice(9, "io_board")]
    async with SimulatedBus(devices=devices) as bus:
        assert sorted(bus.devices) == [4, 9]
        host = await Host.open(bus.url)
        reply = await host.request(9, 0x03, struct.pack("<HB", 0, 7))
        values = STANDARD.get("read_regs").decode_response(reply.data)["values"]
        named = devices[1].profile.decode(0, values)
        assert named["inputs"] == 5 and 1.5 <= named["analog_in_0"] <= 3.5
        await host.close()


async def test_host_reopens_the_port() -> None:
    async with SimulatedBus(count=1) as bus:
        for _ in range(3):
            host = await Host.open(bus.url)
            assert await host.request(1, 0x02, b"x") == Frame(1, 0x02, b"x")
            await host.close()
        # Also a plain blocking pyserial session.
        port = serial.serial_for_url(bus.url, timeout=3)
        try:
            from frames.codec import encode

            port.write(encode(1, 0x02, b"sync"))
            data = await asyncio.to_thread(port.read, len(encode(1, 0x02, b"sync")))
            assert data == encode(1, 0x02, b"sync")
        finally:
            port.close()


async def test_link_unplug_replug(tmp_path: Path) -> None:
    link = tmp_path / "ttySIM0"
    async with SimulatedBus(count=2, link=link) as bus:
        assert bus.url == str(link) and os.readlink(link) == bus.path
        host = await Host.open(bus.url)
        assert (await host.request(1, 0x01)).addr == 1
        await bus.unplug()
        assert not link.exists() and not link.is_symlink() and not bus.plugged
        with pytest.raises((ConnectionError, serial.SerialException, OSError)):
            await host.frame(timeout=3)  # the host's read fails, like a pulled USB adapter
        await host.close()
        await bus.replug()
        assert os.readlink(link) == bus.path
        host = await Host.open(bus.url)
        assert (await host.request(2, 0x02, b"back")).data == b"back"
        await host.close()
    assert not link.is_symlink()  # close removes the link


async def test_link_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    link = tmp_path / "precious"
    link.write_text("keep me")
    with pytest.raises(BusError, match="not a symlink"):
        async with SimulatedBus(link=link):
            pass
    assert link.read_text() == "keep me"


async def test_link_replaces_a_stale_symlink(tmp_path: Path) -> None:
    link = tmp_path / "ttySIM1"
    link.symlink_to("/dev/does-not-exist")
    async with SimulatedBus(link=link) as bus:
        assert os.readlink(link) == bus.path


async def test_close_is_idempotent_and_bad_arguments() -> None:
    bus = SimulatedBus()
    await bus.start()
    await bus.close()
    await bus.close()
    with pytest.raises(BusError):
        await bus.unplug()
    with pytest.raises(ConfigError):
        SimulatedBus(count=0)
    with pytest.raises(ConfigError):
        SimulatedBus(link="/tmp/x", tcp="127.0.0.1:0")
