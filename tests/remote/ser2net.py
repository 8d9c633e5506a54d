"""A real ``ser2net`` (Debian's 4.x) serving a ``framebridge sim`` pty, on free loopback ports.

:func:`serial_server` starts the simulator (a subprocess, on a pty behind a symlink) and one
ser2net with two connections on the same pty, both with ``kickolduser``: RFC 2217
(``telnet(rfc2217),tcp``, :attr:`Ser2net.rfc2217_url`) and raw TCP (``tcp``,
:attr:`Ser2net.socket_url`). Use one at a time: each opens the pty when a client connects.
:meth:`Ser2net.kill` / :meth:`Ser2net.start` restart ser2net on the same ports. Every wait is
bounded; readiness is read from ``/proc/net/tcp`` (no probe connection that would open the pty).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, stop_process

__all__ = ["CONFIG", "Ser2net", "serial_server", "tty_speed"]

CONFIG = """\
%YAML 1.1
---
connection: &rfc2217
  accepter: telnet(rfc2217),tcp,127.0.0.1,{rfc_port}
  connector: serialdev,{tty},115200n81,local
  options:
    kickolduser: true
connection: &raw
  accepter: tcp,127.0.0.1,{raw_port}
  connector: serialdev,{tty},115200n81,local
  options:
    kickolduser: true
"""

RFC2217_OPTIONS = "ign_set_control"  # ser2net answers SET-CONTROL with the line state


def _listening(port: int) -> bool:
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] == want and parts[3] == "0A":  # LISTEN
                return True
    return False


def _wait(predicate: object, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise RuntimeError(f"{what} not ready after {timeout}s")
        time.sleep(0.02)


@dataclass
class Ser2net:
    """One ser2net process; ``kill()`` then ``start()`` restarts it on the same ports."""

    dir: Path
    tty: Path
    rfc_port: int = field(default_factory=free_port)
    raw_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rfc2217_url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.rfc_port}?{RFC2217_OPTIONS}"

    @property
    def socket_url(self) -> str:
        return f"socket://127.0.0.1:{self.raw_port}"

    @property
    def config(self) -> Path:
        return self.dir / "ser2net.yaml"

    def start(self, timeout: float = 10.0) -> Ser2net:
        exe = shutil.which("ser2net")
        if exe is None:
            raise RuntimeError("ser2net is not installed (scripts/setup-system.sh installs it)")
        self.config.write_text(
            CONFIG.format(rfc_port=self.rfc_port, raw_port=self.raw_port, tty=self.tty)
        )
        log = open(self.dir / "ser2net.log", "ab")  # noqa: SIM115 - the process keeps it
        # -n: foreground; -u: no UUCP lock files (the pty is ours alone)
        self.proc = subprocess.Popen(
            [exe, "-n", "-u", "-c", str(self.config), "-P", str(self.dir / "ser2net.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        _wait(lambda: _listening(self.rfc_port) and _listening(self.raw_port), "ser2net", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: the connections drop as when the server restarts or crashes."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def tty_speed(tty: Path) -> int:
    """The pty's baud rate as ``stty`` reports it (what ser2net set on its side)."""
    out = subprocess.run(
        ["stty", "-F", str(tty)], capture_output=True, text=True, timeout=5, check=True
    ).stdout
    first = out.split(";")[0]  # "speed 9600 baud"
    return int(first.split()[1])


@contextlib.contextmanager
def serial_server(devices: int = 2, *sim_args: str) -> Iterator[Ser2net]:
    """The simulator on a pty and ser2net serving it; both stopped at the end."""
    if shutil.which("ser2net") is None:
        raise RuntimeError("ser2net is not installed (scripts/setup-system.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="fb-ser2net-") as tmp:
        d = Path(tmp)
        link = d / "ttySIM"
        cmd = [sys.executable, "-m", "firmware_sim", "--link", str(link), "--devices"]
        sim = subprocess.Popen(
            [*cmd, str(devices), *sim_args],
            stdout=subprocess.DEVNULL,
            stderr=open(d / "sim.log", "wb"),  # noqa: SIM115 - the process keeps it
            stdin=subprocess.DEVNULL,
        )
        server: Ser2net | None = None
        try:
            _wait(link.exists, "simulator pty", 15.0)
            # ser2net gets the pty itself: its serialdev connector wants the device name.
            server = Ser2net(d, Path(os.path.realpath(link))).start()
            yield server
        finally:
            if server is not None:
                server.kill()
            stop_process(sim)
