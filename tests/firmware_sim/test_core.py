"""The pure bus: addressing, broadcast, per-view decoding, bus vs device faults, counters."""

from __future__ import annotations

import struct

import pytest

from firmware_sim.core import BusCore
from firmware_sim.device import SimulatedDevice
from firmware_sim.errors import ConfigError
from firmware_sim.faults import FaultConfig
from frames.codec import encode
from frames.frame import Frame
from frames.stream import StreamDecoder


def core(n: int = 3, **kw: object) -> BusCore:
    c = BusCore([SimulatedDevice(a, "thermo") for a in range(1, n + 1)], **kw)  # type: ignore[arg-type]
    c.start(0.0)
    return c


def test_only_the_addressed_device_answers() -> None:
    c = core()
    view = c.open_view()
    outs = view.receive_data(encode(2, 0x01), 1.0)
    assert [o.addr for o in outs] == [2]
    assert outs[0].frame.addr == 2 and outs[0].request_bytes == 6
    assert StreamDecoder().feed(outs[0].delivery.data) == [outs[0].frame]
    assert [d.counters.frames_in for d in c.devices.values()] == [0, 1, 0]


def test_unaddressed_and_broadcast() -> None:
    c = core()
    view = c.open_view()
    assert view.receive_data(encode(9, 0x01), 1.0) == []
    assert view.receive_data(encode(0, 0x06, struct.pack("<HH", 3, 1)), 1.0) == []
    assert [d.get("heater") for d in c.devices.values()] == [1, 1, 1]
    assert c.counters.unaddressed == 1 and c.counters.frames_in == 2


def test_bytes_one_at_a_time_and_noise() -> None:
    c = core()
    view = c.open_view()
    bad = bytearray(encode(1, 0x02, b"x"))
    bad[-1] ^= 0xFF
    stream = b"\x00\x13" + bytes(bad) + encode(1, 0x02, b"ok") + encode(3, 0x02, b"3")
    outs = []
    for b in stream:
        outs += view.receive_data(bytes([b]), 1.0)
    assert [(o.addr, o.frame.data) for o in outs] == [(1, b"ok"), (3, b"3")]
    assert c.counters.crc_errors == 1 and c.counters.bytes_in == len(stream)


def test_views_do_not_mix_partial_frames() -> None:
    c = core()
    a, b = c.open_view(), c.open_view()
    frame = encode(1, 0x02, b"abc")
    assert a.receive_data(frame[:4], 1.0) == []
    assert [o.frame for o in b.receive_data(frame, 1.0)] == [Frame(1, 0x02, b"abc")]
    assert [o.frame for o in a.receive_data(frame[4:], 1.0)] == [Frame(1, 0x02, b"abc")]


def test_idle_gives_up_a_partial_frame() -> None:
    c = core()
    view = c.open_view()
    view.receive_data(b"\xaa\x01\x02\x30", 1.0)  # a header claiming 48 bytes that never come
    assert view.decoder.pending
    assert view.idle(2.0) == []
    assert view.decoder.pending == 0
    assert [o.addr for o in view.receive_data(encode(1, 0x01), 2.0)] == [1]


def test_bus_faults_apply_unless_device_has_its_own() -> None:
    own = SimulatedDevice(2, "thermo", faults=FaultConfig())
    c = BusCore([SimulatedDevice(1, "thermo"), own], faults=FaultConfig(drop_reply=1))
    view = c.open_view()
    assert view.receive_data(encode(1, 0x01), 0.0) == []
    assert [o.addr for o in view.receive_data(encode(2, 0x01), 0.0)] == [2]
    assert c.devices[1].counters.faults["drop_reply"] == 1
    assert c.counters.faults_applied == 1 and c.counters.replies_out == 1
    c.faults = FaultConfig()
    assert [o.addr for o in view.receive_data(encode(1, 0x01), 0.0)] == [1]


def test_duplicate_addresses_rejected() -> None:
    with pytest.raises(ConfigError, match="two devices with address 1"):
        BusCore([SimulatedDevice(1), SimulatedDevice(1)])
