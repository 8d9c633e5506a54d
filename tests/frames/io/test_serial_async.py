"""AsyncMaster over real ptys, a TCP socket and socat, against Slave devices on AsyncSlavePort."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import serial

from frames import DeviceError, Frame, LinkDown, MasterClosed, Timeout, encode
from frames.commands import ErrorCode
from frames.events import FrameReceived, FrameSent, LinkStateChanged, TrafficEvent
from frames.io import AsyncMaster, AsyncSlavePort
from frames.io.port_link import PortLink
from frames.slave import SlaveGroup

from .conftest import Pty, SocatPair, make_device, open_pty

pytestmark = pytest.mark.timeout(20)

FAST: dict[str, Any] = {"timeout": 0.2, "retries": 1, "turnaround": 0.01, "reconnect": False}


def drop_from(addr: int) -> Callable[[bytes], bytes | None]:
    """A reply filter: the device at ``addr`` is silent."""
    return lambda out: None if out[1] == addr else out


def corrupt_first(n: int) -> Callable[[bytes], bytes | None]:
    left = [n]

    def f(out: bytes) -> bytes:
        if left[0] > 0:
            left[0] -= 1
            return out[:-3] + bytes([out[-3] ^ 0xFF]) + out[-2:]
        return out

    return f


@pytest.fixture
async def served(pty: Pty, group: SlaveGroup) -> AsyncIterator[AsyncSlavePort]:
    async with AsyncSlavePort(group, fd=pty.fd) as port:
        yield port


async def test_every_command_over_a_pty(pty: Pty, served: AsyncSlavePort) -> None:
    async with AsyncMaster(pty.path, **FAST) as m:
        assert m.connected
        info = await m.identify(2)
        assert info == {
            "model": "DEV2",
            "firmware": [1, 2, 3],
            "uid": 0xC0DE02,
            "register_count": 64,
        }
        assert await m.echo(3, b"\x00\xaa\xff") == b"\x00\xaa\xff"
        assert await m.read_registers(1, 10, 3) == [1010, 1011, 1012]
        await m.write_register(1, 10, 7)
        await m.write_registers(1, 11, [8, 9])
        assert await m.read_registers(1, 10, 3) == [7, 8, 9]
        frame = await m.request(0, "write_reg", bytes([0, 0, 42, 0]))  # broadcast
        assert frame == Frame(0, 0x06)
        for addr in (1, 2, 3):
            assert await m.read_registers(addr, 0, 1) == [42]
        with pytest.raises(DeviceError) as err:
            await m.read_registers(2, 60, 10)
        assert err.value.code == ErrorCode.ILLEGAL_REGISTER and err.value.addr == 2
        assert m.stats.replies == 9 and m.stats.device_errors == 1 and m.stats.broadcasts == 1


async def test_silent_device_times_out_while_others_answer(pty: Pty, group: SlaveGroup) -> None:
    async with (
        AsyncSlavePort(group, fd=pty.fd, reply_filter=drop_from(2)),
        AsyncMaster(pty.path, **FAST) as m,
    ):
        results = await asyncio.gather(
            m.read_registers(1, 0, 2),
            m.read_registers(2, 0, 2),
            m.read_registers(3, 0, 2),
            return_exceptions=True,
        )
        assert results[0] == [1000, 1001] and results[2] == [3000, 3001]
        assert isinstance(results[1], Timeout)
        assert m.stats.timeouts == 1 and m.stats.retries == 1
        assert await m.echo(1, b"still fine") == b"still fine"


async def test_corrupted_reply_is_retried(pty: Pty, group: SlaveGroup) -> None:
    async with (
        AsyncSlavePort(group, fd=pty.fd, reply_filter=corrupt_first(1)),
        AsyncMaster(pty.path, timeout=1.0, retries=2, reconnect=False) as m,
    ):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await m.read_registers(3, 5, 4) == [3005, 3006, 3007, 3008]
        assert loop.time() - t0 < 0.5  # retried on the CRC error, not after the 1 s timeout
        assert m.stats.crc_errors == 1 and m.stats.retries == 1


async def test_concurrent_callers_are_served_in_order(pty: Pty, served: AsyncSlavePort) -> None:
    sent: list[bytes] = []

    def traffic(ev: TrafficEvent) -> None:
        if isinstance(ev, FrameSent):
            sent.append(ev.frame.data)

    async with AsyncMaster(pty.path, on_traffic=traffic, **FAST) as m:
        payloads = [i.to_bytes(2, "little") for i in range(60)]
        results = await asyncio.gather(*(m.echo(1 + i % 3, p) for i, p in enumerate(payloads)))
        assert results == payloads
        assert sent == payloads  # FIFO: on the wire in call order
        assert m.stats.requests == 60 and m.stats.unexpected == 0


async def test_cancel_never_leaks_a_reply_to_the_next_request(pty: Pty, group: SlaveGroup) -> None:
    kinds: list[str] = []
    first_sent = asyncio.Event()

    def traffic(ev: TrafficEvent) -> None:
        if isinstance(ev, FrameReceived):
            kinds.append(ev.kind)
        elif isinstance(ev, FrameSent):
            first_sent.set()

    async with (
        AsyncSlavePort(group, fd=pty.fd, delay=0.1),
        AsyncMaster(pty.path, on_traffic=traffic, timeout=1.0, reconnect=False) as m,
    ):
        await m.write_register(1, 0, 111)
        kinds.clear()
        first_sent.clear()
        task = asyncio.create_task(m.read_registers(1, 0, 1))
        await asyncio.wait_for(first_sent.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancelled read's reply (111) is still on its way; neither the write nor the same
        # question asked again may take it.
        await m.write_register(1, 0, 222)
        assert await m.read_registers(1, 0, 1) == [222]
        assert kinds == ["late", "reply", "reply"]
        assert m.stats.late == 1 and m.stats.cancelled == 1


async def test_cancel_of_queued_request_sends_nothing(pty: Pty, served: AsyncSlavePort) -> None:
    sent: list[Frame] = []
    async with AsyncMaster(
        pty.path,
        on_traffic=lambda ev: sent.append(ev.frame) if isinstance(ev, FrameSent) else None,
        **FAST,
    ) as m:
        first = asyncio.create_task(m.echo(1, b"one"))
        second = asyncio.create_task(m.echo(1, b"two"))
        for _ in range(1000):  # until both are in the core: the second waits behind the first
            if m.core.pending == 2:
                break
            await asyncio.sleep(0)
        assert m.core.pending == 2
        second.cancel()
        assert await first == b"one"
        with pytest.raises(asyncio.CancelledError):
            await second
        assert [f.data for f in sent] == [b"one"]


async def test_port_loss_and_reconnect(tmp_path: Path, group: SlaveGroup) -> None:
    link = tmp_path / "ttyBUS"
    pty1 = open_pty()
    link.symlink_to(pty1.path)
    states: list[bool] = []
    down = asyncio.Event()
    up_again = asyncio.Event()
    in_flight = asyncio.Event()

    def traffic(ev: TrafficEvent) -> None:
        if isinstance(ev, FrameSent) and ev.frame.addr == 2:
            in_flight.set()
        if isinstance(ev, LinkStateChanged):
            states.append(ev.up)
            (up_again if ev.up and down.is_set() else down).set()

    dev1 = AsyncSlavePort(group, fd=pty1.fd, delay=0.2)
    await dev1.start()
    m = AsyncMaster(
        str(link),
        timeout=1.0,
        reconnect=True,
        reconnect_min=0.02,
        reconnect_max=0.1,
        on_traffic=traffic,
    )
    await m.open()
    pty2 = None
    try:
        assert await m.echo(1, b"a") == b"a"
        pending = asyncio.create_task(m.echo(2, b"in flight"))
        await asyncio.wait_for(in_flight.wait(), 2)  # on the wire; the device answers after 0.2 s
        await dev1.stop()
        pty1.close()  # the adapter is unplugged
        with pytest.raises(LinkDown):
            await asyncio.wait_for(pending, 2)
        await asyncio.wait_for(down.wait(), 2)
        assert not m.connected
        with pytest.raises(LinkDown):
            await m.echo(1, b"while down")  # immediately, not after a timeout
        pty2 = open_pty()
        link.unlink()
        link.symlink_to(pty2.path)
        async with AsyncSlavePort(group, fd=pty2.fd):
            await asyncio.wait_for(up_again.wait(), 5)
            assert m.connected
            assert await m.echo(3, b"back") == b"back"
        assert states[0] is True and states[1:] == [False, True]
    finally:
        await m.close()
        if pty2 is not None:
            pty2.close()


async def test_open_failure(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(LinkDown, match="cannot open"):
        await AsyncMaster(missing, reconnect=False).open()
    m = AsyncMaster(missing, reconnect=True, reconnect_min=0.01)
    await m.open()  # keeps trying in the background
    try:
        assert not m.connected
        with pytest.raises(LinkDown):
            await m.echo(1, b"")
    finally:
        await m.close()
    with pytest.raises(MasterClosed):
        await m.echo(1, b"")


async def test_close_fails_pending_requests(pty: Pty, group: SlaveGroup) -> None:
    async with AsyncSlavePort(group, fd=pty.fd, reply_filter=lambda out: None):
        sent = asyncio.Event()
        m = AsyncMaster(
            pty.path,
            timeout=5.0,
            reconnect=False,
            on_traffic=lambda ev: sent.set() if isinstance(ev, FrameSent) else None,
        )
        await m.open()
        task = asyncio.create_task(m.echo(1, b"x"))
        await asyncio.wait_for(sent.wait(), 2)  # the request is on the wire, awaiting its reply
        await m.close()
        await m.close()  # idempotent
        with pytest.raises(MasterClosed):
            await asyncio.wait_for(task, 2)


async def test_bad_traffic_callback_does_not_break_the_master(
    pty: Pty, served: AsyncSlavePort
) -> None:
    def bad(ev: TrafficEvent) -> None:
        raise RuntimeError("monitor bug")

    async with AsyncMaster(pty.path, on_traffic=bad, **FAST) as m:
        assert await m.echo(1, b"ok") == b"ok"


async def test_unexpected_frames_are_not_taken_for_replies(pty: Pty) -> None:
    """A device that first sends a frame from the wrong address, then the real reply."""
    loop = asyncio.get_running_loop()
    os.set_blocking(pty.fd, False)

    def on_request() -> None:
        data = os.read(pty.fd, 4096)
        if data:
            os.write(pty.fd, encode(9, 2, b"imposter") + b"\xaa\x13" + encode(1, 2, b"real"))

    loop.add_reader(pty.fd, on_request)
    try:
        async with AsyncMaster(pty.path, **FAST) as m:
            assert await m.echo(1, b"real") == b"real"
            assert m.stats.unexpected == 1
    finally:
        loop.remove_reader(pty.fd)


async def test_over_tcp_socket_url(group: SlaveGroup) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = SlaveGroup([make_device(a) for a in (1, 2, 3)])
        loop = asyncio.get_running_loop()
        while data := await reader.read(4096):
            writer.write(local.receive_data(data, loop.time()))
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncMaster(f"socket://127.0.0.1:{port}", **FAST) as m:
            assert await m.read_registers(2, 0, 3) == [2000, 2001, 2002]
            assert (await m.identify(3))["model"] == "DEV3"
            with pytest.raises(Timeout):
                await m.echo(7, b"nobody")
    finally:
        server.close()
        await server.wait_closed()


async def test_over_socat_pty_pair(socat_pair: SocatPair, group: SlaveGroup) -> None:
    async with (
        AsyncSlavePort(group, url=socat_pair.a),
        AsyncMaster(socat_pair.b, **FAST) as m,
    ):
        results = await asyncio.gather(*(m.read_registers(a, a, 2) for a in (1, 2, 3)))
        assert results == [[1001, 1002], [2002, 2003], [3003, 3004]]
        assert await m.echo(2, bytes(range(200))) == bytes(range(200))


class SocketSerial:
    """Just enough of a pyserial port over one end of a socket pair, for ``PortLink``'s generic
    path (a class with its own read/write, like ``socket://``); writes at most ``limit`` bytes a
    call, as a full port would."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.limit = limit
        self.timeout: float | None = None
        self.write_timeout: float | None = None
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, size: int) -> bytes:
        data = self.sock.recv(size)
        if not data:
            raise serial.SerialException("socket disconnected")
        return data

    def write(self, data: bytes) -> int:
        return self.sock.send(bytes(data[: self.limit]))

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.got = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        assert not self.lost.done(), "connection_lost called twice"
        self.lost.set_result(exc)


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while len(got) < n:
        got += await loop.sock_recv(sock, n - len(got))
    return got


async def test_port_link_buffers_a_full_port_and_closes_after_flushing() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    ser = SocketSerial(ours, limit=3)
    proto = Recorder()
    link = PortLink(loop, proto, ser)
    link.write(b"0123456789")  # 3 bytes now, the rest when the port takes them
    link.write(b"ab")  # queued behind, never ahead
    assert await recv_exactly(theirs, 12) == b"0123456789ab"
    theirs.send(b"reply")
    await asyncio.wait_for(proto.got.wait(), 2)
    assert bytes(proto.data) == b"reply"
    link.write(b"last words")
    link.close()
    link.write(b"after close")  # ignored
    assert await asyncio.wait_for(proto.lost, 2) is None
    assert ser.closed
    assert await recv_exactly(theirs, 10) == b"last words"
    theirs.close()


async def test_port_link_reports_a_dead_port_once() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ser = SocketSerial(ours, limit=100)
    proto = Recorder()
    link = PortLink(loop, proto, ser)
    theirs.close()  # the other end goes away
    exc = await asyncio.wait_for(proto.lost, 2)
    assert isinstance(exc, serial.SerialException)
    assert ser.closed
    link.write(b"ignored")
    link.close()  # idempotent after a loss


async def test_wait_connected_wakes_on_reopen_and_on_close(tmp_path: Path) -> None:
    link = tmp_path / "ttyLATE"
    m = AsyncMaster(str(link), reconnect=True, reconnect_min=0.01, reconnect_max=0.05)
    await m.open()  # the port does not exist yet: retried in the background
    pty = None
    try:
        with pytest.raises(LinkDown, match="not connected"):
            await m.wait_connected(0.05)
        pty = open_pty()
        link.symlink_to(pty.path)  # the adapter is plugged in
        await m.wait_connected(5)
        assert m.connected
    finally:
        await m.close()
        if pty is not None:
            pty.close()
    closed = AsyncMaster(str(tmp_path / "never"), reconnect=True, reconnect_min=0.01)
    await closed.open()
    waiter = asyncio.create_task(closed.wait_connected(30))
    await asyncio.sleep(0)  # one loop turn: the waiter starts waiting
    await closed.close()
    with pytest.raises(MasterClosed):
        await asyncio.wait_for(waiter, 2)  # woken by close, long before its 30 s
