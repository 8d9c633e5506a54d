"""``framebridge sim --c-device ADDR``: the C firmware answers on the simulated bus, beside the
Python devices, through one pty."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from frames.io import Master

from .conftest import read_line

pytestmark = pytest.mark.timeout(30)


def sim(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def test_c_device_beside_python_devices(firmware: Path) -> None:
    proc = sim("--devices", "2", "--c-device", "9")
    try:
        path, _, _, addrs = read_line(proc, timeout=10).split("\t")
        assert addrs == "addresses=1,2,9"
        with Master(path, timeout=0.5, retries=1, reconnect=False) as m:
            assert m.identify(1)["model"] == "THERMO-1"
            assert m.identify(9)["model"] == "THERMO-1-C"
            assert m.identify(2)["uid"] == 0x54480002
            m.write_register(9, 2, 2345)
            assert m.read_registers(9, 2, 1) == [2345]
            assert m.echo(9, b"c") == b"c" and m.echo(1, b"py") == b"py"
            assert m.stats.unexpected == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def test_c_device_address_must_be_free(firmware: Path) -> None:
    proc = sim("--devices", "2", "--c-device", "2")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and b"address [2] is taken" in err
