"""The blocking Master over real ptys, socket:// and socat, against SlavePort in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from frames import DeviceError, Frame, LinkDown, MasterClosed, Timeout
from frames.commands import ErrorCode
from frames.events import FrameReceived, FrameSent, LinkStateChanged, TrafficEvent
from frames.io import Master, SlavePort
from frames.slave import SlaveGroup

from .conftest import Pty, SocatPair, make_device, open_pty

pytestmark = pytest.mark.timeout(20)

FAST: dict[str, Any] = {"timeout": 0.2, "retries": 1, "turnaround": 0.01}


class Served:
    """A SlavePort serving in a background thread, stopped and joined on exit."""

    def __init__(self, port: SlavePort) -> None:
        self.port = port
        self.thread = threading.Thread(target=port.serve, kwargs={"poll": 0.02}, daemon=True)

    def __enter__(self) -> SlavePort:
        self.thread.start()
        return self.port

    def __exit__(self, *exc: object) -> None:
        self.port.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def served(pty: Pty, group: SlaveGroup) -> Iterator[SlavePort]:
    with Served(SlavePort(group, fd=pty.fd)) as port:
        yield port


def test_every_command(pty: Pty, served: SlavePort) -> None:
    traffic: list[TrafficEvent] = []
    with Master(pty.path, on_traffic=traffic.append, **FAST) as m:
        assert m.connected
        assert m.identify(1)["model"] == "DEV1"
        assert m.echo(2, b"hi") == b"hi"
        m.write_register(3, 0, 5)
        m.write_registers(3, 1, [6, 7])
        assert m.read_registers(3, 0, 3) == [5, 6, 7]
        assert m.request(0, "write_reg", bytes([9, 0, 1, 0])) == Frame(0, 6)
        assert m.read_registers(1, 9, 1) == [1]
        with pytest.raises(DeviceError) as err:
            m.write_register(2, 500, 1)
        assert err.value.code == ErrorCode.ILLEGAL_REGISTER
    assert sum(isinstance(e, FrameSent) for e in traffic) == 8
    assert sum(isinstance(e, FrameReceived) and e.kind == "reply" for e in traffic) == 7
    with pytest.raises(MasterClosed):
        m.echo(1, b"")


def test_timeout_and_recovery(pty: Pty, group: SlaveGroup) -> None:
    port = SlavePort(group, fd=pty.fd, reply_filter=lambda out: None if out[1] == 2 else out)
    with Served(port), Master(pty.path, **FAST) as m:
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            m.echo(2, b"x")
        assert time.monotonic() - t0 > 0.35  # two attempts of 0.2 s, never fewer
        assert m.echo(1, b"y") == b"y"
        assert m.stats.timeouts == 1 and m.stats.retries == 1


def test_link_loss_and_reopen(tmp_path: Path, group: SlaveGroup) -> None:
    link = tmp_path / "ttyS"
    pty1 = open_pty()
    link.symlink_to(pty1.path)
    states: list[bool] = []

    def traffic(ev: TrafficEvent) -> None:
        if isinstance(ev, LinkStateChanged):
            states.append(ev.up)

    served = Served(SlavePort(group, fd=pty1.fd))
    served.__enter__()
    m = Master(str(link), reconnect_min=0.01, on_traffic=traffic, **FAST)
    try:
        assert m.echo(1, b"a") == b"a"
        served.__exit__()
        pty1.close()
        with pytest.raises(LinkDown):
            m.echo(1, b"b")
        assert not m.connected
        pty2 = open_pty()
        link.unlink()
        link.symlink_to(pty2.path)
        with Served(SlavePort(group, fd=pty2.fd)):
            end = time.monotonic() + 5
            while True:  # reopen is attempted at most once per backoff interval
                try:
                    assert m.echo(2, b"c") == b"c"
                    break
                except LinkDown:
                    assert time.monotonic() < end
                    time.sleep(0.01)
        pty2.close()
        assert states == [True, False, True]
    finally:
        m.close()


def test_open_failure_without_reconnect(tmp_path: Path) -> None:
    with pytest.raises(LinkDown, match="cannot open"):
        Master(str(tmp_path / "missing"), reconnect=False)


def test_socket_url() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port_no = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        local = SlaveGroup([make_device(1)])
        conn.settimeout(0.05)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                conn.sendall(local.receive_data(data, time.monotonic()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Master(f"socket://127.0.0.1:{port_no}", **FAST) as m:
            assert m.read_registers(1, 2, 2) == [1002, 1003]
            with pytest.raises(Timeout):
                m.echo(4, b"")
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_socat_pair(socat_pair: SocatPair, group: SlaveGroup) -> None:
    with Served(SlavePort(group, url=socat_pair.a)), Master(socat_pair.b, **FAST) as m:
        for addr in (1, 2, 3):
            assert m.identify(addr)["uid"] == 0xC0DE00 + addr
        assert m.echo(1, bytes(255)) == bytes(255)
