"""Real ptys (os.openpty, both ends raw), devices built from Slave, and a socat pty pair."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import tty
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from frames.commands import ErrorCode
from frames.errors import DeviceFault
from frames.slave import Request, Slave, SlaveGroup


@dataclass
class Pty:
    """``fd`` is the device side (no path); ``path`` is what a master opens."""

    fd: int
    path: str
    hold: int  # our own handle on the path side, so the pty stays up between opens

    def close(self) -> None:
        for fd in (self.fd, self.hold):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pty() -> Pty:
    master_fd, slave_fd = os.openpty()
    tty.setraw(master_fd)
    tty.setraw(slave_fd)
    return Pty(master_fd, os.ttyname(slave_fd), slave_fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = open_pty()
    yield p
    p.close()


def make_device(addr: int) -> Slave:
    """A small device: 64 registers (addr*1000 + i), every standard command."""
    slave = Slave(addr)
    regs = [addr * 1000 + i for i in range(64)]

    def check(start: int, count: int) -> None:
        if start + count > len(regs):
            raise DeviceFault(ErrorCode.ILLEGAL_REGISTER)

    @slave.handler("identify")
    def identify(req: Request) -> Mapping[str, Any]:
        return {
            "model": f"DEV{addr}",
            "firmware": [1, 2, 3],
            "uid": 0xC0DE00 + addr,
            "register_count": len(regs),
        }

    slave.add_handler("echo", lambda req: req.frame.data)

    @slave.handler("read_regs")
    def read(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        check(req.fields["start"], req.fields["count"])
        return {"values": regs[req.fields["start"] : req.fields["start"] + req.fields["count"]]}

    @slave.handler("write_reg")
    def write(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        check(req.fields["reg"], 1)
        regs[req.fields["reg"]] = req.fields["value"]
        return req.fields

    @slave.handler("write_regs")
    def write_many(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        start, values = req.fields["start"], req.fields["values"]
        check(start, len(values))
        regs[start : start + len(values)] = values
        return {"start": start, "count": len(values)}

    return slave


@pytest.fixture
def group() -> SlaveGroup:
    return SlaveGroup([make_device(a) for a in (1, 2, 3)])


@dataclass
class SocatPair:
    a: str
    b: str
    proc: subprocess.Popen[bytes]


@pytest.fixture
def socat_pair(tmp_path: Path) -> Iterator[SocatPair]:
    socat = shutil.which("socat") or "/usr/bin/socat"
    if not os.path.exists(socat):  # no skip: scripts/setup-system.sh installs it
        pytest.fail("socat is not installed: run scripts/setup-system.sh")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if time.monotonic() > end or proc.poll() is not None:
            proc.kill()
            pytest.fail("socat did not create its ptys")
        time.sleep(0.01)  # polling a file system path: there is no event to await
    yield SocatPair(str(a), str(b), proc)
    proc.terminate()
    proc.wait(5)
