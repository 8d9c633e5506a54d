"""The pure side: segmenting the wire, filters, directions, the replay book, traffic events."""

from __future__ import annotations

import random

import pytest

from frames.capture import Record, RecordFilter, WireSegmenter, record_from_event, split_bad_run
from frames.codec import encode
from frames.events import CrcErrorSeen, FrameReceived, FrameSent, LinkStateChanged
from frames.frame import Frame
from frames.replay import ReplayBook, infer_directions

from .helpers import GOOD, corrupted, noisy_stream


def segment(data: bytes, cuts: list[int]) -> list[Record]:
    seg = WireSegmenter()
    out: list[Record] = []
    prev = 0
    for i, cut in enumerate([*cuts, len(data)]):
        out += seg.feed(data[prev:cut], float(i))
        prev = cut
    return out + seg.flush(99.0)


@pytest.mark.parametrize("seed", range(20))
def test_every_byte_lands_in_one_record_whatever_the_split(seed: int) -> None:
    data, expected = noisy_stream(seed)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, 30)))
    recs = segment(data, cuts)
    assert b"".join(r.wire for r in recs) == data
    assert [(r.wire, r.status) for r in recs] == expected
    assert [r.frame for r in recs if r.ok] == GOOD


def test_one_byte_at_a_time_matches_one_chunk() -> None:
    data, _ = noisy_stream(3)
    whole = [(r.wire, r.status) for r in segment(data, [])]
    single = [(r.wire, r.status) for r in segment(data, list(range(1, len(data))))]
    assert whole == single


def test_a_long_bad_run_is_cut_at_max_run_and_trailing_junk_flushed() -> None:
    seg = WireSegmenter(max_run=16)
    recs = seg.feed(b"\x01" * 40, 1.0)
    assert [len(r.wire) for r in recs] == [16, 16]
    tail = seg.flush(2.0)
    assert [(len(r.wire), r.status, r.ts) for r in tail] == [(8, "garbage", 1.0)]


def test_split_bad_run_finds_a_corrupted_frame_between_garbage() -> None:
    bad = corrupted(GOOD[0])
    assert split_bad_run(b"\x01\x02" + bad + b"\x03") == [
        (b"\x01\x02", "garbage"),
        (bad, "crc_error"),
        (b"\x03", "garbage"),
    ]


def test_filters_by_address_command_and_error() -> None:
    recs = [Record(0, encode(*f), "ok", "", f) for f in GOOD] + [Record(0, b"\x01", "garbage")]
    by_addr = RecordFilter.parse(addrs=[2])
    assert [r.frame for r in recs if by_addr(r)] == [f for f in GOOD if f.addr == 2]
    by_cmd = RecordFilter.parse(cmds=["read_regs"])
    assert [r.frame for r in recs if by_cmd(r)] == [f for f in GOOD if f.base_cmd == 3]
    errors = RecordFilter.parse(errors=True)
    kept = [r for r in recs if errors(r)]
    assert [r.status for r in kept] == ["ok", "ok", "garbage"]
    assert all(r.frame is None or r.frame.is_error for r in kept)
    assert not any(RecordFilter.parse(errors=False)(r) for r in kept)
    assert all(RecordFilter()(r) for r in recs)


def test_directions_inferred_request_then_reply() -> None:
    req, reply, other = Frame(1, 3, b"\x00\x00\x01"), Frame(1, 3, b"\x01\x05\x00"), Frame(2, 6)
    recs = [Record(0, b"", "ok", "", f) for f in (req, reply, other, other, req)]
    got = [r.direction for r in infer_directions(recs)]
    assert got == ["tx", "rx", "tx", "rx", "tx"]


def test_replay_book_answers_in_recorded_order_then_repeats_the_last() -> None:
    req = Frame(1, 3, b"\x00\x00\x01")
    r1, r2 = Frame(1, 3, b"\x01\x05\x00"), Frame(1, 3, b"\x01\x06\x00")
    bad = Record(10.2, corrupted(r2), "crc_error", "rx")
    recs = [
        Record(10.0, encode(*req), "ok", "tx", req),
        Record(10.1, encode(*r1), "ok", "rx", r1),
        Record(11.0, encode(*req), "ok", "tx", req),
        bad,
        Record(11.5, encode(*r2), "ok", "rx", r2),
    ]
    book = ReplayBook(recs)
    assert book.requests == 2
    first = book.answer(req)
    assert [(round(d, 3), r.frame) for d, r in first] == [(0.1, r1)]
    second = book.answer(req)
    assert [r.status for _, r in second] == ["crc_error", "ok"]
    assert book.answer(req) == second
    assert book.answer(Frame(9, 3)) == []


def test_traffic_events_become_records_with_direction() -> None:
    f = Frame(1, 3, b"\x00")
    assert record_from_event(FrameSent(1.0, f)) == Record(1.0, encode(*f), "ok", "tx", f)
    late = record_from_event(FrameReceived(2.0, f, "late"))
    assert late is not None and (late.direction, late.note) == ("rx", "late")
    crc = record_from_event(CrcErrorSeen(3.0, 2))
    assert crc is not None and (crc.status, crc.wire, crc.note) == ("crc_error", b"", "count=2")
    assert record_from_event(LinkStateChanged(4.0, True)) is None
