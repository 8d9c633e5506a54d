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


# --- the contract: every refusal whole (code, text, id), and the exact edges of each range
# (issue 18). The text is what a client developer reads in the ``error`` message, so a change
# to it is deliberate: update this table with it.

REQ = '"type":"request","bus":"b","addr":1,"cmd":3'
SUB = '"type":"subscribe","topics":["*"]'
TOPIC_FORM = "is not '*', 'BUS/*' or 'BUS/ADDR'"


@pytest.mark.parametrize(
    ("text", "code", "message", "msg_id"),
    [
        ("[]", "bad_message", "a message must be a JSON object", None),
        ("[" * 100_000, "bad_json", "not JSON: nested too deeply", None),
        # a lone surrogate is refused without the id: no UTF-8 reply could carry it
        (
            '{"type":"ping","id":"\\ud800"}',
            "bad_value",
            "strings must be valid Unicode (no lone surrogates)",
            None,
        ),
        (
            '{"type":"ping","x":"\\udfff","id":1}',
            "bad_value",
            "strings must be valid Unicode (no lone surrogates)",
            None,
        ),
        ('{"type":"ping","id":true}', "wrong_type", "'id' must be a string or an integer", None),
        ('{"type":"ping","id":[1]}', "wrong_type", "'id' must be a string or an integer", None),
        (
            '{"type":"ping","id":"' + "i" * 129 + '"}',
            "bad_value",
            "'id' is longer than 128 characters",
            None,
        ),
        (
            '{"type":"ping","id":9007199254740993}',
            "bad_value",
            "'id' must fit a JSON-safe integer",
            None,
        ),
        (
            '{"type":"ping","id":-9007199254740993}',
            "bad_value",
            "'id' must fit a JSON-safe integer",
            None,
        ),
        ('{"id":1}', "missing_field", "'type' is required", 1),
        ('{"type":5,"id":1}', "wrong_type", "'type' must be a string", 1),
        (
            '{"type":"' + "x" * 50 + '","id":2}',
            "unknown_type",
            f"unknown message type {'x' * 40!r}",
            2,
        ),
        ('{"type":"hello","token":5,"id":3}', "wrong_type", "'token' must be a string", 3),
        ('{"type":"refresh","id":4}', "missing_field", "'token' is required", 4),
        ('{"type":"subscribe","id":5}', "missing_field", "'topics' is required", 5),
        (
            '{"type":"unsubscribe","topics":"b/*","id":6}',
            "wrong_type",
            "'topics' must be a list",
            6,
        ),
        (
            '{"type":"subscribe","topics":[3],"id":7}',
            "wrong_type",
            "'topics' must be a list of strings",
            7,
        ),
        (
            '{"type":"unsubscribe","topics":["b/x"],"id":8}',
            "bad_value",
            "topic 'b/x': address must be 0..255 or *",
            8,
        ),
        ("{" + SUB + ',"since":3,"id":9}', "wrong_type", "'since' must be an object", 9),
        ("{" + SUB + ',"since":{"b":3},"id":10}', "wrong_type", "'since.b' must be an object", 10),
        (
            "{" + SUB + ',"since":{"b":{"seq":1}},"id":11}',
            "missing_field",
            "'epoch' is required",
            11,
        ),
        (
            "{" + SUB + ',"since":{"b":{"epoch":1,"seq":"1"}},"id":12}',
            "wrong_type",
            "'seq' must be an integer",
            12,
        ),
        (
            "{" + SUB + ',"since":{"b":{"epoch":1,"seq":-1}},"id":13}',
            "bad_value",
            "'since.b.seq' must be >= 0",
            13,
        ),
        ('{"type":"request","addr":1,"cmd":3,"id":14}', "missing_field", "'bus' is required", 14),
        (
            '{"type":"request","bus":"b","addr":true,"cmd":3,"id":15}',
            "wrong_type",
            "'addr' must be an integer",
            15,
        ),
        (
            '{"type":"request","bus":"b","addr":256,"cmd":3,"id":16}',
            "bad_value",
            "'addr' must be 0..255",
            16,
        ),
        (
            '{"type":"request","bus":"b","addr":-1,"cmd":3,"id":16}',
            "bad_value",
            "'addr' must be 0..255",
            16,
        ),
        (
            '{"type":"request","bus":"b","addr":1,"cmd":[3],"id":17}',
            "wrong_type",
            "'cmd' must be an integer or a string",
            17,
        ),
        (
            '{"type":"request","bus":"b","addr":1,"cmd":128,"id":18}',
            "bad_value",
            "'cmd' must be 0..127 or a command name",
            18,
        ),
        (
            '{"type":"request","bus":"b","addr":1,"cmd":-1,"id":18}',
            "bad_value",
            "'cmd' must be 0..127 or a command name",
            18,
        ),
        ("{" + REQ + ',"data":5,"id":19}', "wrong_type", "'data' must be a string", 19),
        ("{" + REQ + ',"args":[],"id":20}', "wrong_type", "'args' must be an object", 20),
        (
            "{" + REQ + ',"data":"","args":{},"id":21}',
            "bad_value",
            "give either 'data' or 'args', not both",
            21,
        ),
        ("{" + REQ + ',"data":"0g","id":22}', "bad_value", "'data' must be hex", 22),
        (
            "{" + REQ + ',"data":"' + "00" * 256 + '","id":23}',
            "bad_value",
            "'data' is longer than 255 bytes",
            23,
        ),
        (
            "{" + REQ + ',"timeout_s":"1","id":24}',
            "wrong_type",
            "'timeout_s' must be an integer or a number",
            24,
        ),
        (
            "{" + REQ + ',"timeout_s":true,"id":24}',
            "wrong_type",
            "'timeout_s' must be an integer or a number",
            24,
        ),
        ("{" + REQ + ',"timeout_s":0,"id":25}', "bad_value", "'timeout_s' must be in (0, 60]", 25),
        (
            "{" + REQ + ',"timeout_s":60.5,"id":25}',
            "bad_value",
            "'timeout_s' must be in (0, 60]",
            25,
        ),
    ],
)
def test_contract_refusals_carry_code_text_and_id(
    text: str, code: str, message: str, msg_id: object
) -> None:
    with pytest.raises(ContractError) as e:
        c.parse_client_message(text)
    assert (e.value.code, e.value.message, e.value.msg_id) == (code, message, msg_id)


def test_contract_refuses_binary_and_says_what_json_is_wrong() -> None:
    with pytest.raises(ContractError) as e:
        c.parse_client_message(b'{"type":"ping"}')
    assert (e.value.code, e.value.message) == (
        "bad_message",
        "binary messages are not part of the contract",
    )
    with pytest.raises(ContractError) as e:
        c.parse_client_message('{"type":"ping"')
    assert e.value.code == "bad_json"
    assert e.value.message.startswith("not JSON: Expecting ',' delimiter")
    # the parser's own text is cut to 120 characters (an over-long integer gives a long one)
    with pytest.raises(ContractError) as e:
        c.parse_client_message('{"type":"ping","id":' + "1" * 5000 + "}")
    assert e.value.code == "bad_json" and e.value.message.startswith("not JSON: Exceeds the limit")
    assert len(e.value.message) == len("not JSON: ") + 120


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"request","bus":"b","addr":0,"cmd":0}', c.Request("b", 0, 0)),
        (
            '{"type":"request","bus":"b","addr":255,"cmd":127,"data":"'
            + "ff" * 255
            + '","timeout_s":60}',
            c.Request("b", 255, 127, b"\xff" * 255, timeout_s=60.0),
        ),
        (
            '{"type":"request","bus":"b","addr":1,"cmd":"READ","args":{"n":1},"timeout_s":0.5,'
            '"id":"r","data":null}',
            c.Request("b", 1, "READ", None, {"n": 1}, 0.5, "r"),
        ),
        (
            '{"type":"subscribe","topics":["b/0","b/255"],"since":{"b":{"epoch":-1,"seq":0}}}',
            c.Subscribe((c.Topic("b", 0), c.Topic("b", 255)), {"b": c.Position(-1, 0)}),
        ),
        (
            '{"type":"unsubscribe","topics":["*"],"id":"u"}',
            c.Unsubscribe((c.Topic(None, None),), "u"),
        ),
        ('{"type":"refresh","token":"t","id":1}', c.Refresh("t", 1)),
        ('{"type":"hello","token":null}', c.Hello(None)),
        ('{"type":"state","id":2}', c.StateQuery(2)),
        ('{"type":"ping","id":9007199254740992}', c.Ping(2**53)),
        ('{"type":"ping","id":-9007199254740992}', c.Ping(-(2**53))),
        ('{"type":"ping","id":"' + "i" * 128 + '"}', c.Ping("i" * 128)),
        ('{"type":"ping","id":"\\u00e9\\ud83d\\ude00"}', c.Ping("é😀")),  # a valid pair
    ],
)
def test_contract_accepts_the_edges(text: str, expected: object) -> None:
    parsed = c.parse_client_message(text)
    assert parsed == expected
    if isinstance(parsed, c.Request) and parsed.timeout_s is not None:
        assert type(parsed.timeout_s) is float


def test_contract_topics_per_message_default_to_64() -> None:
    topics = ",".join(f'"b/{i}"' for i in range(65))
    with pytest.raises(ContractError) as e:
        c.parse_client_message('{"type":"subscribe","topics":[' + topics + '],"id":1}')
    assert (e.value.code, e.value.message, e.value.msg_id) == (
        "bad_value",
        "at most 64 topics per message",
        1,
    )
    first64 = topics.rsplit(",", 1)[0]
    msg = c.parse_client_message('{"type":"subscribe","topics":[' + first64 + "]}")
    assert isinstance(msg, c.Subscribe) and len(msg.topics) == 64


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("*", c.Topic(None, None)),
        ("b/*", c.Topic("b", None)),
        ("b/0", c.Topic("b", 0)),
        ("b/255", c.Topic("b", 255)),
        ("a.B-c_9/7", c.Topic("a.B-c_9", 7)),
    ],
)
def test_parse_topic_accepts(text: str, topic: c.Topic) -> None:
    assert c.parse_topic(text) == topic
    assert str(topic) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("b", f"topic 'b' {TOPIC_FORM}"),
        ("/1", f"topic '/1' {TOPIC_FORM}"),
        ("b b/1", f"topic 'b b/1' {TOPIC_FORM}"),
        ("b/1/2", "topic 'b/1/2': address must be 0..255 or *"),
        ("b/", "topic 'b/': address must be 0..255 or *"),
        ("b/x", "topic 'b/x': address must be 0..255 or *"),
        ("b/-1", "topic 'b/-1': address must be 0..255 or *"),
        ("b/256", "topic 'b/256': address must be 0..255 or *"),
        ("b/\u0661", "topic 'b/\u0661': address must be 0..255 or *"),  # a non-ASCII digit
    ],
)
def test_parse_topic_refuses_with_the_form(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        c.parse_topic(text)
    assert str(e.value) == message


def test_topic_matches_bus_address_and_bus_level_events() -> None:
    star, bus, addr = c.Topic(None, None), c.Topic("b", None), c.Topic("b", 3)
    assert star.matches("b", 1) and star.matches("c", None)
    assert bus.matches("b", 3) and bus.matches("b", None) and not bus.matches("c", 3)
    assert addr.matches("b", 3) and not addr.matches("b", 4) and not addr.matches("c", 3)
    assert addr.matches("b", None)  # a bus-level event reaches an address's subscriber


def test_dumps_is_compact_utf8_and_refuses_nan() -> None:
    assert c.dumps({"type": "x", "s": "é", "n": [1, 2]}) == '{"type":"x","s":"é","n":[1,2]}'
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            c.dumps({"v": bad})


def test_take_batch_whole_queue_and_split_keep_order_and_bytes() -> None:
    s = Session("s", QueueLimits(batch_messages=4, batch_bytes=1000), now=0.0)
    for i in range(6):
        assert s.offer(f"m{i}")
    assert s.take_batch() == ["m0", "m1", "m2", "m3"]  # over batch_messages: split
    assert s.queued_bytes == 4
    assert s.take_batch() == ["m4", "m5"]  # the rest fits: taken whole
    assert s.queued_bytes == 0 and len(s) == 0
    assert s.take_batch() == []
