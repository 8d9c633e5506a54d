"""MasterCore rules pinned by mutation testing (issue 18, docs/testing.md).

Each test drives the public API (``send_request``, ``receive_data``, ``tick``, ``cancel``,
``next_deadline``, the events and the stats) with a fake clock, and states one rule exactly: when
a retry goes out, what counts as noise, which frame is a reply and which is late, what each event
and counter says.
"""

from __future__ import annotations

import pytest

from frames import Command, CommandRegistry, DeviceError, Frame, FrameFormat, encode
from frames.events import CrcErrorSeen, FrameReceived, FrameSent
from frames.master import MasterCore, ReplyReceived, RequestFailed, write_register_request

# A small max_payload makes a header that declares too much (a length error) easy to produce.
FMT16 = FrameFormat(max_payload=16)


def kinds(core: MasterCore) -> list[str]:
    return [e.kind for e in core.events() if isinstance(e, FrameReceived)]


def damaged(wire: bytes, at: int) -> bytes:
    out = bytearray(wire)
    out[at] ^= 0x40
    return bytes(out)


def send(core: MasterCore, now: float = 0.0, data: bytes = b"") -> tuple[int, bytes, float]:
    """A request to 4/0x55 sent at ``now``: its token, its wire bytes and the next deadline."""
    token = core.send_request(4, 0x55, data, now)
    wire = core.data_to_send()
    deadline = core.next_deadline()
    assert deadline is not None
    return token, wire, deadline


def test_master_keeps_its_format_and_an_idle_master_has_no_deadline() -> None:
    fmt = FrameFormat(tagged=True)
    core = MasterCore(fmt=fmt)
    assert core.fmt is fmt
    assert core.next_deadline() is None


def test_set_baudrate_takes_a_fixed_idle_flush() -> None:
    core = MasterCore()
    core.set_baudrate(9600, idle_flush=0.3)
    assert core.idle_flush == 0.3
    core.set_baudrate(9600)
    assert core.idle_flush == 0.005  # from the baud rate again: the floor


def test_a_request_without_a_time_is_sent_at_time_zero() -> None:
    core = MasterCore(wall_offset=100.0, timeout=0.5)
    core.send_request(1, 0x55)
    wire = core.data_to_send()
    assert core.events() == [FrameSent(100.0, Frame(1, 0x55, b""))]
    assert core.next_deadline() == pytest.approx(len(wire) * 10 / 115200 + 0.5)


@pytest.mark.parametrize(("after", "kind"), [(0.04, "late"), (0.06, "unexpected")])
def test_late_window_is_how_long_a_timed_out_request_is_owed_a_reply(
    after: float, kind: str
) -> None:
    core = MasterCore(timeout=0.1, retries=0, guard=0.0, late_window=0.05)
    core.send_request(4, 0x55, b"", 0.0)
    deadline = core.next_deadline()
    assert deadline is not None
    core.tick(deadline)
    core.events()
    core.receive_data(encode(4, 0x55, b""), deadline + after)
    assert kinds(core) == [kind]


def test_an_idle_flush_reports_the_crc_error_it_uncovers_with_its_time() -> None:
    # A stray header declares 250 bytes; behind it a damaged frame. Only giving the header up
    # (after idle_flush seconds of silence) reaches the damaged frame and counts its CRC error.
    bad = damaged(encode(4, 0x55, b"x"), -1)
    stray = bytes([0xAA, 0x31, 0x32, 250])
    for via_tick in (True, False):
        core = MasterCore(wall_offset=1000.0, idle_flush=0.01)
        core.receive_data(stray + bad, 1.0)
        assert core.events() == [] and core.stats.crc_errors == 0
        flush_at = core.next_deadline()
        assert flush_at == pytest.approx(1.01)
        assert flush_at is not None
        if via_tick:
            core.tick(flush_at)
        else:
            core.receive_data(b"\x00", flush_at)  # the next bytes come after the silence
        (seen,) = core.events()
        assert isinstance(seen, CrcErrorSeen)
        assert seen.ts == pytest.approx(flush_at + 1000.0) and seen.count == 1
        assert core.stats.crc_errors == 1


def test_next_deadline_is_the_earlier_of_the_timeout_and_the_idle_flush() -> None:
    for idle_flush, first in ((0.5, "timeout"), (0.01, "flush")):
        core = MasterCore(timeout=0.1, idle_flush=idle_flush, gap=0.001)
        core.send_request(4, 0x55, b"", 0.0)
        end = len(core.data_to_send()) * 10 / 115200
        core.receive_data(b"\xaa\x04", 0.01)  # a partial header is held
        want = end + 0.1 if first == "timeout" else 0.01 + idle_flush
        assert core.next_deadline() == pytest.approx(want)


NOISE = {
    "junk": b"\x13\x37",
    # a start byte whose "header" declares 12 bytes, then another slave's whole frame: the
    # start byte is given up (abandoned, one byte discarded)
    "stray start": b"\xaa" + encode(9, 0x0C, b"", FMT16),
    # the same, but the "header" declares 0x55 bytes: a length error (one byte discarded)
    "length error": b"\xaa" + encode(9, 0x55, b"", FMT16),
    "crc error": damaged(encode(4, 0x55, b"", FMT16), -1),
    "the addressed slave says something unusable": encode(4, 0x56, b"", FMT16),
}


@pytest.mark.parametrize("noise", NOISE.values(), ids=NOISE.keys())
def test_noise_during_a_wait_resends_once_the_line_is_quiet(noise: bytes) -> None:
    core = MasterCore(fmt=FMT16, gap=0.001, timeout=0.5, retries=1)
    core.send_request(4, 0x55, b"", 0.0)
    wire = core.data_to_send()
    core.receive_data(noise, 0.01)
    assert core.next_deadline() == pytest.approx(0.011)  # the gap after the noise
    core.tick(0.0105)
    assert core.data_to_send() == b""
    core.tick(0.011)
    assert core.data_to_send() == wire and core.stats.retries == 1


def test_another_slaves_frame_is_no_reason_to_resend() -> None:
    core = MasterCore(gap=0.001, timeout=0.5, retries=1)
    core.send_request(4, 0x55, b"", 0.0)
    core.data_to_send()
    core.receive_data(encode(9, 0x55, b""), 0.01)
    assert kinds(core) == ["unexpected"]
    core.tick(0.1)
    assert core.data_to_send() == b"" and core.stats.retries == 0


def test_noise_while_idle_is_no_event_and_no_reason_to_resend_the_next_request() -> None:
    core = MasterCore(gap=0.001, timeout=0.5)
    core.receive_data(b"\x13\x37", 1.0)
    assert core.events() == [] and core.stats.crc_errors == 0
    core.send_request(4, 0x55, b"", 2.0)
    core.data_to_send()
    core.tick(2.1)
    assert core.data_to_send() == b"" and core.stats.retries == 0


def test_every_spoiled_attempt_is_resent_early_until_the_retries_run_out() -> None:
    core = MasterCore(gap=0.001, timeout=0.5, retries=2)
    token = core.send_request(4, 0x55, b"", 0.0)
    wire = core.data_to_send()
    now = 0.0
    for n in (1, 2):
        core.receive_data(b"\x13", now + 0.01)
        free = core.next_deadline()
        assert free == pytest.approx(now + 0.011)
        assert free is not None
        now = free
        core.tick(now)
        assert core.data_to_send() == wire and core.stats.retries == n
    core.receive_data(b"\x13", now + 0.01)  # the last attempt spoiled too: no retry left
    timeout = core.next_deadline()
    assert timeout == pytest.approx(now + len(wire) * 10 / 115200 + 0.5)
    assert timeout is not None
    core.tick(timeout)
    assert core.data_to_send() == b""
    failed = [e for e in core.events() if isinstance(e, RequestFailed)]
    assert [(f.token, f.attempts) for f in failed] == [(token, 3)]
    assert (core.stats.retries, core.stats.timeouts) == (2, 1)


def test_a_retry_due_while_the_line_is_busy_goes_out_when_it_is_free() -> None:
    core = MasterCore(gap=0.01, timeout=0.1, retries=1)
    _token, wire, deadline = send(core, 0.0)
    core.receive_data(encode(9, 0x55, b""), deadline - 0.001)  # another slave talks
    core.tick(deadline)
    assert core.data_to_send() == b""  # the retry is due, the line is not quiet yet
    free = core.next_deadline()
    assert free == pytest.approx(deadline + 0.009)
    assert free is not None
    core.tick(free)
    assert core.data_to_send() == wire


def test_cancelling_a_retry_that_waits_for_the_line_frees_the_bus() -> None:
    core = MasterCore(gap=0.01, timeout=0.1, retries=1)
    token, _wire, deadline = send(core, 0.0)
    core.receive_data(encode(9, 0x55, b""), deadline - 0.001)
    core.tick(deadline)
    assert core.cancel(token, deadline)
    assert core.pending == 0 and core.next_deadline() is None
    core.tick(deadline + 0.05)
    assert core.data_to_send() == b""
    core.receive_data(encode(4, 0x55, b""), deadline + 0.06)  # its reply still comes: late
    assert kinds(core) == ["unexpected", "late"]


def test_a_reply_to_each_attempt_the_first_completes_the_second_is_late() -> None:
    core = MasterCore(timeout=0.1, retries=1, gap=0.001)
    token, _wire, deadline = send(core, 0.0)
    core.tick(deadline)
    assert core.data_to_send()  # the retry: two attempts on the wire
    core.receive_data(encode(4, 0x55, b""), deadline + 0.01)
    core.receive_data(encode(4, 0x55, b""), deadline + 0.02)
    events = core.events()
    assert [e.kind for e in events if isinstance(e, FrameReceived)] == ["reply", "late"]
    assert [e.token for e in events if isinstance(e, ReplyReceived)] == [token]
    assert core.stats.late == 1


def test_replies_to_a_cancelled_request_are_late_each_time() -> None:
    core = MasterCore(timeout=0.1, retries=1, gap=0.001)
    for n in (1, 2):
        token, _wire, deadline = send(core, 10.0 * n)
        core.tick(deadline)
        assert core.data_to_send()  # retried: two attempts on the wire
        assert core.cancel(token, deadline)
        core.receive_data(encode(4, 0x55, b""), deadline + 0.01)  # one is still owed after it
        core.receive_data(encode(4, 0x55, b""), deadline + 0.02)
        assert kinds(core) == ["late", "late"]
        assert core.stats.late == 2 * n and core.pending == 0


def test_traffic_events_carry_the_wall_clock_time_and_replies_are_counted() -> None:
    core = MasterCore(wall_offset=500.0)
    for n in (1, 2):
        core.send_request(4, 0x55, b"", float(n))
        core.data_to_send()
        core.events()
        core.receive_data(encode(4, 0x55, b"r"), n + 0.25)
        received, _reply = core.events()
        assert received == FrameReceived(n + 500.25, Frame(4, 0x55, b"r"), "reply")
    assert core.stats.replies == 2
    core.receive_data(encode(9, 0x55, b""), 3.5)
    assert core.events() == [FrameReceived(503.5, Frame(9, 0x55, b""), "unexpected")]


def test_broadcasts_are_counted_and_nothing_that_arrives_completes_one() -> None:
    core = MasterCore(turnaround=0.05, gap=0.001, retries=0)
    for n in (1, 2):
        token = core.send_request(0, "write_reg", write_register_request(1, 7), float(n))
        wire = core.data_to_send()
        core.receive_data(wire, n + 0.001)  # our own broadcast, echoed (no echo filter)
        deadline = core.next_deadline()
        assert deadline is not None
        core.tick(deadline)
        events = core.events()
        assert [e.kind for e in events if isinstance(e, FrameReceived)] == ["unexpected"]
        (done,) = [e for e in events if isinstance(e, ReplyReceived)]
        request = Frame(0, 0x06, write_register_request(1, 7))
        assert (done.token, done.request, done.frame) == (token, request, Frame(0, 0x06, b""))
        assert done.rtt == pytest.approx(deadline - n) and done.attempts == 1
        assert core.stats.broadcasts == n
    assert core.stats.replies == 0


def test_crc_and_end_byte_errors_are_counted_per_occurrence() -> None:
    fmt = FrameFormat(end=0x0D)
    core = MasterCore(fmt=fmt)
    wire = encode(9, 0x55, b"x", fmt)
    bad_crc, bad_end = damaged(wire, -2), damaged(wire, -1)
    core.receive_data(bad_crc, 1.0)
    core.receive_data(bad_end, 2.0)
    core.receive_data(bad_crc + bad_end, 3.0)
    seen = [e for e in core.events() if isinstance(e, CrcErrorSeen)]
    assert seen == [CrcErrorSeen(1.0, 1), CrcErrorSeen(2.0, 1), CrcErrorSeen(3.0, 2)]
    assert core.stats.crc_errors == 4


def test_with_the_echo_filter_a_reply_that_comes_first_is_still_the_reply() -> None:
    core = MasterCore(discard_echo=True)
    token = core.send_request(4, 0x55, b"q", 1.0)
    core.data_to_send()
    core.receive_data(encode(4, 0x55, b"r"), 1.01)  # this line does not echo
    assert [e.token for e in core.events() if isinstance(e, ReplyReceived)] == [token]
    assert core.stats.echoes == 0


def test_tagged_a_fitting_reply_with_another_tag_is_late() -> None:
    fmt = FrameFormat(tagged=True)
    core = MasterCore(fmt=fmt)
    core.send_request(4, 0x55, b"", 1.0)  # tag 0
    core.data_to_send()
    core.events()
    core.receive_data(encode(4, 0x55, b"", fmt, tag=7), 1.01)
    assert kinds(core) == ["late"] and core.stats.late == 1


def test_replies_are_checked_with_the_masters_registry() -> None:
    # 0x03 is read_regs in STANDARD (a 3-byte request wants 1 + 2 * count bytes back); here it
    # is a command of this registry with no reply rule.
    registry = CommandRegistry([Command(0x03, "get_blob")])
    core = MasterCore(registry=registry)
    token = core.send_request(4, 0x03, b"abc", 1.0)
    core.data_to_send()
    core.receive_data(encode(4, 0x03, b"xyz"), 1.01)
    replies = [e for e in core.events() if isinstance(e, ReplyReceived)]
    assert [(r.token, r.frame.data) for r in replies] == [(token, b"xyz")]


def test_late_replies_are_recognised_with_the_masters_registry() -> None:
    registry = CommandRegistry([Command(0x03, "get_blob")])
    # owed by a timed-out request (no guard time: only the owed entry makes it late)
    core = MasterCore(registry=registry, timeout=0.1, retries=0, guard=0.0)
    core.send_request(4, 0x03, b"abc", 0.0)
    deadline = core.next_deadline()
    assert deadline is not None
    core.tick(deadline)
    core.events()
    core.receive_data(encode(4, 0x03, b"xyz"), deadline + 0.01)
    assert kinds(core) == ["late"]
    # tagged: it fits the request on the wire but carries another transaction's tag
    fmt = FrameFormat(tagged=True)
    core = MasterCore(fmt=fmt, registry=registry)
    core.send_request(4, 0x03, b"abc", 1.0)  # tag 0
    core.events()
    core.receive_data(encode(4, 0x03, b"xyz", fmt, tag=9), 1.01)
    assert kinds(core) == ["late"]


@pytest.mark.parametrize(("data", "code"), [(b"\x02", 2), (b"", 0)])
def test_an_error_reply_fails_the_request_with_its_code(data: bytes, code: int) -> None:
    core = MasterCore()
    token = core.send_request(4, 0x55, b"q", 1.0)
    core.receive_data(encode(4, 0xD5, data), 1.01)  # no code byte: code 0
    (failed,) = [e for e in core.events() if isinstance(e, RequestFailed)]
    assert (failed.token, failed.request, failed.attempts) == (token, Frame(4, 0x55, b"q"), 1)
    assert isinstance(failed.error, DeviceError)
    assert (failed.error.code, failed.error.addr, failed.error.cmd) == (code, 4, 0x55)


def test_a_timeout_fails_the_request_it_belongs_to() -> None:
    core = MasterCore(timeout=0.1, retries=0)
    token = core.send_request(4, 0x55, b"q", 1.0)
    deadline = core.next_deadline()
    assert deadline is not None
    core.tick(deadline)
    (failed,) = [e for e in core.events() if isinstance(e, RequestFailed)]
    assert (failed.token, failed.request, failed.attempts) == (token, Frame(4, 0x55, b"q"), 1)
    assert str(failed.error) == "no reply from addr 4 to cmd 0x55 after 1 attempt(s) of 0.1s"
