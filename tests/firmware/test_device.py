"""The C slave (firmware/build/fb-device) on real ptys against the Python master.

fb-device runs the library's own receive path (fb_slave_rx per byte, fb_slave_tick per quiet
millisecond); the Python side is frames.io.Master / AsyncMaster, or raw bytes on a pty for the
corrupted and split frames a master would never send.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from frames import DeviceError, Frame, encode
from frames.commands import ErrorCode
from frames.io import AsyncMaster, Master

from .conftest import RawPty, run_device
from .vectors import frame_format

pytestmark = pytest.mark.timeout(30)

FAST: dict[str, Any] = {"timeout": 0.5, "retries": 1, "turnaround": 0.01, "reconnect": False}


def test_master_runs_every_standard_command(firmware: Path) -> None:
    with run_device(firmware, "--pty", "1", "2", "7") as dev:
        _every_command(Master(dev.path, **FAST))
        code, err_text = dev.stop()
    assert code == 0 and "fb-device 1: requests=" in err_text


def _every_command(m: Master) -> None:
    with m:
        for addr in (1, 2, 7):
            info = m.identify(addr)
            assert info["model"] == "THERMO-1-C" and info["firmware"] == [0, 1, 0]
            assert info["uid"] == 0x54480000 + addr and info["register_count"] == 6
            assert m.echo(addr, b"ping") == b"ping"
        assert m.echo(1, bytes(range(255))) == bytes(range(255))  # the longest payload
        assert m.read_registers(1, 0, 4) == [2150, 450, 2200, 0]
        m.write_register(1, 2, 2500)
        m.write_registers(1, 2, [600, 1])
        assert m.read_registers(1, 2, 2) == [600, 1]
        assert m.read_registers(2, 2, 1) == [2200]  # another address, its own registers
        with pytest.raises(DeviceError) as err:
            m.read_registers(1, 5, 2)  # past the map
        assert err.value.code == ErrorCode.ILLEGAL_REGISTER
        with pytest.raises(DeviceError) as err:
            m.write_register(1, 0, 1)  # read-only
        assert err.value.code == ErrorCode.ILLEGAL_REGISTER
        with pytest.raises(DeviceError) as err:
            m.write_register(1, 2, 3501)  # above max (35.00 °C)
        assert err.value.code == ErrorCode.ILLEGAL_VALUE
        with pytest.raises(DeviceError) as err:
            m.write_registers(1, 2, [2000, 2])  # heater 2 > max 1: nothing written
        assert err.value.code == ErrorCode.ILLEGAL_VALUE
        assert m.read_registers(1, 2, 2) == [600, 1]
        with pytest.raises(DeviceError) as err:
            m.request(1, 0x42, b"?")
        assert err.value.code == ErrorCode.ILLEGAL_COMMAND
        assert m.request(0, "write_reg", b"\x03\x00\x00\x00") == Frame(0, 6)  # broadcast
        assert [m.read_registers(a, 3, 1) for a in (1, 2, 7)] == [[0], [0], [0]]
        assert m.stats.unexpected == 0


async def test_async_master(firmware: Path) -> None:
    with run_device(firmware, "--pty", "3") as dev:
        async with AsyncMaster(dev.path, **FAST) as m:
            assert (await m.identify(3))["model"] == "THERMO-1-C"
            for i in range(50):
                assert await m.echo(3, bytes([i]) * (i % 7)) == bytes([i]) * (i % 7)
            await m.write_register(3, 3, 1)
            assert await m.read_registers(3, 3, 1) == [1]


def test_corrupted_split_and_noisy_requests(firmware: Path, raw_pty: RawPty) -> None:
    """Raw bytes on a pty fb-device opens as its serial device (the TTY argument)."""
    with run_device(firmware, "--gap-ms", "20", raw_pty.path, "4") as dev:
        ping = encode(4, 2, b"ping")
        bad = bytearray(encode(4, 2, b"lost"))
        bad[5] ^= 0x01
        raw_pty.write(bytes(bad) + ping)  # a corrupted request costs itself only
        assert raw_pty.read_frames(2, timeout=1.0) == [Frame(4, 2, b"ping")]
        for i in range(len(ping)):  # one byte per write
            raw_pty.write(ping[i : i + 1])
        assert raw_pty.read_frames(1) == [Frame(4, 2, b"ping")]
        raw_pty.write(b"\x00\xaa\x04\x02\xf0" + ping)  # stray start, bogus length: lookahead
        assert raw_pty.read_frames(1) == [Frame(4, 2, b"ping")]
        raw_pty.write(ping[:5])  # a partial request; the 20 ms gap drops it
        assert raw_pty.read_frames(1, timeout=0.3) == []
        raw_pty.write(encode(4, 3, b"\x02\x00\x01"))
        assert raw_pty.read_frames(1) == [Frame(4, 3, b"\x01\x98\x08")]  # 2200
        raw_pty.write(encode(5, 2, b"x") + encode(4, 0x82, b"\x01"))  # not for it / error frame
        assert raw_pty.read_frames(1, timeout=0.3) == []
        assert dev.stop()[0] == 0


def test_tagged_device_echoes_the_masters_tags(firmware: Path) -> None:
    """The transaction-tag variant end to end: fb-device built with FB_TAGGED=1."""
    fmt = frame_format({"tagged": True})
    with run_device(firmware, "--pty", "5", program="fb-device-tagged") as dev:
        with Master(dev.path, fmt=fmt, **FAST) as m:
            for i in range(300):  # past 255: the tag wraps
                assert m.echo(5, bytes([i & 0xFF])) == bytes([i & 0xFF])
            assert m.read_registers(5, 2, 1) == [2200]
            assert m.stats.unexpected == 0
        assert dev.stop()[0] == 0


def test_tagged_builds_talk_to_each_other(firmware: Path) -> None:
    """fb-master and fb-device built with FB_TAGGED=1, on a pty: replies echo each tag."""
    with run_device(firmware, "--pty", "5", program="fb-device-tagged") as dev:
        done = subprocess.run(
            [str(firmware / "fb-master-tagged"), dev.path],
            input=b"5 2 6869 77\n5 3 020001 255\n5 3 090001 0\n",
            capture_output=True,
            timeout=10,
            check=True,
        )
        assert dev.stop()[0] == 0
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"addr": 5, "cmd": 2, "tag": 77, "data": "6869"},
        {"addr": 5, "cmd": 3, "tag": 255, "data": "019808"},
        {"addr": 5, "cmd": 0x83, "tag": 0, "data": "02"},
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--pty", "0"], 2, "bad address 0"),
        (["--pty", "248"], 2, "bad address 248"),
        (["--pty"], 2, "usage"),
        (["/nonexistent/tty", "1"], 1, "cannot open /nonexistent/tty"),
    ],
)
def test_bad_arguments_exit_with_a_message(
    firmware: Path, args: list[str], code: int, message: str
) -> None:
    done = subprocess.run(
        [str(firmware / "fb-device"), *args], capture_output=True, timeout=10, check=False
    )
    assert done.returncode == code and message in done.stderr.decode()
