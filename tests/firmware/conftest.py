"""Build the firmware's host programs once; run fb-device on a pty; talk raw bytes to a pty."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from frames import Frame, StreamDecoder

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "firmware" / "build"


@pytest.fixture(scope="session")
def firmware() -> Path:
    """``make -C firmware`` (the host programs); a failure here is a real failure, not a skip:
    scripts/setup-system.sh installs the compilers."""
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "firmware"), "all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return BUILD


def read_line(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> str:
    """One line from the process's stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    end = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = end - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no line from {proc.args} within {timeout}s (got {line!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"{proc.args} exited: {line!r}")
        line += chunk
    return line.decode().rstrip("\n")


@dataclass
class Device:
    proc: subprocess.Popen[bytes]
    path: str  # what a master opens

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as the brief says it ends; (exit status, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=5)
        return self.proc.returncode, err.decode()


@contextlib.contextmanager
def run_device(firmware: Path, *args: str, program: str = "fb-device") -> Iterator[Device]:
    proc = subprocess.Popen(
        [str(firmware / program), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = read_line(proc)
        yield Device(proc, first.split("\t")[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


@dataclass
class RawPty:
    """A pty whose path fb-device opens (as a serial device); the test holds the other side
    and writes/reads raw bytes, so it can send corrupted and split frames exactly."""

    fd: int
    path: str
    hold: int

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_frames(self, count: int, timeout: float = 2.0) -> list[Frame]:
        """Frames the device sent, until ``count`` arrived or ``timeout`` passed."""
        dec = StreamDecoder()
        out: list[Frame] = []
        end = time.monotonic() + timeout
        while len(out) < count:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                break
            out += dec.feed(os.read(self.fd, 4096))
        return out

    def close(self) -> None:
        for fd in (self.fd, self.hold):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def raw_pty() -> Iterator[RawPty]:
    master_fd, slave_fd = os.openpty()
    tty.setraw(master_fd)
    tty.setraw(slave_fd)
    p = RawPty(master_fd, os.ttyname(slave_fd), slave_fd)
    yield p
    p.close()
