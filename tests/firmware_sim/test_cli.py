"""``framebridge sim`` as a user runs it: a real subprocess, real ports, SIGTERM, exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from frames.codec import encode
from frames.stream import StreamDecoder

pytestmark = pytest.mark.timeout(30)


@contextmanager
def sim(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[list[str]]]]:
    """Start ``framebridge sim``; yield it and its announced lines (tab-separated fields)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # bounded by the test timeout
        assert first, proc.stderr.read() if proc.stderr else "no output"
        lines = [first.rstrip("\n").split("\t")]
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def read_frames(port: serial.Serial, n: int) -> list[tuple[int, int, bytes]]:
    dec = StreamDecoder()
    out: list[tuple[int, int, bytes]] = []
    while len(out) < n:
        chunk = port.read(1)
        assert chunk, "no reply within the port timeout"
        out += dec.feed(chunk + port.read(port.in_waiting))
    return out


def test_sim_pty_with_link_then_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "ttySIM0"
    with sim("--devices", "3", "--profile", "thermo", "--link", str(link)) as (proc, lines):
        url, name, pty, addrs = lines[0]
        assert url == str(link) and os.readlink(link) == pty and name == "thermo"
        assert addrs == "addresses=1,2,3"
        port = serial.serial_for_url(url, timeout=5)
        try:
            for addr in (1, 2, 3):
                port.write(encode(addr, 0x02, bytes([addr])))
            assert read_frames(port, 3) == [(a, 0x02, bytes([a])) for a in (1, 2, 3)]
        finally:
            port.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        stats = proc.stderr.read()
        assert '"frames_in": 3' in stats
    assert not link.is_symlink()


def test_sim_tcp_sigint() -> None:
    with sim("--tcp", "127.0.0.1:0", "--devices", "2", "--profile", "power_meter") as (proc, lines):
        url = lines[0][0]
        assert url.startswith("socket://127.0.0.1:")
        port = serial.serial_for_url(url, timeout=5)
        try:
            port.write(encode(2, 0x01))
            ((addr, cmd, data),) = read_frames(port, 1)
            assert (addr, cmd) == (2, 0x01) and b"PM-230" in data
        finally:
            port.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_sim_config_with_several_buses(tmp_path: Path) -> None:
    cfg = tmp_path / "buses.toml"
    cfg.write_text(
        f'[[bus]]\nname = "a"\nlink = "{tmp_path}/ttyA"\ndevices = 2\n'
        '[[bus]]\nname = "b"\ntcp = "127.0.0.1:0"\n'
        '[[bus.device]]\naddress = 7\nprofile = "io_board"\n'
    )
    with sim("--config", str(cfg)) as (proc, lines):
        assert proc.stdout is not None
        lines.append(proc.stdout.readline().rstrip("\n").split("\t"))
        (url_a, name_a, _, addrs_a), (url_b, name_b, pty_b, addrs_b) = lines
        assert (name_a, addrs_a, url_a) == ("a", "addresses=1,2", f"{tmp_path}/ttyA")
        assert (name_b, addrs_b, pty_b) == ("b", "addresses=7", "-")
        for url, addr in ((url_a, 2), (url_b, 7)):
            port = serial.serial_for_url(url, timeout=5)
            try:
                port.write(encode(addr, 0x02, b"hi"))
                assert read_frames(port, 1) == [(addr, 0x02, b"hi")]
            finally:
                port.close()
        proc.terminate()
        assert proc.wait(10) == 0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "sim", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_profile_is_a_clear_error() -> None:
    res = run("--profile", "nope")
    assert res.returncode == 2 and "no such profile" in res.stderr and "thermo" in res.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[[bus]]\ndevices = 0\n")
    res = run("--config", str(cfg))
    assert res.returncode == 2 and "bus[0].devices" in res.stderr


def test_list_and_show_profiles() -> None:
    res = run("--list-profiles")
    assert res.returncode == 0
    assert {line.split("\t")[0] for line in res.stdout.splitlines()} >= {
        "thermo",
        "power_meter",
        "io_board",
    }
    shown = json.loads(run("--show-profile", "thermo").stdout)
    assert shown["model"] == "THERMO-1" and shown["registers"][0]["unit"] == "°C"


def test_python_dash_m_firmware_sim() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "firmware_sim", "--list-profiles"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0 and "thermo" in res.stdout
