"""Behaviour pinned by mutation testing (issue 18, docs/testing.md).

Each test kills mutants that survived the rest of the suite, through the public API: the hub's
``subscribe(since=...)`` for the resume rules, the store and history for numbering and bounds.
"""

from __future__ import annotations

import json

import pytest

from bridge import contract as c
from bridge.contract import Position
from bridge.fanout import InMemoryHub
from bridge.history import History, make_epoch
from bridge.session import QueueLimits, Session
from bridge.store import MemoryStore, Stamped

EPOCH = 41


def hub_with(n: int, *, size: int = 16, ttl: float = 100.0) -> InMemoryHub:
    hub = InMemoryHub(history_size=size, history_ttl_s=ttl)
    hub.add_bus("b", EPOCH)
    for i in range(n):
        hub.publish("b", {"type": "frame", "addr": 1, "ts": float(i), "n": i + 1}, float(i))
    return hub


async def resume(
    hub: InMemoryHub, seq: int, *, epoch: int = EPOCH, now: float = 10.0
) -> tuple[bool, list[int]]:
    s = Session("s", QueueLimits(), now)
    res = await hub.subscribe(s, [c.parse_topic("b/*")], {"b": Position(epoch, seq)}, now)
    return res.recovered["b"], [json.loads(t)["seq"] for t in res.replay]


# --- the resume rules: all or nothing, never "recovered" with a hole or from the future


@pytest.mark.parametrize("ahead", [1, 2, 50])
async def test_resume_from_a_seq_in_the_future_is_not_recovered(ahead: int) -> None:
    # A client claiming seqs this bus never published (a stale tab after a restart that reused
    # the epoch, a bug) must be told recovered: false, never "recovered, nothing to replay".
    hub = hub_with(5)
    assert await resume(hub, 5 + ahead) == (False, [])
    assert hub.stats.resumes_lost == 1 and hub.stats.resumes_recovered == 0


async def test_resume_from_the_future_of_an_empty_bus_is_not_recovered() -> None:
    assert await resume(hub_with(0), 1) == (False, [])


async def test_resume_at_the_head_is_recovered_with_nothing_to_replay() -> None:
    hub = hub_with(5)
    assert await resume(hub, 5) == (True, [])
    assert hub.stats.resumes_recovered == 1 and hub.stats.resumes_lost == 0
    assert await resume(hub_with(0), 0) == (True, [])


@pytest.mark.parametrize("seq", [0, 1, 3, 4])
async def test_resume_replays_exactly_what_was_missed(seq: int) -> None:
    assert await resume(hub_with(5), seq) == (True, list(range(seq + 1, 6)))


async def test_resume_from_a_negative_seq_is_not_recovered() -> None:
    assert await resume(hub_with(5), -1) == (False, [])


async def test_resume_with_another_epoch_is_not_recovered() -> None:
    hub = hub_with(5)
    assert await resume(hub, 3, epoch=EPOCH + 1) == (False, [])
    assert await resume(hub, 0, epoch=EPOCH - 1) == (False, [])


async def test_resume_needs_the_first_missed_message_still_kept() -> None:
    hub = hub_with(6, size=4)  # keeps seqs 3..6
    assert await resume(hub, 2) == (True, [3, 4, 5, 6])  # oldest == seq + 1: still whole
    assert await resume(hub, 1) == (False, [])  # seq 2 is gone: a hole, so nothing


async def test_resume_after_everything_expired_is_not_recovered() -> None:
    hub = hub_with(3, ttl=5.0)  # ts 0, 1, 2
    assert await resume(hub, 1, now=6.0) == (True, [2, 3])  # ts 1 is the limit: still kept ..
    assert await resume(hub, 1, now=6.5) == (False, [])  # .. and then seq 2 (ts 1) expired
    assert await resume(hub, 2, now=100.0) == (False, [])  # all expired, seq 3 unknown
    assert await resume(hub, 3, now=100.0) == (True, [])  # but the head is still the head


# --- the history ring itself


def test_history_expires_strictly_older_than_the_ttl() -> None:
    h = History(1, size=10, ttl_s=5.0)
    for t in (0.0, 1.0, 2.0):
        h.append(h.next_seq(), t, None, "x", now=t)
    h.expire(6.0)  # limit 1.0: ts 0 goes, ts 1 (== limit) stays
    assert (len(h), h.oldest_seq) == (2, 2)
    h.expire(100.0)
    assert (len(h), h.oldest_seq) == (0, None)


def test_history_of_size_zero_keeps_nothing_but_still_numbers() -> None:
    h = History(1, size=0, ttl_s=5.0)
    assert [h.next_seq() for _ in range(3)] == [1, 2, 3]
    h.append(3, 0.0, None, "x", now=0.0)
    assert len(h) == 0
    assert h.since(1, 3, now=0.0) == []
    assert h.since(1, 2, now=0.0) is None


def test_history_size_bound_drops_the_oldest_one_at_a_time() -> None:
    h = History(1, size=2, ttl_s=100.0)
    for _ in range(3):
        h.append(h.next_seq(), 0.0, 7, "x", now=0.0)
    assert (len(h), h.oldest_seq) == (2, 2)
    entries = h.since(1, 1, now=0.0)
    assert entries is not None and [(e.seq, e.addr) for e in entries] == [(2, 7), (3, 7)]


@pytest.mark.parametrize(("size", "ttl"), [(-1, 1.0), (1, -0.5)])
def test_history_refuses_negative_bounds(size: int, ttl: float) -> None:
    with pytest.raises(ValueError, match=r"^history size and ttl must be >= 0$"):
        History(1, size=size, ttl_s=ttl)


def test_history_accepts_zero_bounds() -> None:
    h = History(1, size=0, ttl_s=0.0)
    assert (h.size, h.ttl_s, h.epoch, h.seq) == (0, 0.0, 1, 0)


def test_make_epoch_is_milliseconds_then_three_random_digits() -> None:
    assert make_epoch(1.5, 1234) == 1_500_234
    assert make_epoch(2.0009, 7) == 2_000_007
    assert make_epoch(0.0, 999) == 999
    assert make_epoch(1.0, 1000) == 1_000_000


# --- the store: numbering, serialization, what a replay entry carries


async def test_store_numbers_and_serializes_each_message_once() -> None:
    store = MemoryStore(size=4, ttl_s=50.0)
    store.add_bus("b", 9)
    store.add_bus("b", 10)  # a known bus keeps its epoch
    assert store.buses() == ["b"]
    assert store.position("b") == Position(9, 0)
    a = store.append("b", {"type": "frame", "addr": 3, "ts": 1.5}, now=2.0)
    e = store.append("b", {"type": "event", "event": "bus_up"}, now=2.5)
    assert a == Stamped("b", 9, 1, 1.5, 3, a.text)
    assert json.loads(a.text) == {
        "type": "frame",
        "bus": "b",
        "seq": 1,
        "epoch": 9,
        "addr": 3,
        "ts": 1.5,
    }
    assert list(json.loads(a.text))[:4] == ["type", "bus", "seq", "epoch"]
    assert (e.seq, e.ts, e.addr) == (2, 2.5, None)  # no ts: stamped with now
    assert store.position("b") == Position(9, 2)
    assert await store.since("b", Position(9, 0), now=3.0) == [a, e]
    assert await store.since("b", Position(9, 2), now=3.0) == []
    assert await store.since("nope", Position(9, 0), now=3.0) is None
    assert await store.since("b", Position(8, 0), now=3.0) is None
    assert store.history("b").size == 4 and store.history("b").ttl_s == 50.0


async def test_store_bounds_apply_to_every_bus() -> None:
    store = MemoryStore(size=2, ttl_s=50.0)
    for bus in ("x", "y"):
        store.add_bus(bus, 1)
        for _ in range(3):
            store.append(bus, {"type": "frame", "ts": 0.0}, now=0.0)
        assert await store.since(bus, Position(1, 0), now=0.0) is None
        got = await store.since(bus, Position(1, 1), now=0.0)
        assert got is not None and [s.seq for s in got] == [2, 3]
    assert await store.since("x", Position(1, 1), now=50.1) is None  # all expired


def test_history_since_starts_right_after_the_given_seq() -> None:
    h = History(1, size=10, ttl_s=100.0)
    for _ in range(5):
        h.append(h.next_seq(), 0.0, None, "x", now=0.0)
    got = h.since(1, 3, now=0.0)
    assert got is not None and [e.seq for e in got] == [4, 5]


def test_history_and_store_defaults() -> None:
    h = History(1)
    assert (h.size, h.ttl_s) == (1024, 300.0)
    store = MemoryStore()
    store.add_bus("b", 1)
    assert (store.history("b").size, store.history("b").ttl_s) == (1024, 300.0)


# --- the connection core: whole answers, not just their codes


from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from bridge.acl import Principal, TokenRule  # noqa: E402
from bridge.connection import Connection, RateLimit, Send, Submit, Subscribe  # noqa: E402
from bridge.policy import Refusal, SimplePolicy  # noqa: E402
from tests.bridge.test_connection import (  # noqa: E402
    LIMITS,
    FakeNode,
    make,
    only_message,
    send,
    welcomed,
)


def test_answers_before_and_after_hello_carry_code_text_and_id() -> None:
    conn = make(("secret",))
    assert only_message(send(conn, type="ping", id=3)) == {
        "type": "error",
        "id": 3,
        "code": c.HELLO_REQUIRED,
        "message": "send hello first",
    }
    assert only_message(send(conn, type="hello", id=4)) == {
        "type": "error",
        "id": 4,
        "code": c.MISSING_FIELD,
        "message": "'token' is required",
    }
    conn = welcomed()
    assert only_message(send(conn, type="hello", token="t", id=5)) == {
        "type": "error",
        "id": 5,
        "code": c.ALREADY_HELLO,
        "message": "hello was already accepted",
    }


def test_hello_without_token_is_the_empty_token() -> None:
    # With no tokens configured, an absent token is checked as "" (any token is accepted).
    conn = make()
    msg = only_message(send(conn, type="hello", id=1))
    assert msg["type"] == "welcome" and conn.session.principal is not None


def test_welcome_names_session_node_version_and_heartbeat() -> None:
    node = FakeNode(node="n-7")
    conn = make(node=node)
    msg = only_message(send(conn, type="hello", token="t"))
    assert msg == {
        "type": "welcome",
        "session": "s-1",
        "node": "n-7",
        "version": c.VERSION,
        "buses": {"bus0": {"epoch": 7, "seq": 3}, "bus1": {"epoch": 7, "seq": 3}},
        "heartbeat_s": LIMITS.heartbeat_s,
        "access": {"read": ["*"], "write": ["*"]},
    }


@dataclass
class PerBusNode(FakeNode):
    """Each bus at its own position, so an answer shows which bus it asked about."""

    asked: list[str] = field(default_factory=list)

    def position(self, bus: str) -> c.Position:
        self.asked.append(bus)
        return c.Position(7, int(bus[-1]) + 10)


def test_positions_are_asked_per_bus() -> None:
    conn = make(node=PerBusNode())
    msg = only_message(send(conn, type="hello", token="t"))
    assert msg["buses"] == {"bus0": {"epoch": 7, "seq": 10}, "bus1": {"epoch": 7, "seq": 11}}
    state = only_message(send(conn, type="state", id=2))
    assert list(state) == ["type", "id", "buses"] and state["type"] == "state"
    assert (state["buses"]["bus0"]["seq"], state["buses"]["bus1"]["seq"]) == (10, 11)


@dataclass
class RecordingPolicy(SimplePolicy):
    refuse_subscription: Refusal | None = None
    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def __init__(self, refusal: Refusal | None = None) -> None:
        super().__init__(10)
        self.refuse_subscription = refusal
        self.seen = []

    def admit_connection(self, principal: Principal, clients: int) -> Refusal | None:
        self.seen.append(("connection", principal.name, clients))
        return super().admit_connection(principal, clients)

    def admit_subscription(self, principal: Principal, topics: Any, held: int) -> Refusal | None:
        self.seen.append(("subscription", principal.name, [str(t) for t in topics], held))
        return self.refuse_subscription


def policy_conn(policy: RecordingPolicy) -> Connection:
    from bridge.session import QueueLimits as QL

    conn = Connection(
        Session("s-1", QL(), 0.0),
        FakeNode(authenticated=3),
        policy,
        (TokenRule("t", "alice"),),
        LIMITS,
        0.0,
    )
    assert only_message(send(conn, type="hello", token="t"))["type"] == "welcome"
    return conn


def test_the_policy_is_asked_with_the_principal_topics_and_held_count() -> None:
    policy = RecordingPolicy()
    conn = policy_conn(policy)
    conn.session.topics.add(c.parse_topic("bus0/1"))  # one topic already held
    (action,) = send(conn, type="subscribe", topics=["bus1/2"], id=9)
    assert isinstance(action, Subscribe)
    assert policy.seen == [("connection", "alice", 3), ("subscription", "alice", ["bus1/2"], 1)]


def test_a_refused_subscription_is_an_error_with_the_policys_code_and_text() -> None:
    conn = policy_conn(RecordingPolicy(Refusal("quota", "too many topics")))
    assert only_message(send(conn, type="subscribe", topics=["bus1/2"], id=9)) == {
        "type": "error",
        "id": 9,
        "code": "quota",
        "message": "too many topics",
    }


def test_subscribing_to_an_unknown_bus_names_it() -> None:
    conn = welcomed()
    assert only_message(send(conn, type="subscribe", topics=["nope/1"], id=2)) == {
        "type": "error",
        "id": 2,
        "code": c.BAD_VALUE,
        "message": "no bus named 'nope'",
    }


def test_a_limited_token_star_becomes_its_buses_after_the_other_topics() -> None:
    conn = welcomed((TokenRule("lim", "lim", frozenset({"bus0", "bus1"})),), token="lim")
    (action,) = send(conn, type="subscribe", topics=["bus1/3", "*"])
    assert isinstance(action, Subscribe)
    assert action.topics == (c.Topic("bus1", 3), c.Topic("bus0", None), c.Topic("bus1", None))


def test_request_answers_are_whole_replies() -> None:
    node = FakeNode()
    conn = welcomed((TokenRule("ro", read_only=True), "rw"), token="ro", node=node)
    req: dict[str, Any] = {"type": "request", "bus": "bus0", "addr": 1, "cmd": 3, "id": 8}
    (unknown,) = send(conn, **{**req, "bus": "nope"})
    assert unknown == Send(
        {
            "type": "reply",
            "id": 8,
            "ok": False,
            "error": {"code": "bad_request", "message": "no bus named 'nope'"},
        },
        ("", "bad_request"),
    )
    (refused,) = send(conn, **req)
    assert refused == Send(
        {
            "type": "reply",
            "id": 8,
            "ok": False,
            "error": {"code": "forbidden", "message": "this token may not send requests here"},
        },
        ("bus0", "forbidden"),
    )
    conn = welcomed((TokenRule("ro", read_only=True), "rw"), token="rw", node=node)
    (submit,) = send(conn, **req)
    assert isinstance(submit, Submit)
    assert conn.reply(submit.request, None) == Send(
        {
            "type": "reply",
            "id": 8,
            "ok": False,
            "error": {"code": "bus_down", "message": "request cancelled (bridge stopping)"},
        },
        ("bus0", "bus_down"),
    )
    done = conn.reply(submit.request, {"ok": True, "data": "00"})
    assert done == Send({"type": "reply", "id": 8, "ok": True, "data": "00"}, ("bus0", "ok"))
    odd = conn.reply(submit.request, {"ok": False})
    assert odd.outcome == ("bus0", "error")
    node.draining = True
    (busy,) = send(conn, **req)
    assert busy.message == {
        "type": "reply",
        "id": 8,
        "ok": False,
        "error": {"code": "busy", "message": "bridge is shutting down"},
    }


def test_a_bridge_bug_on_one_message_is_answered_internal_error_with_its_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FakeNode):
        def position(self, bus: str) -> c.Position:
            raise RuntimeError("boom")

    conn = welcomed(node=FakeNode())
    conn.node = Broken()
    assert only_message(send(conn, type="state", id=6)) == {
        "type": "error",
        "id": 6,
        "code": c.INTERNAL_ERROR,
        "message": "the bridge failed on this message",
    }
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.getMessage() == "event=internal_error session=s-1"
    assert only_message(send(conn, type="ping", id=7)) == {"type": "pong", "id": 7}


def test_too_many_topics_is_refused_by_the_limit() -> None:
    conn = welcomed(limits=replace_limits(max_topics=2))
    msg = only_message(send(conn, type="subscribe", topics=["bus0/1", "bus0/2", "bus0/3"], id=1))
    assert msg == {
        "type": "error",
        "id": 1,
        "code": c.BAD_VALUE,
        "message": "at most 2 topics per message",
    }
    (ok,) = send(conn, type="subscribe", topics=["bus0/1", "bus0/2"])
    assert isinstance(ok, Subscribe)


def replace_limits(**kw: Any) -> Any:
    from dataclasses import replace

    return replace(LIMITS, **kw)


def test_rate_limit_edges() -> None:
    bucket = RateLimit(rate=10.0, burst=1, flood_close_s=2.0, now=0.0)
    assert bucket.delay(0.0) == 0.0  # exactly one token: read now
    bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.1)
    bucket.take(0.0)  # the adapter read anyway: the level is -1
    assert bucket.delay(0.0) == pytest.approx(0.2)
    assert not bucket.flooding(1.9)
    assert bucket.flooding(2.0)  # throttled since 0.0, for exactly flood_close_s
    assert bucket.delay(0.3) == pytest.approx(0.0)  # level back to 1.0
    assert not bucket.flooding(5.0)


def test_rate_limit_ignores_time_going_backwards() -> None:
    bucket = RateLimit(rate=10.0, burst=2, flood_close_s=2.0, now=5.0)
    bucket.take(5.0)
    bucket.take(5.0)
    assert bucket.delay(4.0) == pytest.approx(0.1)  # an earlier clock adds no token
    assert bucket.delay(5.05) == pytest.approx(0.05)


# --- what a client is shown (bridge.views): cluster owners and the bus's port


@dataclass
class OwnedBus:
    """A bus as the cluster server shows it: its port and the node that polls it."""

    up: bool = True
    down_reason: str = ""
    url: str = "tcp://10.0.0.5:4001"
    owner: str | None = "n2"
    devices: dict[str, Any] = field(default_factory=lambda: {"1": {"addr": 1}})

    def snapshot(self) -> dict[str, Any]:
        return dict(self.devices)


def test_cluster_mode_shows_each_bus_owner_and_port() -> None:
    node = FakeNode(buses={"bus0": OwnedBus(), "bus1": OwnedBus(owner=None)})  # type: ignore[dict-item]
    conn = make(node=node)
    hello = only_message(send(conn, type="hello", token="t"))
    assert hello["buses"] == {
        "bus0": {"epoch": 7, "seq": 3, "owner": "n2"},
        "bus1": {"epoch": 7, "seq": 3, "owner": None},  # no node polls it now
    }
    state = only_message(send(conn, type="state"))["buses"]
    assert state["bus0"] == {
        "up": True,
        "reason": "",
        "url": "tcp://10.0.0.5:4001",
        "epoch": 7,
        "seq": 3,
        "devices": {"1": {"addr": 1}},
        "owner": "n2",
    }
    assert state["bus1"]["owner"] is None


# --- the session queue: exact bounds, batches, heartbeats


def session(**limits: int) -> tuple[Session, list[int]]:
    wakes: list[int] = []
    return Session("s-9", QueueLimits(**limits), 1.0, wake=lambda: wakes.append(1)), wakes


def test_a_new_session() -> None:
    s, _ = session()
    assert (s.id, s.welcomed, s.principal, s.overflowed, s.closing) == (
        "s-9",
        False,
        None,
        False,
        False,
    )
    assert (s.dropped, s.sent_messages, s.sent_bytes, s.last_sent, len(s)) == (0, 0, 0, 1.0, 0)
    assert s.needs_heartbeat(100.0, 1.0) is False  # not welcomed yet


def test_offer_fills_exactly_to_both_bounds() -> None:
    s, wakes = session(max_messages=3, max_bytes=10)
    assert s.offer("aaaa") and s.offer("bbbb") and s.offer("cc")  # 3 messages, 10 bytes
    assert (len(s), s.queued_bytes, len(wakes)) == (3, 10, 1)
    assert s.offer("") is False  # a fourth message, even empty, is over the count
    assert (s.overflowed, s.dropped, len(s), s.queued_bytes, len(wakes)) == (True, 4, 0, 0, 2)
    assert s.offer("x") is False and s.dropped == 5  # each refusal counts once
    s2, _ = session(max_messages=10, max_bytes=10)
    assert s2.offer("a" * 10) and s2.queued_bytes == 10
    assert s2.offer("b") is False


def test_a_closing_session_takes_nothing_more() -> None:
    s, wakes = session()
    s.closing = True
    assert s.offer("x") is False
    assert (s.overflowed, s.dropped, len(wakes)) == (False, 1, 0)  # no overflow while closing
    s.force(["y"])
    assert len(s) == 0
    s3, _ = session()
    s3.overflow()
    s3.force(["y"])
    assert len(s3) == 0


def test_force_counts_bytes_and_wakes_only_from_empty() -> None:
    s, wakes = session(max_messages=2, max_bytes=4)
    s.force(["abc", "defg", "h"])  # past both bounds: the client asked for these
    assert (len(s), s.queued_bytes, len(wakes)) == (3, 8, 1)
    s.force(["i"])
    assert (s.queued_bytes, len(wakes)) == (9, 1)
    s2, wakes2 = session()
    s2.force([])
    assert len(wakes2) == 0


def test_backlogged_at_exactly_half_the_bounds() -> None:
    s, _ = session(max_messages=8, max_bytes=100, answer_bytes=30)
    s.force(["x" * 29])
    assert not s.backlogged()
    s.force(["x"])
    assert s.backlogged()  # answer_bytes reached
    s, _ = session(max_messages=8, max_bytes=40, answer_bytes=30)
    s.force(["x" * 19])
    assert not s.backlogged()
    s.force(["x"])
    assert s.backlogged()  # half of max_bytes (20) is below answer_bytes
    s, _ = session(max_messages=8, max_bytes=1000)
    s.force(["a", "b", "c"])
    assert not s.backlogged()
    s.force(["d"])
    assert s.backlogged()  # half of max_messages


def test_take_batch_stops_at_exactly_the_bounds() -> None:
    s, _ = session(batch_messages=3, batch_bytes=10)
    s.force(["aaa", "bbb", "ccc"])  # 3 messages, 9 bytes: all in one batch
    assert s.take_batch() == ["aaa", "bbb", "ccc"] and s.queued_bytes == 0
    s.force(["aaaaa", "bbbbb", "c"])  # 11 bytes: the first two fill 10 exactly
    assert s.take_batch() == ["aaaaa", "bbbbb"]
    assert (s.take_batch(), s.queued_bytes) == (["c"], 0)
    s.force(["a", "b", "c", "d"])
    assert s.take_batch() == ["a", "b", "c"] and s.queued_bytes == 1
    s.force(["x" * 12, "y"])  # a larger message goes alone
    assert s.take_batch() == ["d"]
    assert s.take_batch() == ["x" * 12]
    assert s.take_batch() == ["y"] and s.take_batch() == []


def test_take_batch_exactly_full_goes_in_one() -> None:
    s, _ = session(batch_messages=2, batch_bytes=4)
    s.force(["ab", "cd"])  # exactly both bounds
    assert s.take_batch() == ["ab", "cd"]
    s.force(["ab", "c", "d"])
    assert s.take_batch() == ["ab", "c"] and s.queued_bytes == 1


def test_sent_counters_and_heartbeat_due_at_exactly_the_interval() -> None:
    s, _ = session()
    s.welcomed = True
    s.mark_sent(2, 30, 5.0)
    s.mark_sent(1, 10, 6.0)
    assert (s.sent_messages, s.sent_bytes, s.last_sent) == (3, 40, 6.0)
    assert not s.needs_heartbeat(7.9, 2.0)
    assert s.needs_heartbeat(8.0, 2.0)
    s.force(["x"])
    assert not s.needs_heartbeat(9.0, 2.0)  # something is waiting: no heartbeat
    s.take_batch()
    s.closing = True
    assert not s.needs_heartbeat(9.0, 2.0)
    s.closing = False
    s.overflow()
    assert not s.needs_heartbeat(9.0, 2.0)


def test_a_limited_token_requests_and_sees_the_devices_of_its_own_bus() -> None:
    conn = welcomed((TokenRule("lim", "lim", frozenset({"bus1"})),), token="lim")
    (action,) = send(conn, type="request", bus="bus1", addr=1, cmd=3, id=1)
    assert isinstance(action, Submit) and action.request.bus == "bus1"
    state = only_message(send(conn, type="state"))
    assert state["buses"]["bus1"]["devices"] == {"1": {"addr": 1}, "2": {"addr": 2}}


def test_backlogged_at_half_an_odd_byte_bound_rounds_down() -> None:
    s, _ = session(max_messages=100, max_bytes=41, answer_bytes=100)
    s.force(["x" * 19])
    assert not s.backlogged()
    s.force(["x"])
    assert s.backlogged()  # 41 // 2 == 20 bytes
