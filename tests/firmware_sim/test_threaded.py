"""ThreadedSimulatedBus: the same bus for blocking code."""

from __future__ import annotations

import pytest
import serial

from firmware_sim.errors import ProfileError
from firmware_sim.threaded import ThreadedSimulatedBus
from frames.codec import encode
from frames.stream import StreamDecoder

pytestmark = pytest.mark.timeout(20)


def read_frame(port: serial.Serial) -> list[object]:
    dec = StreamDecoder()
    frames: list[object] = []
    while not frames:
        chunk = port.read(1)  # blocks up to the port timeout for the first byte
        assert chunk, "no reply within the port timeout"
        chunk += port.read(port.in_waiting)
        frames += dec.feed(chunk)
    return frames


def test_blocking_pyserial_against_threaded_bus() -> None:
    with ThreadedSimulatedBus(count=2, profile="io_board") as sim:
        port = serial.serial_for_url(sim.url, timeout=3)
        try:
            port.write(encode(2, 0x06, bytes([1, 0, 0x0F, 0])))
            (reply,) = read_frame(port)
            assert reply == (2, 0x06, bytes([1, 0, 0x0F, 0]))
            assert sim.call(lambda: sim.devices[2].get("outputs")) == 0x0F
            assert sim.counters.replies_out == 1
        finally:
            port.close()


def test_threaded_unplug_replug(tmp_path: object) -> None:
    link = f"{tmp_path}/ttyT"
    with ThreadedSimulatedBus(count=1, link=link) as sim:
        sim.unplug()
        assert not sim.bus.plugged
        sim.replug()
        port = serial.serial_for_url(sim.url, timeout=3)
        try:
            port.write(encode(1, 0x02, b"hi"))
            assert read_frame(port) == [(1, 0x02, b"hi")]
        finally:
            port.close()


def test_start_errors_propagate() -> None:
    with pytest.raises(ProfileError), ThreadedSimulatedBus(profile="nope"):
        pass
