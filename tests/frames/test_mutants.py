"""Behaviour pinned by mutation testing (issue 18, docs/testing.md).

Each test here kills mutants that survived the rest of the suite: it states a rule of the public
API exactly (a count, a boundary, an order) where the older tests only checked the happy path.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frames import STANDARD, Frame, FrameFormat, FrameValueError, StreamDecoder, encode
from frames.frame import TaggedFrame
from frames.stream import IdleFlush

FORMATS = [
    FrameFormat(),
    FrameFormat(crc="crc-ccitt-false", crc_byteorder="big", end=0x0D),
    FrameFormat(crc="modbus", crc_byteorder="big", crc_covers_start=True),
    FrameFormat(tagged=True),
    FrameFormat(max_payload=16, end=0x0D),
]
IDS = ["default", "ccitt-end", "covers-start", "tagged", "small-end"]


def stray_header(fmt: FrameFormat, length: int) -> bytes:
    """A start byte and a header declaring ``length`` bytes of payload that never come."""
    return encode(0x31, 0x32, bytes(length), fmt)[: fmt.layout.header_size]


def fr(fmt: FrameFormat, addr: int, cmd: int, data: bytes) -> Frame:
    """The frame the decoder of ``fmt`` returns (tag 0 where the format has one)."""
    return TaggedFrame(addr, cmd, data) if fmt.tagged else Frame(addr, cmd, data)


def feed_bytes(dec: StreamDecoder, data: bytes) -> list[Frame]:
    return [f for b in data for f in dec.feed(bytes([b]))]


# --- lookahead: a stray start byte must give way to an intact frame as soon as it is complete


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_stray_start_gives_way_to_a_shortest_frame_that_ends_the_chunk(fmt: FrameFormat) -> None:
    # The frame after the stray header is the smallest one (no payload) and the chunk ends with
    # it: the lookahead's search window must reach exactly to the last place a frame fits.
    good = encode(1, 2, b"", fmt)
    stray = stray_header(fmt, fmt.max_payload)
    dec = StreamDecoder(fmt)
    assert dec.feed(stray + good) == [fr(fmt, 1, 2, b"")]
    assert dec.pending == 0
    assert dec.stats.abandoned == 1
    assert dec.stats.discarded_bytes == len(stray)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_stray_start_right_before_a_frame(fmt: FrameFormat) -> None:
    # The stray start byte's "header" is the frame's own first bytes; its declared length (the
    # frame's cmd, or tag) runs past the chunk. The frame one byte later must still come out now.
    good = encode(1, 0x0C, b"", fmt, tag=0x0C if fmt.tagged else None)
    dec = StreamDecoder(fmt)
    want = TaggedFrame(1, 0x0C, b"", 0x0C) if fmt.tagged else Frame(1, 0x0C, b"")
    assert dec.feed(bytes([fmt.start]) + good) == [want]
    assert (dec.pending, dec.stats.abandoned, dec.stats.discarded_bytes) == (0, 1, 1)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_lookahead_ignores_an_incomplete_or_invalid_frame_after_a_start(fmt: FrameFormat) -> None:
    # A long frame whose first chunk holds a start byte followed by a *broken* frame (bad CRC,
    # bad end byte) or an unfinished one: the long frame is not given up, and arrives whole.
    inner = bytearray(encode(5, 6, b"xy", fmt))
    inner[-2] ^= 0x40  # a CRC (or end-byte) defect
    payload = b"\x00" + bytes(inner) + b"\x00" * 3
    host = encode(7, 8, payload, fmt)
    cut = 1 + fmt.layout.header_size + len(inner)
    dec = StreamDecoder(fmt)
    assert dec.feed(host[:cut]) == []
    assert dec.pending == cut
    assert dec.feed(host[cut:]) == [fr(fmt, 7, 8, payload)]
    assert dec.stats.abandoned == 0


def test_lookahead_ignores_a_frame_with_the_wrong_end_byte() -> None:
    fmt = FrameFormat(end=0x0D)
    inner = encode(5, 6, b"xy", fmt)[:-1] + b"\x0e"  # CRC right, end byte wrong
    payload = b"\x00" + inner + b"\x00" * 3
    host = encode(7, 8, payload, fmt)
    cut = fmt.layout.header_size + 1 + len(inner)
    dec = StreamDecoder(fmt)
    assert dec.feed(host[:cut]) == []
    assert dec.feed(host[cut:]) == [Frame(7, 8, payload)]


def test_lookahead_off_waits_until_flush() -> None:
    fmt = FrameFormat()
    good = encode(1, 2, b"", fmt)
    dec = StreamDecoder(fmt, lookahead=False)
    assert dec.feed(stray_header(fmt, 200) + good) == []
    assert dec.pending == len(stray_header(fmt, 200) + good)
    assert dec.flush() == [Frame(1, 2, b"")]


# --- every byte is accounted for: a frame, a discarded byte, or still pending


def accounted(dec: StreamDecoder, frames: list[Frame], fmt: FrameFormat) -> int:
    wire = sum(len(encode(f.addr, f.cmd, f.data, fmt, tag=f.tag)) for f in frames)
    return wire + dec.stats.discarded_bytes + dec.pending


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda a, c, d: ("frame", a, c, d),
                st.integers(0, 255),
                st.integers(0, 255),
                st.binary(max_size=12),
            ),
            st.binary(min_size=1, max_size=12).map(lambda b: ("junk", b)),
            st.integers(0, 255).map(lambda n: ("stray", n)),
        ),
        max_size=8,
    ),
    st.sampled_from(range(len(FORMATS))),
    st.booleans(),
)
def test_every_byte_is_a_frame_a_discard_or_pending(
    parts: list[tuple[object, ...]], which: int, one_by_one: bool
) -> None:
    fmt = FORMATS[which]
    wire = b""
    for part in parts:
        if part[0] == "frame":
            _, a, c, d = part
            wire += encode(a, c, d, fmt)  # type: ignore[arg-type]
        elif part[0] == "junk":
            wire += part[1]  # type: ignore[operator]
        else:
            wire += stray_header(fmt, min(part[1], fmt.max_payload))  # type: ignore[type-var]
    dec = StreamDecoder(fmt)
    got = feed_bytes(dec, wire) if one_by_one else dec.feed(wire)
    assert dec.stats.frames == len(got)
    assert accounted(dec, got, fmt) == len(wire)
    got += dec.flush()
    assert dec.pending == 0
    assert dec.stats.frames == len(got)
    assert accounted(dec, got, fmt) == len(wire)


def test_counters_for_each_kind_of_defect() -> None:
    fmt = FrameFormat(max_payload=16, end=0x0D)
    good = encode(1, 2, b"ok", fmt)
    too_long = bytes([0xAA, 1, 2, 17])  # declares more than max_payload
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x01
    bad_end = good[:-1] + b"\x0e"
    junk = b"\x01\x02\x03"
    dec = StreamDecoder(fmt)
    stream = junk + too_long + good + bytes(bad_crc) + bad_end + bad_end + good
    assert dec.feed(stream) == [Frame(1, 2, b"ok")] * 2
    s = dec.stats
    assert (s.frames, s.length_errors, s.crc_errors, s.end_errors) == (2, 1, 1, 2)
    assert s.abandoned == 0
    assert s.discarded_bytes == len(junk) + len(too_long) + 3 * len(good)
    assert s.overflows == 0


def test_a_header_declaring_too_much_is_a_length_error_at_once() -> None:
    fmt = FrameFormat(max_payload=16)
    dec = StreamDecoder(fmt)
    assert dec.feed(bytes([0xAA, 1, 2, 17])) == []  # the whole header, and nothing after it
    assert (dec.stats.length_errors, dec.pending, dec.stats.discarded_bytes) == (1, 0, 4)


def test_flush_counts_every_byte_it_gives_up() -> None:
    dec = StreamDecoder(lookahead=False)
    stray = stray_header(FrameFormat(), 200)
    assert dec.feed(stray + b"\xaa\x01") == []
    assert dec.flush() == []
    assert (dec.stats.abandoned, dec.stats.discarded_bytes) == (2, len(stray) + 2)
    dec.feed(b"\xaa")
    dec.flush()
    assert dec.stats.abandoned == 3


def test_lookahead_finds_the_first_valid_frame_not_the_last_start() -> None:
    good = encode(1, 2, b"")
    dec = StreamDecoder()
    assert dec.feed(stray_header(FrameFormat(), 200) + good + b"\xaa") == [Frame(1, 2, b"")]
    assert dec.pending == 1
    # a second stray start right before the frame: each candidate is tried in turn
    dec = StreamDecoder()
    assert dec.feed(stray_header(FrameFormat(), 200) + b"\xaa" + good) == [Frame(1, 2, b"")]
    assert (dec.pending, dec.stats.abandoned) == (0, 2)


def test_decoder_keeps_its_format_and_default_bound() -> None:
    fmt = FrameFormat(tagged=True)
    dec = StreamDecoder(fmt)
    assert dec.fmt is fmt and dec.max_buffer == 4096 and dec.lookahead is True


def test_a_header_cut_short_waits_and_flush_gives_it_up() -> None:
    dec = StreamDecoder()
    assert dec.feed(b"\x00\xaa\x01") == []
    assert dec.pending == 2  # the junk byte is gone, the partial header kept
    assert dec.stats.discarded_bytes == 1
    assert dec.flush() == []
    assert (dec.pending, dec.stats.abandoned, dec.stats.discarded_bytes) == (0, 1, 3)


def test_flush_returns_the_frames_behind_a_given_up_header() -> None:
    good = encode(1, 2, b"hi")
    dec = StreamDecoder(lookahead=False)
    assert dec.feed(stray_header(FrameFormat(), 250) + good) == []
    assert dec.flush() == [Frame(1, 2, b"hi")]
    assert dec.stats.abandoned == 1
    # flush() is one decision: the next partial frame waits again.
    assert dec.feed(good[:3]) == []
    assert dec.pending == 3
    assert dec.feed(good[3:]) == [Frame(1, 2, b"hi")]


def test_a_new_decoder_waits_for_a_partial_frame() -> None:
    good = encode(1, 2, b"hi")
    for lookahead in (True, False):
        dec = StreamDecoder(lookahead=lookahead)
        assert dec.feed(good[:-1]) == []
        assert dec.pending == len(good) - 1
        assert dec.stats.abandoned == 0
        assert dec.feed(good[-1:]) == [Frame(1, 2, b"hi")]


def test_reset_counts_what_it_forgets() -> None:
    dec = StreamDecoder()
    good = encode(1, 2, b"hi")
    dec.feed(good[:4])
    dec.reset()
    assert dec.pending == 0
    assert dec.stats.discarded_bytes == 4
    dec.feed(good[:2])
    dec.reset()
    assert dec.stats.discarded_bytes == 6
    assert dec.feed(good[4:] + good) == [Frame(1, 2, b"hi")]
    assert dec.stats.discarded_bytes == 6 + len(good) - 4


def test_max_buffer_must_hold_one_whole_frame() -> None:
    fmt = FrameFormat(max_payload=16)
    StreamDecoder(fmt, max_buffer=fmt.layout.max_size)  # exactly one frame: fine
    with pytest.raises(FrameValueError, match=str(fmt.layout.max_size)):
        StreamDecoder(fmt, max_buffer=fmt.layout.max_size - 1)


def test_tagged_frames_keep_their_tag() -> None:
    fmt = FrameFormat(tagged=True)
    dec = StreamDecoder(fmt)
    (frame,) = dec.feed(encode(3, 4, b"ab", fmt, tag=0x77))
    assert isinstance(frame, TaggedFrame)
    assert (frame.addr, frame.cmd, frame.data, frame.tag) == (3, 4, b"ab", 0x77)
    (plain,) = StreamDecoder().feed(encode(3, 4, b"ab"))
    assert type(plain) is Frame


# --- IdleFlush: the inter-frame gap rule, with the time passed in


def test_idle_flush_gives_up_a_partial_frame_at_exactly_the_gap() -> None:
    good = encode(1, 2, b"hi")
    idle = IdleFlush(StreamDecoder(lookahead=False), 0.5)
    assert idle.next_deadline() is None  # nothing held: no timer
    assert idle.tick(100.0) == []
    assert idle.feed(stray_header(FrameFormat(), 200) + good, 10.0) == []
    assert idle.next_deadline() == 10.5
    assert idle.tick(10.49) == []
    assert idle.decoder.pending > 0
    assert idle.tick(10.5) == [Frame(1, 2, b"hi")]
    assert idle.decoder.pending == 0
    assert idle.next_deadline() is None


def test_idle_flush_on_feed_after_a_gap_returns_old_then_new_frames() -> None:
    first = encode(1, 2, b"a")
    second = encode(3, 4, b"b")
    idle = IdleFlush(StreamDecoder(lookahead=False), 0.5)
    assert idle.feed(stray_header(FrameFormat(), 200) + first, 1.0) == []
    # Bytes arriving before the gap extend the wait (the deadline moves with them).
    assert idle.feed(b"", 1.4) == []
    assert idle.next_deadline() == pytest.approx(1.9)
    assert idle.feed(second, 1.9) == [Frame(1, 2, b"a"), Frame(3, 4, b"b")]
    assert idle.decoder.pending == 0


def test_idle_flush_feed_within_the_gap_keeps_the_partial_frame() -> None:
    good = encode(1, 2, b"hi")
    idle = IdleFlush(StreamDecoder(), 0.5)
    assert idle.feed(good[:3], 1.0) == []
    assert idle.feed(good[3:], 1.49) == [Frame(1, 2, b"hi")]


def test_idle_flush_needs_a_positive_gap() -> None:
    IdleFlush(StreamDecoder(), 0.001)
    for bad in (0.0, -1.0):
        with pytest.raises(FrameValueError, match=r"^idle_flush must be > 0$"):
            IdleFlush(StreamDecoder(), bad)


# --- codec and CRC: exact errors, defaults, byte orders


from frames import (  # noqa: E402
    BadEnd,
    BadLength,
    BadStart,
    CrcMismatch,
    TrailingBytes,
    Truncated,
    decode,
    encode_frame,
)
from frames.crc import canonical_name, crc_function  # noqa: E402


def test_encode_defaults_to_no_payload_and_checks_its_ranges() -> None:
    assert encode(1, 2) == encode(1, 2, b"")
    assert decode(encode(1, 2)) == Frame(1, 2, b"")
    assert encode(1, "read_regs") == encode(1, STANDARD.resolve_code("read_regs"))
    with pytest.raises(FrameValueError, match=r"address 256 is not 0\.\.255"):
        encode(256, 2)
    with pytest.raises(FrameValueError, match=r"command 256 is not 0\.\.255"):
        encode(1, 256)
    for addr in (0, 255):  # a good address: the command is what is wrong
        with pytest.raises(FrameValueError, match=r"^command 300 is not 0\.\.255$"):
            encode(addr, 300)
    with pytest.raises(FrameValueError, match="payload of 17 bytes exceeds max_payload 16"):
        encode(1, 2, bytes(17), FrameFormat(max_payload=16))
    with pytest.raises(
        FrameValueError, match=r"^this frame format has no tag \(FrameFormat\(tagged=True\) has\)$"
    ):
        encode(1, 2, b"", tag=3)


def test_encode_frame_puts_a_tag_only_into_a_tagged_format() -> None:
    tagged = TaggedFrame(1, 2, b"x", 9)
    assert encode_frame(tagged) == encode(1, 2, b"x")
    fmt = FrameFormat(tagged=True)
    assert encode_frame(tagged, fmt) == encode(1, 2, b"x", fmt, tag=9)
    assert encode_frame(Frame(1, 2, b"x"), fmt) == encode(1, 2, b"x", fmt, tag=0)


@pytest.mark.parametrize(
    ("wire", "error", "text"),
    [
        (b"", Truncated, "empty input"),
        (b"\x55\x01\x02\x00\x00\x00", BadStart, "first byte 0x55 is not the start byte 0xaa"),
        (b"\xaa\x01\x02", Truncated, "3 bytes is shorter than the smallest frame (6)"),
        (b"\xaa\x01\x02\x05\x00\x00", Truncated, "declared length 5 needs 11 bytes, got 6"),
        (encode(1, 2, b"ab") + b"\x00\x00", TrailingBytes, "2 bytes after the end of the frame"),
    ],
)
def test_decode_errors_say_what_is_wrong(wire: bytes, error: type, text: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(text)}$"):
        decode(wire)


def test_decode_length_and_end_errors_say_what_is_wrong() -> None:
    fmt = FrameFormat(max_payload=4, end=0x0D)
    with pytest.raises(BadLength, match=r"^declared length 5 exceeds max_payload 4$"):
        decode(b"\xaa\x01\x02\x05" + bytes(8), fmt)
    with pytest.raises(BadEnd, match=r"^end byte 0x0e is not 0x0d$"):
        decode(encode(1, 2, b"ok", fmt)[:-1] + b"\x0e", fmt)


@pytest.mark.parametrize(
    "fmt",
    [
        FrameFormat(),
        FrameFormat(crc_byteorder="big"),  # MODBUS sent big-endian: no residue
        FrameFormat(crc="crc-ccitt-false"),  # a plain CRC sent little-endian: no residue
        FrameFormat(crc="crc-ccitt-false", crc_byteorder="big", end=0x0D),
    ],
)
def test_decode_reads_the_crc_in_the_formats_byte_order(fmt: FrameFormat) -> None:
    wire = encode(1, 2, b"abc", fmt)
    assert decode(wire, fmt) == Frame(1, 2, b"abc")
    assert StreamDecoder(fmt).feed(wire) == [Frame(1, 2, b"abc")]
    bad = bytearray(wire)
    bad[4] ^= 0x01  # a payload bit: the CRC carried is the good frame's
    with pytest.raises(CrcMismatch) as info:
        decode(bytes(bad), fmt)
    lay = fmt.layout
    at = lay.header_size + 3
    order = "little" if lay.crc_little else "big"
    assert info.value.received == int.from_bytes(wire[at : at + lay.crc_size], order)
    assert info.value.expected == fmt.crc_function(bytes(bad)[lay.crc_from : at])


def test_crc_names_are_case_and_space_insensitive_aliases() -> None:
    assert canonical_name(" CRC-16/MODBUS ") == "modbus"
    assert canonical_name("Ccitt-False") == "crc-ccitt-false"
    assert canonical_name("XModem") == "xmodem"
    assert crc_function("CRC16-MODBUS")(b"123456789") == 0x4B37


# --- the master's memory of finished transactions: late replies and the guard time


from frames.transaction import OwedReplies, Transaction, default_gap  # noqa: E402

REQ = TaggedFrame(4, 0x55, b"", 5)  # a command with no payload rule: any reply of 4/0x55 fits


def txn(request: Frame = REQ, *, timeout: float = 0.5, outstanding: int = 1) -> Transaction:
    t = Transaction(1, request, b"", timeout, 0)
    t.outstanding = outstanding
    return t


def owed(**kw: float | None) -> OwedReplies:
    opts: dict[str, float | None] = {"timeout": 1.0, "guard": None, "late_window": None}
    opts.update(kw)
    return OwedReplies(STANDARD, **opts)  # type: ignore[arg-type]


def test_default_gap_is_three_and_a_half_characters() -> None:
    assert default_gap(9600) == pytest.approx(3.5 * 10 / 9600)
    assert default_gap(9600, 11) == pytest.approx(3.5 * 11 / 9600)


def test_a_transaction_with_nothing_unanswered_is_owed_nothing() -> None:
    o = owed()
    o.finished(txn(outstanding=0), 10.0)
    assert not o.claim(TaggedFrame(4, 0x55, b"", 5), 10.1)
    assert not o.is_late(TaggedFrame(4, 0x55, b"", 5), 10.1, None)


def test_each_unanswered_attempt_is_claimed_once_within_twice_the_timeout() -> None:
    o = owed()
    o.finished(txn(outstanding=2), 10.0)  # window: 2 x 0.5 s
    reply = TaggedFrame(4, 0x55, b"", 5)
    assert o.claim(reply, 10.99)
    assert o.claim(reply, 10.99)
    assert not o.claim(reply, 10.99)
    o = owed()
    o.finished(txn(), 10.0)
    assert not o.claim(reply, 11.0)  # expired at exactly now + window


def test_an_explicit_late_window_replaces_twice_the_timeout() -> None:
    o = owed(late_window=0.3)
    o.finished(txn(), 10.0)
    assert not o.claim(TaggedFrame(4, 0x55, b"", 5), 10.3)
    o = owed(late_window=0.3)
    o.finished(txn(), 10.0)
    assert o.claim(TaggedFrame(4, 0x55, b"", 5), 10.29)


def test_a_claim_needs_the_same_tag_and_a_fitting_reply() -> None:
    o = owed()
    o.finished(txn(), 10.0)
    assert not o.claim(TaggedFrame(4, 0x55, b"", 6), 10.1)  # another transaction's tag
    assert not o.claim(TaggedFrame(3, 0x55, b"", 5), 10.1)  # another device
    assert o.claim(TaggedFrame(4, 0x55, b"", 5), 10.1)


def test_at_most_max_entries_are_remembered() -> None:
    o = owed()
    first = TaggedFrame(9, 0x55, b"", 1)
    o.finished(txn(first), 10.0)
    for _ in range(64):
        o.finished(txn(), 10.0)
    assert not o.claim(first, 10.1)  # the 65th pushed the first out
    o = owed()
    o.finished(txn(first), 10.0)
    for _ in range(63):
        o.finished(txn(), 10.0)
    assert o.claim(first, 10.1)


def test_the_guard_time_is_the_longer_timeout_unless_set() -> None:
    reply = TaggedFrame(4, 0x55, b"", 7)
    o = owed()  # the master's timeout 1.0 > the request's 0.5
    o.finished(txn(), 10.0)
    assert o.is_late(reply, 10.99, None)
    assert not o.is_late(reply, 11.0, None)
    o = owed(guard=0.2)
    o.finished(txn(), 10.0)
    assert o.is_late(reply, 10.19, None) and not o.is_late(reply, 10.2, None)
    o.reset_guard()
    assert not o.is_late(reply, 10.1, None)


def test_a_fitting_reply_with_another_tag_is_late_while_a_request_waits() -> None:
    o = owed()
    current = txn(TaggedFrame(4, 0x55, b"", 8))
    current.awaiting = True
    assert o.is_late(TaggedFrame(4, 0x55, b"", 7), 10.0, current)
    assert not o.is_late(TaggedFrame(4, 0x55, b"", 8), 10.0, current)  # its own reply
    assert not o.is_late(TaggedFrame(5, 0x55, b"", 7), 10.0, current)  # not a reply to it
    assert not o.is_late(Frame(4, 0x55, b""), 10.0, current)  # untagged: cannot tell
    current.awaiting = False
    o.finished(txn(outstanding=1), 10.0)
    assert o.is_late(Frame(4, 0x55, b""), 10.5, current)  # nothing on the wire: the guard


# --- the master core: refusals, link events, failures with their request


from frames import LinkDown, MasterClosed, QueueFull  # noqa: E402
from frames.events import LinkStateChanged  # noqa: E402
from frames.master import MasterCore, RequestFailed  # noqa: E402


def test_send_request_refusals_say_why() -> None:
    core = MasterCore(max_queue=1)
    with pytest.raises(FrameValueError, match=r"^command 0x83 has the error flag set$"):
        core.send_request(1, 0x83)
    for t, r in ((0.0, 1), (-1.0, 1), (0.5, -1)):
        with pytest.raises(FrameValueError, match=r"^timeout must be > 0 and retries >= 0$"):
            core.send_request(1, 3, b"", timeout=t, retries=r)
    core.send_request(1, 0x55)  # on the wire
    core.send_request(1, 0x55)  # queued: the queue (1) is full now
    with pytest.raises(QueueFull, match=r"^1 requests already waiting for the bus$"):
        core.send_request(1, 0x55)
    core.link_down(0.0)
    with pytest.raises(LinkDown, match=r"^link is down$"):
        core.send_request(1, 0x55)
    core.close(0.0)
    with pytest.raises(MasterClosed, match=r"^master is closed$"):
        core.send_request(1, 0x55)


def test_the_request_goes_out_in_the_masters_format() -> None:
    fmt = FrameFormat(end=0x0D, crc="crc-ccitt-false", crc_byteorder="big")
    core = MasterCore(fmt=fmt)
    core.send_request(7, 0x55)
    assert core.data_to_send() == encode(7, 0x55, b"", fmt)


def test_link_down_fails_the_current_and_queued_requests_and_says_so() -> None:
    core = MasterCore(wall_offset=1000.0)
    a = core.send_request(1, 0x55, b"a", 1.0)
    b = core.send_request(2, 0x55, b"b", 1.0)
    core.events()
    core.link_down(2.0, "usb gone")
    events = core.events()
    assert [type(e) for e in events] == [RequestFailed, RequestFailed, LinkStateChanged]
    fa, fb, down = events
    assert isinstance(fa, RequestFailed) and isinstance(fb, RequestFailed)
    assert (fa.token, fa.request, fa.attempts) == (a, Frame(1, 0x55, b"a"), 1)
    assert (fb.token, fb.request, fb.attempts) == (b, Frame(2, 0x55, b"b"), 0)
    assert str(fa.error) == "link down: usb gone" and isinstance(fa.error, LinkDown)
    assert down == LinkStateChanged(1002.0, False, "usb gone")
    assert core.stats.link_failures == 1
    core.link_down(3.0)  # already down: no second failure, no event
    assert core.stats.link_failures == 1 and core.events() == []
    core.link_up(4.0)
    assert core.events() == [LinkStateChanged(1004.0, True)]
    core.link_up(5.0)
    assert core.events() == []
    core.send_request(1, 0x55, b"", 6.0)
    core.link_down(7.0)
    (failed, down2) = core.events()[-2:]
    assert isinstance(failed, RequestFailed) and str(failed.error) == "link down"
    assert down2 == LinkStateChanged(1007.0, False, "")
    assert core.stats.link_failures == 2


def test_close_fails_what_is_pending_with_master_closed() -> None:
    core = MasterCore()
    token = core.send_request(1, 0x55, b"", 0.0)
    core.events()
    core.close(1.0)
    (failed,) = core.events()
    assert isinstance(failed, RequestFailed) and failed.token == token
    assert isinstance(failed.error, MasterClosed) and str(failed.error) == "master closed"
    core.close(2.0)
    assert core.events() == []
    core.link_up(3.0)  # a closed master stays closed
    assert core.events() == [] and core.closed


def test_cancel_counts_each_cancelled_request() -> None:
    core = MasterCore()
    first = core.send_request(1, 0x55, b"", 0.0)
    queued = [core.send_request(1, 0x55, b"", 0.0) for _ in range(2)]
    assert core.cancel(queued[0], 0.0) and core.cancel(queued[1], 0.0)
    assert core.stats.cancelled == 2
    assert core.cancel(first, 0.0) and core.stats.cancelled == 3
    assert not core.cancel(first, 0.0) and core.stats.cancelled == 3


def test_each_retry_is_counted_and_the_last_timeout_fails() -> None:
    core = MasterCore(timeout=0.1, retries=2)
    core.send_request(1, 0x55, b"", 0.0)
    sent = [core.data_to_send()]
    now = 0.0
    for _ in range(10):
        deadline = core.next_deadline()
        if deadline is None:
            break
        now = deadline
        core.tick(now)
        if out := core.data_to_send():
            sent.append(out)
    assert len(sent) == 3 and core.stats.retries == 2 and core.stats.timeouts == 1
    failed = [e for e in core.events() if isinstance(e, RequestFailed)]
    assert len(failed) == 1 and failed[0].attempts == 3


# --- the standard payloads: the exact ranges, and the reply check


READ_REGS = STANDARD.resolve_code("read_regs")
from frames.payloads import (  # noqa: E402
    MAX_READ_COUNT,
    PayloadError,
    parse_read_registers,
    read_registers_request,
    reply_fits,
    write_register_request,
    write_registers_request,
)


def test_register_payloads_accept_exactly_0_to_65535() -> None:
    for reg in (0, 0xFFFF):
        assert read_registers_request(reg, 1)[:2] == reg.to_bytes(2, "little")
        assert write_register_request(reg, reg) == reg.to_bytes(2, "little") * 2
        assert write_registers_request(reg, [reg])[:2] == reg.to_bytes(2, "little")
    assert read_registers_request(0xFFFF, MAX_READ_COUNT)[2] == MAX_READ_COUNT
    assert write_registers_request(0, [0xFFFF] * MAX_READ_COUNT)[2] == MAX_READ_COUNT
    for bad in (-1, 0x10000):
        with pytest.raises(FrameValueError, match=rf"^register {bad} is not 0\.\.65535$"):
            read_registers_request(bad, 1)
        with pytest.raises(FrameValueError, match=rf"^register {bad} is not 0\.\.65535$"):
            write_registers_request(bad, [1])
        msg = rf"^register {bad} / value 1 must be 0\.\.65535$"
        with pytest.raises(FrameValueError, match=msg):
            write_register_request(bad, 1)
        with pytest.raises(FrameValueError, match=rf"^register 1 / value {bad} must be"):
            write_register_request(1, bad)
        with pytest.raises(FrameValueError, match=r"^register values must be 0\.\.65535$"):
            write_registers_request(1, [1, bad])
    for n in (0, MAX_READ_COUNT + 1):
        with pytest.raises(FrameValueError, match=rf"^register count {n} is not 1\.\."):
            read_registers_request(1, n)
        with pytest.raises(FrameValueError, match=rf"^{n} values is not 1\.\."):
            write_registers_request(1, [0] * n)


def test_read_registers_reply_must_match_its_count() -> None:
    assert parse_read_registers(b"\x01\x34\x12") == [0x1234]
    assert parse_read_registers(b"\x01\x34\x12", 1) == [0x1234]
    for bad, count in ((b"", None), (b"\x02\x34\x12", None), (b"\x01\x34\x12", 2)):
        with pytest.raises(PayloadError, match=rf"^bad read_regs response payload {bad.hex()}$"):
            parse_read_registers(bad, count)
    req = Frame(1, READ_REGS, read_registers_request(0, 2))
    assert reply_fits(req, Frame(1, READ_REGS, b"\x02" + bytes(4)))
    assert not reply_fits(req, Frame(1, READ_REGS, b"\x01" + bytes(4)))  # count byte wrong
    assert not reply_fits(req, Frame(1, READ_REGS, b"\x02" + bytes(2)))  # too short


def test_master_defaults_and_limits() -> None:
    core = MasterCore()
    assert (core.timeout, core.retries, core.turnaround, core.max_queue) == (0.5, 2, 0.05, 1024)
    assert core.char_time == pytest.approx(10 / 115200)
    assert core.gap == pytest.approx(3.5 * 10 / 115200)
    assert core.idle_flush == 0.005  # the floor: the gap at 115200 Bd is shorter
    assert core.closed is False
    assert MasterCore(baudrate=1, idle_flush=0.2).idle_flush == 0.2
    MasterCore(
        baudrate=1, timeout=0.001, retries=0, turnaround=0.0, max_queue=1, guard=0.0, gap=0.0
    )  # every bound itself is allowed
    with pytest.raises(FrameValueError, match=r"^baudrate must be positive$"):
        MasterCore(baudrate=0)
    limits = r"^timeout must be > 0, retries/turnaround >= 0, max_queue >= 1$"
    for bad in ({"timeout": 0.0}, {"retries": -1}, {"turnaround": -0.1}, {"max_queue": 0}):
        with pytest.raises(FrameValueError, match=limits):
            MasterCore(**bad)  # type: ignore[arg-type]
    with pytest.raises(FrameValueError, match=r"^guard must be >= 0$"):
        MasterCore(guard=-0.1)
    with pytest.raises(FrameValueError, match=r"^gap must be >= 0$"):
        MasterCore(gap=-0.1)


from frames.events import CrcErrorSeen, ReplyReceived  # noqa: E402


def test_echoes_are_dropped_and_counted_each_time() -> None:
    core = MasterCore(discard_echo=True)
    for n in (1, 2):
        token = core.send_request(4, 0x55, b"q", float(n))
        wire = core.data_to_send()
        core.receive_data(wire, n + 0.01)  # our own request, echoed by the line
        assert core.stats.echoes == n
        core.receive_data(encode(4, 0x55, b"r"), n + 0.02)
        replies = [e for e in core.events() if isinstance(e, ReplyReceived)]
        assert [(r.token, r.frame) for r in replies] == [(token, Frame(4, 0x55, b"r"))]
        assert replies[0].rtt == pytest.approx(0.02) and replies[0].attempts == 1


def test_late_replies_are_counted_each_time() -> None:
    core = MasterCore(timeout=0.1, retries=0)
    for n in (1, 2):
        core.send_request(4, 0x55, b"", 10.0 * n)
        core.data_to_send()
        deadline = core.next_deadline()
        assert deadline is not None
        core.tick(deadline)  # timed out: the reply is owed
        core.receive_data(encode(4, 0x55, b""), deadline + 0.05)
        assert core.stats.late == n and core.stats.timeouts == n


def test_a_damaged_reply_is_reported_with_the_wall_clock_time() -> None:
    core = MasterCore(wall_offset=500.0)
    core.send_request(4, 0x55, b"", 1.0)
    core.data_to_send()
    core.events()
    bad = bytearray(encode(4, 0x55, b"x"))
    bad[-1] ^= 0xFF
    core.receive_data(bytes(bad), 1.01)
    seen = [e for e in core.events() if isinstance(e, CrcErrorSeen)]
    assert seen == [CrcErrorSeen(501.01, 1)]
    assert core.stats.crc_errors == 1
