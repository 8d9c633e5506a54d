"""Processes and browser settings for the dashboard tests (``test_dashboard.py``).

The dashboard is tested end to end, as a user meets it: ``framebridge sim`` on a pty with a
stable symlink, ``framebridge bridge`` polling it, and Debian's Chromium driven by Playwright.
Each process runs in its own session so the tests can kill it (the bridge, to test reconnects)
or stop it (the simulator, so the pty vanishes) and start it again on the same port and path.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from frames.devicemap import DEVICE_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRAMEBRIDGE = [sys.executable, "-m", "bridge.cli"]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0

CONFIG = """\
[server]
listen = "127.0.0.1:{port}"
node = "dashboard-test"

[limits]
heartbeat_s = 5.0

[[bus]]
name = "bus0"
url = "{link}"
timeout_s = 0.15
reconnect_min_s = 0.05
reconnect_max_s = 0.3

[[bus.device]]
addr = 1
profile = "thermo"
name = "boiler-room"

[[bus.device]]
addr = 2
profile = "thermo"
name = "office"

[[bus.poll]]
cmd = "read_regs"
interval_s = 0.25

[[bus]]
name = "bus1"
url = "{link1}"
timeout_s = 0.15
reconnect_min_s = 0.05
reconnect_max_s = 0.3

[[bus.device]]
addr = 3
profile = "io_board"
name = "io"

[[bus.device]]
addr = 4
profile = "{meter}"
name = "meter"

[[bus.poll]]
cmd = "read_regs"
interval_s = 0.25
"""

# The simulator behind CONFIG: two thermostats on bus0; an I/O board (bitfield, enum, bool) and
# a power meter (u32, f32) on bus1.
SIM_CONFIG = """\
seed = 1

[[bus]]
name = "bus0"
link = "{link}"
profile = "thermo"
devices = 2

[[bus]]
name = "bus1"
link = "{link1}"

[[bus.device]]
address = 3
profile = "io_board"

[[bus.device]]
address = 4
profile = "{meter}"
"""


def meter_map(workdir: Path) -> Path:
    """The shipped power meter with its lifetime energy (u32, two words) writable: a register
    the page must write with write_regs."""
    text = (DEVICE_DIR / "power_meter.toml").read_text()
    marker = 'name = "energy_total"\ntype = "u32"\n'
    assert marker in text
    path = workdir / "meter.toml"
    path.write_text(text.replace(marker, marker + "writable = true\n"))
    return path


# A bridge that wants a token, with a bus whose port does not exist (down from the start).
LOCKED_CONFIG = """\
[server]
listen = "127.0.0.1:{port}"
node = "locked"
tokens = ["{token}", {{ token = "viewer", read_only = true }}]

[[bus]]
name = "nowhere"
url = "{link}"
reconnect_max_s = 0.5

[[bus.device]]
addr = 7
profile = "thermo"
"""


def locked_bridge(workdir: Path, log: Path, token: str) -> tuple[Proc, str]:
    """A bridge needing ``token`` (closes 4003 otherwise); returns it and its page URL."""
    port = free_port()
    config = workdir / "locked.toml"
    link = workdir / "no-such-tty"
    config.write_text(LOCKED_CONFIG.format(port=port, token=token, link=link))
    proc = Proc(
        "locked-bridge", [*FRAMEBRIDGE, "bridge", "--config", str(config)], "dashboard:", log
    )
    return proc, f"http://127.0.0.1:{port}/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Proc:
    """A child process that is ready once it printed a line containing ``ready``."""

    def __init__(self, name: str, argv: list[str], ready: str, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.ready = ready
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self.output: list[str] = []

    def start(self) -> None:
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is running"
        self.output = []
        self.popen = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), False)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(self.ready in line for line in self.output):
            left = deadline - time.monotonic()
            if left <= 0 or self.popen.poll() is not None:
                self._save()
                raise RuntimeError(f"{self.name} did not start: {''.join(self.output)[-2000:]}")
            self._read(self.popen.stdout, min(left, 0.2))

    def _read(self, stream: IO[bytes], timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(stream, selectors.EVENT_READ)
            if sel.select(timeout):
                chunk = stream.read()
                if chunk:
                    self.output.extend(chunk.decode(errors="replace").splitlines(keepends=True))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGKILL: the process gets no chance to say goodbye) and reap it."""
        p = self.popen
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, sig)
        try:
            p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(STOP_TIMEOUT_S)
        if p.stdout is not None:
            self._read(p.stdout, 0)
            p.stdout.close()
        self._save()

    def _save(self) -> None:
        with self.log.open("a") as f:
            f.write(f"--- {self.name} {' '.join(self.argv)}\n{''.join(self.output)}")


class Stack:
    """A simulator on a pty symlink and a bridge polling it, on a free loopback port."""

    def __init__(self, workdir: Path, log: Path) -> None:
        self.link = workdir / "ttySIM0"
        self.link1 = workdir / "ttySIM1"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        config = workdir / "bridge.toml"
        meter = meter_map(workdir)
        links = {"link": self.link, "link1": self.link1, "meter": meter}
        config.write_text(CONFIG.format(port=self.port, **links))
        sim_config = workdir / "sim.toml"
        sim_config.write_text(SIM_CONFIG.format(**links))
        self.sim = Proc(
            "sim", [*FRAMEBRIDGE, "sim", "--config", str(sim_config)], "addresses=3,4", log
        )
        self.bridge = Proc(
            "bridge", [*FRAMEBRIDGE, "bridge", "--config", str(config)], "dashboard:", log
        )

    def start(self) -> None:
        self.sim.start()
        self.bridge.start()

    def stop(self) -> None:
        self.bridge.stop()
        self.sim.stop()
