"""The pure modules: history, session queue, fan-out index, scheduler, device book, contract."""

from __future__ import annotations

import pytest

from bridge import contract as c
from bridge.devices import DeviceBook
from bridge.errors import ContractError
from bridge.fanout import InMemoryHub
from bridge.history import History, make_epoch
from bridge.schedule import POLL, PollJob, Scheduler
from bridge.session import QueueLimits, Session
from frames.devicemap import load_device_map


def test_history_bounded_by_count_and_ttl() -> None:
    h = History(7, size=3, ttl_s=10)
    for t in range(5):
        seq = h.next_seq()
        h.append(seq, float(t), None, f"m{seq}", now=float(t))
    assert len(h) == 3 and h.oldest_seq == 3
    assert [e.text for e in h.since(7, 2, now=5.0) or []] == ["m3", "m4", "m5"]
    assert h.since(7, 1, now=5.0) is None  # seq 2 is gone: all or nothing
    assert h.since(8, 4, now=5.0) is None  # another epoch
    assert h.since(7, 5, now=5.0) == []
    assert h.since(7, 9, now=5.0) is None  # from the future
    assert h.since(7, 4, now=14.5) is None  # m5 (ts 4) expired
    assert make_epoch(1.5, 1234) == 1_500_234


def test_session_queue_bounds_and_batches() -> None:
    wakes: list[int] = []
    s = Session(
        "s",
        QueueLimits(max_messages=5, max_bytes=100, batch_messages=3),
        0.0,
        wake=lambda: wakes.append(1),
    )
    assert all(s.offer("x" * 10) for _ in range(5))
    assert len(wakes) == 1  # only the empty → non-empty transition wakes the writer
    assert s.take_batch() == ["x" * 10] * 3
    assert len(s) == 2 and s.queued_bytes == 20
    assert s.offer("y" * 81) is False and s.overflowed and len(s) == 0
    assert s.dropped == 3
    assert c.batch_text(["{}", "[]"]) == "[{},[]]" and c.batch_text(["{}"]) == "{}"


async def test_hub_fanout_each_session_once_and_bus_events_to_all_bus_subscribers() -> None:
    hub = InMemoryHub()
    hub.add_bus("b", 1)
    a, b, d = (Session(n, QueueLimits(), 0.0) for n in "abd")
    await hub.subscribe(a, [c.parse_topic("*"), c.parse_topic("b/1")], {}, 0.0)
    await hub.subscribe(b, [c.parse_topic("b/1"), c.parse_topic("b/2")], {}, 0.0)
    await hub.subscribe(d, [c.parse_topic("b/*"), c.parse_topic("b/3")], {}, 0.0)
    hub.publish("b", {"type": "frame", "addr": 1, "ts": 0.0}, 0.0)
    hub.publish("b", {"type": "event", "event": "bus_up", "ts": 0.0}, 0.0)
    hub.publish("b", {"type": "frame", "addr": 3, "ts": 0.0}, 0.0)
    assert (len(a), len(b), len(d)) == (3, 2, 3)
    assert hub.stats.deliveries == 8
    hub.detach(a)
    hub.publish("b", {"type": "frame", "addr": 1, "ts": 0.0}, 0.0)
    assert len(a) == 3 and hub.subscribers() == 2


def test_scheduler_alternates_equal_sources_and_skips_missed_slots() -> None:
    job = PollJob(1, 3, b"", 1.0)
    s = Scheduler([job], now=0.0)
    assert s.pick(0.0, ["c"]) == "c"  # nobody used the wire yet: the client first
    assert s.pick(0.0, ["c"]) == POLL  # equal usage: the one served longer ago
    assert s.pick(0.0, ["c"]) == "c"
    s.done(job, now=5.5)  # stalled for 5 s: next slot is after now, no burst of catch-up polls
    assert job.next_due == 6.5 and s.due(6.0) is None and s.pick(6.0, []) is None


def test_device_book_reports_changes_once_and_names_values() -> None:
    profile = load_device_map("thermo")
    book = DeviceBook([(1, "boiler", "thermo")], {1: {r.address: r for r in profile.registers}})
    assert book.seen(1, 1.0) == "device_online" and book.seen(1, 2.0) is None
    assert book.missed(1) == "device_offline" and book.missed(1) is None
    named = book.registers(1, 0, [2150], ts=3.0)
    assert named == {profile.registers[0].name: profile.registers[0].decode([2150])}
    snap = book.snapshot()["1"]
    assert snap["online"] is False and snap["registers"] == {"0": 2150}


def test_device_book_asks_identity_once_per_online_spell() -> None:
    book = DeviceBook([(1, "", None)])
    assert not book.needs_identity(1)  # not polled yet
    book.seen(1, 1.0)
    assert book.needs_identity(1)
    book.identified(1, {})  # IDENTIFY refused or ignored
    assert not book.needs_identity(1)  # not again on every poll
    book.seen(1, 2.0)
    assert not book.needs_identity(1)
    book.missed(1)
    book.seen(1, 3.0)  # back online: one more try
    assert book.needs_identity(1)
    book.identified(1, {"model": "M", "firmware": [1, 0, 0], "uid": 7})
    book.missed(1)
    book.seen(1, 4.0)
    assert not book.needs_identity(1)  # a known identity is kept
    assert book.snapshot()["1"]["model"] == "M"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"ping"}', c.Ping()),
        ('{"type":"hello","token":"t","id":3}', c.Hello("t", 3)),
        (
            '{"type":"subscribe","topics":["*","b/2","b/*"],"since":{"b":{"epoch":1,"seq":2}}}',
            c.Subscribe(
                (c.Topic(None, None), c.Topic("b", 2), c.Topic("b", None)),
                {"b": c.Position(1, 2)},
            ),
        ),
        (
            '{"type":"request","bus":"b","addr":1,"cmd":3,"data":"0001"}',
            c.Request("b", 1, 3, b"\x00\x01"),
        ),
    ],
)
def test_contract_parses(text: str, expected: object) -> None:
    assert c.parse_client_message(text) == expected


def test_contract_rejects_bool_as_int_and_both_data_and_args() -> None:
    with pytest.raises(ContractError) as e:
        c.parse_client_message('{"type":"request","bus":"b","addr":true,"cmd":3}')
    assert e.value.code == "wrong_type"
    with pytest.raises(ContractError) as e:
        c.parse_client_message('{"type":"request","bus":"b","addr":1,"cmd":3,"data":"","args":{}}')
    assert e.value.code == "bad_value"


def test_take_batch_whole_queue_and_split_keep_order_and_bytes() -> None:
    s = Session("s", QueueLimits(batch_messages=4, batch_bytes=1000), now=0.0)
    for i in range(6):
        assert s.offer(f"m{i}")
    assert s.take_batch() == ["m0", "m1", "m2", "m3"]  # over batch_messages: split
    assert s.queued_bytes == 4
    assert s.take_batch() == ["m4", "m5"]  # the rest fits: taken whole
    assert s.queued_bytes == 0 and len(s) == 0
    assert s.take_batch() == []
