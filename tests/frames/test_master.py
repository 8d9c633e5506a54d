"""MasterCore against Slave with no I/O: a fake link and a fake clock (h11's ConnectionPair)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from frames import (
    STANDARD,
    DeviceError,
    Frame,
    FrameValueError,
    LinkDown,
    MasterClosed,
    QueueFull,
    Timeout,
    encode,
)
from frames.commands import READ_REGS, WRITE_REG, WRITE_REGS, ErrorCode
from frames.errors import DeviceFault
from frames.events import CrcErrorSeen, FrameReceived, FrameSent, LinkStateChanged
from frames.master import (
    MasterCore,
    MasterEvent,
    ReplyReceived,
    RequestFailed,
    default_gap,
    parse_read_registers,
    read_registers_request,
    reply_fits,
    write_register_request,
    write_registers_request,
)
from frames.slave import Request, Slave, SlaveGroup


def device(addr: int) -> Slave:
    slave = Slave(addr)
    regs = [addr * 1000 + i for i in range(50)]

    @slave.handler("read_regs")
    def read(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        s, n = req.fields["start"], req.fields["count"]
        if s + n > len(regs):
            raise DeviceFault(ErrorCode.ILLEGAL_REGISTER)
        return {"values": regs[s : s + n]}

    slave.add_handler("echo", lambda req: req.frame.data)

    @slave.handler("write_reg")
    def write(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        regs[req.fields["reg"]] = req.fields["value"]
        return req.fields

    return slave


class Pair:
    """A master and a group of slaves joined by a fake wire with a delay and fault hooks."""

    def __init__(self, core: MasterCore, slaves: list[Slave], delay: float = 0.001) -> None:
        self.core = core
        self.group = SlaveGroup(slaves)
        self.delay = delay
        self.now = 0.0
        self.silent: set[int] = set()
        self.corrupt_next = 0  # corrupt this many upcoming replies
        self.echo = False
        self.inbound: list[tuple[float, bytes]] = []  # (arrival time, bytes) toward the master
        self.events: list[MasterEvent] = []
        self.wire_out: list[bytes] = []

    def pump(self) -> None:
        """Move bytes master → slaves; queue replies toward the master."""
        out = self.core.data_to_send()
        if out:
            self.wire_out.append(out)
            if self.echo:
                self.inbound.append((self.now, out))
            reply = self.group.receive_data(out, self.now)
            for frame in self.group.decoder.feed(b""):  # nothing: replies already computed
                raise AssertionError(frame)
            if reply and not any(out[1] == a for a in self.silent):
                if self.corrupt_next:
                    self.corrupt_next -= 1
                    reply = reply[:-3] + bytes([reply[-3] ^ 0x5A]) + reply[-2:]
                self.inbound.append((self.now + self.delay, reply))
        self.events += self.core.events()

    def run_until(self, done: Callable[[], bool], limit: float = 10.0) -> None:
        """Advance the fake clock event by event until ``done()`` or ``limit`` seconds."""
        self.pump()
        while not done():
            times = [t for t, _ in self.inbound]
            deadline = self.core.next_deadline()
            if deadline is not None:
                times.append(deadline)
            if not times:
                raise AssertionError("stalled: nothing scheduled")
            self.now = max(self.now, min(times))
            assert self.now <= limit, "fake clock ran past the limit"
            arrived = [d for t, d in self.inbound if t <= self.now]
            self.inbound = [(t, d) for t, d in self.inbound if t > self.now]
            for data in arrived:
                self.core.receive_data(data, self.now)
            self.core.tick(self.now)
            self.pump()

    def outcome(self, token: int) -> ReplyReceived | RequestFailed | None:
        for ev in self.events:
            if isinstance(ev, (ReplyReceived, RequestFailed)) and ev.token == token:
                return ev
        return None

    def request(self, addr: int, cmd: int | str, data: bytes = b"", **kw: Any) -> Any:
        token = self.core.send_request(addr, cmd, data, self.now, **kw)
        self.run_until(lambda: self.outcome(token) is not None)
        return self.outcome(token)


def make_pair(**kw: Any) -> Pair:
    kw.setdefault("gap", 0.001)
    kw.setdefault("timeout", 0.1)
    return Pair(MasterCore(**kw), [device(1), device(2), device(3)])


def read_req(start: int, count: int) -> bytes:
    return read_registers_request(start, count)


def test_request_reply_and_traffic_events() -> None:
    pair = make_pair()
    ev = pair.request(2, "read_regs", read_req(0, 3))
    assert isinstance(ev, ReplyReceived)
    assert parse_read_registers(ev.frame.data, 3) == [2000, 2001, 2002]
    assert ev.attempts == 1 and ev.rtt == pytest.approx(0.001)
    kinds = [type(e).__name__ for e in pair.events]
    assert kinds == ["FrameSent", "FrameReceived", "ReplyReceived"]
    received = pair.events[1]
    assert isinstance(received, FrameReceived) and received.kind == "reply"
    assert pair.core.stats.requests == 1 and pair.core.stats.replies == 1


def test_fifo_one_transaction_on_the_wire() -> None:
    pair = make_pair()
    tokens = [pair.core.send_request(a, "echo", bytes([a]), 0.0) for a in (3, 1, 2)]
    first = pair.core.data_to_send()
    assert first == encode(3, 2, b"\x03")  # only the first request is written
    pair.core.receive_data(pair.group.receive_data(first, 0.0), 0.001)
    assert pair.core.data_to_send() == b""  # the gap has not passed yet
    pair.run_until(lambda: all(pair.outcome(t) for t in tokens))
    assert pair.wire_out == [encode(1, 2, b"\x01"), encode(2, 2, b"\x02")]
    order = [e.token for e in pair.events if isinstance(e, ReplyReceived)]
    assert order == tokens


def test_gap_is_respected_before_each_request() -> None:
    pair = make_pair(gap=0.01)
    pair.request(1, "echo", b"a")
    reply_at = pair.now
    token = pair.core.send_request(1, "echo", b"b", pair.now)
    assert pair.core.data_to_send() == b""
    assert pair.core.next_deadline() == pytest.approx(reply_at + 0.01)
    pair.core.tick(reply_at + 0.009)
    assert pair.core.data_to_send() == b""
    pair.core.tick(reply_at + 0.0101)
    assert pair.core.data_to_send() == encode(1, 2, b"b")
    assert token == 2


def test_reply_ends_the_estimated_transmission_time() -> None:
    """At 1200 baud a 7-byte request is estimated to take 58 ms on the wire; a link faster than
    its nominal baud rate (a pty, a USB adapter) answers sooner, and the reply proves the request
    is out: the next one waits one gap after the reply, not for the estimate to run out."""
    core = MasterCore(baudrate=1200, gap=0.001, timeout=0.5)
    dev = SlaveGroup([device(1)])
    first = core.send_request(1, "echo", b"a", 0.0)
    core.receive_data(dev.receive_data(core.data_to_send(), 0.0), 0.002)
    assert any(isinstance(e, ReplyReceived) and e.token == first for e in core.events())
    core.send_request(1, "echo", b"b", 0.002)
    assert core.data_to_send() == b""  # the gap after the reply first
    assert core.next_deadline() == pytest.approx(0.003)
    core.tick(0.003)
    assert core.data_to_send() == encode(1, 2, b"b")


def test_no_reply_keeps_the_estimated_transmission_time() -> None:
    """Garbage is no proof that the request left the wire: the early retry still waits for the
    estimated end of transmission plus the gap."""
    core = MasterCore(baudrate=1200, gap=0.001, timeout=0.5)
    core.send_request(1, "echo", b"a", 0.0)
    wire = core.data_to_send()
    busy_until = len(wire) * 10 / 1200
    core.receive_data(b"\x13\x37", 0.002)  # no start byte: discarded, the reply was hit
    assert core.next_deadline() == pytest.approx(busy_until + 0.001)


def test_default_gap_is_three_and_a_half_chars() -> None:
    assert default_gap(9600) == pytest.approx(3.5 * 10 / 9600)
    assert MasterCore(baudrate=9600).gap == pytest.approx(0.003645833)


def test_a_new_baud_rate_retimes_the_line() -> None:
    """``set_baudrate`` (the port's rate changed) re-derives the timing the line really uses:
    the estimated transmission end of the next request follows the new character time."""
    core = MasterCore(baudrate=115200, gap=0.001, timeout=0.5)
    core.set_baudrate(1200, gap=0.001)
    assert core.gap == 0.001 and core.char_time == pytest.approx(10 / 1200)
    core.send_request(1, "echo", b"a", 0.0)
    wire = core.data_to_send()
    core.receive_data(b"\x13\x37", 0.002)  # garbage: the estimate still holds the line
    assert core.next_deadline() == pytest.approx(len(wire) * 10 / 1200 + 0.001)
    core.set_baudrate(9600)  # gap and idle flush from the rate again
    assert core.gap == pytest.approx(default_gap(9600))
    assert core.idle_flush == pytest.approx(max(default_gap(9600), 0.005))
    with pytest.raises(FrameValueError):
        core.set_baudrate(0)


def test_timeout_after_retries() -> None:
    pair = make_pair(retries=2)
    pair.silent.add(3)
    ev = pair.request(3, "echo", b"x")
    assert isinstance(ev, RequestFailed) and isinstance(ev.error, Timeout)
    assert ev.attempts == 3 and "addr 3" in str(ev.error)
    assert len(pair.wire_out) == 3
    assert pair.now == pytest.approx(0.3 + 3 * len(pair.wire_out[0]) * 10 / 115200, abs=0.01)
    st = pair.core.stats
    assert st.timeouts == 1 and st.retries == 2


def test_per_request_timeout_and_retries() -> None:
    pair = make_pair()
    pair.silent.add(1)
    ev = pair.request(1, "echo", b"x", timeout=0.02, retries=0)
    assert isinstance(ev, RequestFailed) and ev.attempts == 1
    assert pair.now < 0.03


def test_silent_slave_does_not_stall_the_others() -> None:
    pair = make_pair(retries=1)
    pair.silent.add(2)
    tokens = [pair.core.send_request(a, "echo", b"z", 0.0) for a in (1, 2, 3)]
    pair.run_until(lambda: all(pair.outcome(t) for t in tokens))
    outcomes = [pair.outcome(t) for t in tokens]
    assert isinstance(outcomes[0], ReplyReceived)
    assert isinstance(outcomes[1], RequestFailed)
    assert isinstance(outcomes[2], ReplyReceived)


def test_device_error_reply() -> None:
    pair = make_pair()
    ev = pair.request(1, "read_regs", read_req(48, 5))
    assert isinstance(ev, RequestFailed) and isinstance(ev.error, DeviceError)
    assert ev.error.code == ErrorCode.ILLEGAL_REGISTER and ev.error.addr == 1
    ev = pair.request(1, "write_regs", write_registers_request(0, [1]))
    assert isinstance(ev, RequestFailed) and isinstance(ev.error, DeviceError)
    assert ev.error.code == ErrorCode.ILLEGAL_COMMAND
    assert pair.core.stats.device_errors == 2


def test_broadcast_waits_turnaround_and_expects_no_reply() -> None:
    pair = make_pair(turnaround=0.05)
    ev = pair.request(0, "write_reg", write_register_request(4, 77))
    assert isinstance(ev, ReplyReceived) and ev.frame == Frame(0, 0x06)
    assert pair.now == pytest.approx(0.05, abs=0.002)
    for a in (1, 2, 3):
        got = pair.request(a, "read_regs", read_req(4, 1))
        assert parse_read_registers(got.frame.data) == [77]
    assert pair.core.stats.broadcasts == 1


def test_late_reply_is_never_taken_for_the_current_one() -> None:
    pair = make_pair(retries=0, gap=0.0)
    pair.delay = 0.15  # replies come after the 0.1 s timeout
    ev = pair.request(1, "read_regs", read_req(0, 2))
    assert isinstance(ev, RequestFailed)
    pair.delay = 0.1
    # The late reply (count 2) arrives while we wait for a read of a different count.
    ev = pair.request(1, "read_regs", read_req(10, 3))
    assert isinstance(ev, ReplyReceived)
    assert parse_read_registers(ev.frame.data) == [1010, 1011, 1012]
    late = [e for e in pair.events if isinstance(e, FrameReceived) and e.kind == "late"]
    assert len(late) == 1 and late[0].frame.data[0] == 2
    assert pair.core.stats.late == 1


def test_wrong_address_and_unsolicited_frames_are_unexpected() -> None:
    pair = make_pair()
    pair.core.send_request(1, "echo", b"q", 0.0)
    pair.core.data_to_send()
    pair.core.receive_data(encode(2, 2, b"q") + encode(9, 0x40, b"hi"), 0.0005)
    assert not any(isinstance(e, ReplyReceived) for e in pair.core.events())
    assert pair.core.stats.unexpected == 2
    pair.core.receive_data(encode(1, 2, b"q"), 0.001)
    assert any(isinstance(e, ReplyReceived) for e in pair.core.events())
    pair.core.receive_data(encode(1, 2, b"q"), 0.5)  # nothing pending: unsolicited
    evs = pair.core.events()
    assert [e.kind for e in evs if isinstance(e, FrameReceived)] == ["unexpected"]


def test_corrupted_reply_is_retried_early_and_succeeds() -> None:
    pair = make_pair(timeout=0.5)
    pair.corrupt_next = 1
    ev = pair.request(2, "echo", b"hello")
    assert isinstance(ev, ReplyReceived) and ev.frame.data == b"hello"
    assert ev.attempts == 2
    assert pair.now < 0.05  # not the 0.5 s timeout
    assert pair.core.stats.crc_errors == 1 and pair.core.stats.retries == 1
    assert any(isinstance(e, CrcErrorSeen) for e in pair.events)


def test_rs485_echo_discarded() -> None:
    pair = make_pair(discard_echo=True)
    pair.echo = True
    ev = pair.request(1, "echo", b"same bytes both ways")
    assert isinstance(ev, ReplyReceived) and ev.frame == Frame(1, 2, b"same bytes both ways")
    kinds = [e.kind for e in pair.events if isinstance(e, FrameReceived)]
    assert kinds == ["echo", "reply"]
    assert pair.core.stats.echoes == 1


def test_cancel_in_flight_keeps_the_bus_until_its_reply() -> None:
    pair = make_pair()
    pair.delay = 0.05
    first = pair.core.send_request(1, "read_regs", read_req(0, 2), 0.0)
    second = pair.core.send_request(1, "read_regs", read_req(0, 2), 0.0)  # same question
    pair.pump()
    assert pair.core.cancel(first, 0.01)
    pair.pump()
    assert pair.wire_out == [encode(1, 3, read_req(0, 2))]  # second waits for the bus
    pair.run_until(lambda: pair.outcome(second) is not None)
    assert pair.outcome(first) is None
    ev = pair.outcome(second)
    assert isinstance(ev, ReplyReceived)
    assert ev.rtt == pytest.approx(0.05)  # its own reply, not the cancelled one's
    kinds = [e.kind for e in pair.events if isinstance(e, FrameReceived)]
    assert kinds == ["late", "reply"]
    assert not pair.core.cancel(first, pair.now)


def test_cancel_in_flight_without_reply_frees_bus_at_timeout() -> None:
    pair = make_pair()
    pair.silent.add(1)
    first = pair.core.send_request(1, "echo", b"a", 0.0)
    second = pair.core.send_request(2, "echo", b"b", 0.0)
    pair.pump()
    pair.core.cancel(first, 0.0)
    pair.run_until(lambda: pair.outcome(second) is not None)
    assert pair.now >= 0.1 and pair.outcome(first) is None
    assert len(pair.wire_out) == 2  # the cancelled request was not retried


def test_cancel_queued() -> None:
    pair = make_pair()
    a = pair.core.send_request(1, "echo", b"a", 0.0)
    b = pair.core.send_request(2, "echo", b"b", 0.0)
    assert pair.core.cancel(b, 0.0)
    pair.run_until(lambda: pair.outcome(a) is not None)
    pair.run_until(lambda: pair.core.pending == 0)
    assert pair.wire_out == [encode(1, 2, b"a")]
    assert pair.core.stats.cancelled == 1


def test_idle_flush_unsticks_a_stray_start_byte() -> None:
    pair = make_pair(timeout=1.0, idle_flush=0.01)
    token = pair.core.send_request(1, "echo", b"k", 0.0)
    pair.core.data_to_send()
    # A stray start byte with a long bogus length, then nothing: the decoder waits...
    pair.core.receive_data(b"\xaa\x01\x02\x30", 0.001)
    assert pair.core.decoder.pending == 4
    deadline = pair.core.next_deadline()
    assert deadline is not None and deadline == pytest.approx(0.011)
    pair.core.tick(0.011)
    assert pair.core.decoder.pending == 0
    pair.core.receive_data(encode(1, 2, b"k"), 0.02)
    evs = pair.core.events()
    assert any(isinstance(e, ReplyReceived) and e.token == token for e in evs)


def test_link_down_fails_everything_and_link_up_recovers() -> None:
    pair = make_pair()
    a = pair.core.send_request(1, "echo", b"a", 0.0)
    b = pair.core.send_request(2, "echo", b"b", 0.0)
    pair.core.link_down(0.01, "EIO")
    evs = pair.core.events()
    failed = {e.token: e.error for e in evs if isinstance(e, RequestFailed)}
    assert set(failed) == {a, b} and all(isinstance(x, LinkDown) for x in failed.values())
    assert [e.up for e in evs if isinstance(e, LinkStateChanged)] == [False]
    with pytest.raises(LinkDown):
        pair.core.send_request(1, "echo", b"", 0.02)
    assert pair.core.data_to_send() == b""
    pair.core.link_up(0.03)
    assert [e.up for e in pair.core.events() if isinstance(e, LinkStateChanged)] == [True]
    assert isinstance(pair.request(1, "echo", b"c"), ReplyReceived)


def test_close_fails_pending_and_later_requests() -> None:
    pair = make_pair()
    a = pair.core.send_request(1, "echo", b"a", 0.0)
    pair.core.close(0.0)
    evs = pair.core.events()
    assert isinstance(evs[-1], RequestFailed) and isinstance(evs[-1].error, MasterClosed)
    assert evs[-1].token == a
    with pytest.raises(MasterClosed):
        pair.core.send_request(1, "echo", b"", 0.0)


def test_queue_is_bounded() -> None:
    core = MasterCore(max_queue=2)
    core.send_request(1, "echo", b"", 0.0)  # goes on the wire at once
    core.send_request(1, "echo", b"", 0.0)
    core.send_request(1, "echo", b"", 0.0)
    with pytest.raises(QueueFull):
        core.send_request(1, "echo", b"", 0.0)


@pytest.mark.parametrize(
    ("addr", "cmd", "data"),
    [(256, 2, b""), (1, 0x83, b""), (1, 2, b"x" * 256), (1, "nope", b"")],
)
def test_bad_requests_raise_typed_errors(addr: int, cmd: int | str, data: bytes) -> None:
    core = MasterCore()
    with pytest.raises((FrameValueError, KeyError)):
        core.send_request(addr, cmd, data, 0.0)
    assert core.pending == 0


def test_frame_sent_event_has_wall_clock() -> None:
    core = MasterCore(wall_offset=1000.0)
    core.send_request(1, "echo", b"", 2.5)
    ev = core.events()[0]
    assert isinstance(ev, FrameSent) and ev.ts == 1002.5


@pytest.mark.parametrize(
    ("request_frame", "reply", "fits"),
    [
        (Frame(1, 2, b"ab"), Frame(1, 2, b"ab"), True),
        (Frame(1, 2, b"ab"), Frame(1, 2, b"ba"), False),
        (Frame(1, 2, b"ab"), Frame(2, 2, b"ab"), False),
        (Frame(1, 2, b"ab"), Frame(1, 0x82, b"\x01"), True),
        (Frame(1, 3, bytes([0, 0, 2])), Frame(1, 3, bytes([2, 1, 0, 2, 0])), True),
        (Frame(1, 3, bytes([0, 0, 2])), Frame(1, 3, bytes([1, 1, 0])), False),
        (Frame(1, 6, bytes([1, 0, 2, 0])), Frame(1, 6, bytes([1, 0, 3, 0])), False),
        (Frame(1, 0x10, bytes([1, 0, 1, 5, 0])), Frame(1, 0x10, bytes([1, 0, 1])), True),
        (Frame(1, 0x10, bytes([1, 0, 1, 5, 0])), Frame(1, 0x10, bytes([2, 0, 1])), False),
        (Frame(1, 0x01), Frame(1, 0x01, b"anything"), True),
        (Frame(1, 0x55), Frame(1, 0x55, b"custom"), True),
        (Frame(1, 0x55), Frame(1, 0x56, b""), False),
    ],
)
def test_reply_fits(request_frame: Frame, reply: Frame, fits: bool) -> None:
    assert reply_fits(request_frame, reply, STANDARD) is fits


def test_payload_helpers_agree_with_the_construct_layouts() -> None:
    assert read_registers_request(258, 7) == READ_REGS.encode_request({"start": 258, "count": 7})
    assert write_register_request(9, 65535) == WRITE_REG.encode_request({"reg": 9, "value": 65535})
    assert write_registers_request(3, [1, 2, 3]) == WRITE_REGS.encode_request(
        {"start": 3, "values": [1, 2, 3]}
    )
    data = READ_REGS.encode_response({"values": [5, 60000]})
    assert parse_read_registers(data, 2) == [5, 60000]
    with pytest.raises(FrameValueError):
        read_registers_request(0, 0)
    with pytest.raises(FrameValueError):
        write_registers_request(0, [])


def test_random_faults_every_request_resolves_correctly() -> None:
    """5% corrupted replies, 2% lost: every answer is right or an honest Timeout."""
    rng = random.Random(7)
    pair = make_pair(retries=3, timeout=0.05)
    ok = 0
    for i in range(400):
        pair.corrupt_next = 1 if rng.random() < 0.05 else 0
        addr = rng.choice((1, 2, 3))
        pair.silent = {addr} if rng.random() < 0.02 else set()
        start, count = rng.randrange(0, 40), rng.randrange(1, 10)
        ev = pair.request(addr, "read_regs", read_req(start, count))
        pair.silent = set()
        if isinstance(ev, ReplyReceived):
            values = parse_read_registers(ev.frame.data, count)
            assert values == [addr * 1000 + start + k for k in range(count)], i
            ok += 1
        else:
            assert isinstance(ev.error, Timeout)
    assert ok >= 390
    assert pair.core.stats.requests == 400
