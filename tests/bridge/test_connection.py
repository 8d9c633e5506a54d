"""The pure connection core: messages and a fake clock in, actions out (no sockets)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bridge import contract as c
from bridge.acl import TokenRule
from bridge.config import Limits
from bridge.connection import Close, Connection, RateLimit, Send, Submit, Subscribe, Unsubscribe
from bridge.policy import SimplePolicy
from bridge.session import QueueLimits, Session


@dataclass
class FakeBus:
    up: bool = True
    down_reason: str = ""
    devices: dict[str, Any] = field(default_factory=lambda: {"1": {"addr": 1}, "2": {"addr": 2}})

    def snapshot(self) -> dict[str, Any]:
        return dict(self.devices)


@dataclass
class FakeNode:
    node: str = "n1"
    draining: bool = False
    buses: dict[str, FakeBus] = field(
        default_factory=lambda: {"bus0": FakeBus(), "bus1": FakeBus()}
    )
    authenticated: int = 0

    def clients(self) -> int:
        return self.authenticated

    def position(self, bus: str) -> c.Position:
        return c.Position(7, 3)


LIMITS = Limits(hello_timeout_s=5.0, message_rate=10.0, message_burst=5, flood_close_s=2.0)


def make(
    tokens: tuple[str | TokenRule, ...] = (),
    *,
    node: FakeNode | None = None,
    limits: Limits = LIMITS,
    max_clients: int = 10,
) -> Connection:
    session = Session("s-1", QueueLimits(), 0.0)
    return Connection(session, node or FakeNode(), SimplePolicy(max_clients), tokens, limits, 0.0)


def send(conn: Connection, now: float = 0.0, **msg: Any) -> list[Any]:
    return conn.receive(json.dumps(msg), now)


def only_message(actions: list[Any]) -> Any:
    assert len(actions) == 1 and isinstance(actions[0], Send), actions
    return actions[0].message


def welcomed(tokens: tuple[str | TokenRule, ...] = (), token: str = "t", **kw: Any) -> Connection:
    conn = make(tokens, **kw)
    assert only_message(send(conn, type="hello", token=token))["type"] == "welcome"
    return conn


# -- hello ---------------------------------------------------------------------------------------


def test_welcome_carries_id_first_and_visible_positions() -> None:
    conn = make()
    msg = only_message(send(conn, type="hello", token="x", id=1))
    assert list(msg)[:2] == ["type", "id"]
    assert msg["buses"] == {"bus0": {"epoch": 7, "seq": 3}, "bus1": {"epoch": 7, "seq": 3}}
    assert conn.welcomed and conn.next_deadline() is None


@pytest.mark.parametrize(
    ("rule", "access"),
    [
        ("full", {"read": ["*"], "write": ["*"]}),
        (TokenRule("ro", read_only=True), {"read": ["*"], "write": []}),
        (TokenRule("b1", buses=frozenset({"bus1"})), {"read": ["bus1/*"], "write": ["bus1/*"]}),
    ],
)
def test_welcome_tells_what_the_client_may_read_and_write(
    rule: str | TokenRule, access: dict[str, list[str]]
) -> None:
    token = rule if isinstance(rule, str) else rule.token
    msg = only_message(send(make((rule,)), type="hello", token=token))
    assert msg["access"] == access


def test_hello_without_token_is_accepted_when_the_bridge_has_no_tokens() -> None:
    """Issue 10 papercut: on main this was ``missing_field``."""
    conn = make()
    assert only_message(send(conn, type="hello"))["type"] == "welcome"


def test_hello_without_token_is_missing_field_when_tokens_are_configured() -> None:
    conn = make(("secret",))
    msg = only_message(send(conn, type="hello", id=2))
    assert (msg["code"], msg["id"]) == (c.MISSING_FIELD, 2)
    assert not conn.welcomed


def test_wrong_token_closes_4003() -> None:
    conn = make(("secret",))
    assert send(conn, type="hello", token="nope") == [Close(4003, "unauthorized", "unauthorized")]
    assert send(conn, type="ping") == []  # closed: nothing more


def test_other_messages_before_hello_need_hello() -> None:
    conn = make()
    assert only_message(send(conn, type="ping", id=3))["code"] == c.HELLO_REQUIRED


def test_hello_deadline_closes_4001() -> None:
    conn = make()
    assert conn.next_deadline() == 5.0
    assert conn.tick(4.9) == []
    assert conn.tick(5.0) == [Close(4001, "hello timeout", "hello_timeout")]
    assert conn.next_deadline() is None


def test_a_message_after_the_deadline_is_not_read_as_hello() -> None:
    conn = make()
    assert send(conn, 6.0, type="hello", token="t") == [
        Close(4001, "hello timeout", "hello_timeout")
    ]


def test_node_full_is_decided_after_hello_by_the_policy() -> None:
    conn = make(node=FakeNode(authenticated=2), max_clients=2)
    assert send(conn, type="hello", token="t") == [Close(1013, "node full", "full")]


def test_second_hello_is_already_hello() -> None:
    conn = welcomed()
    assert only_message(send(conn, type="hello", token="t"))["code"] == c.ALREADY_HELLO


# -- bad input -----------------------------------------------------------------------------------


def _at_depth(depth: int, fn: Any) -> Any:
    return fn() if depth == 0 else _at_depth(depth - 1, fn)


@pytest.mark.parametrize("welcome", [False, True])
def test_deep_json_with_escape_is_never_an_internal_error(
    welcome: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 break 6: near 1,000 levels the escape check re-encoded the message one frame
    deeper than the decoder had gone; at that one depth main raised RecursionError (1011 before
    hello, ``internal_error`` + traceback after). Swept over depths and call stacks."""
    conn = welcomed() if welcome else make()
    for stack in (0, 7, 23):
        for levels in range(930, 1001):
            text = '{"type": "ping", "x": ' + "[" * levels + '"\\u00e9"' + "]" * levels + "}"
            msg = only_message(_at_depth(stack, lambda t=text: conn.receive(t, 0.0)))
            assert msg.get("code") in (None, c.BAD_JSON, c.HELLO_REQUIRED), (stack, levels, msg)
    assert not [r for r in caplog.records if r.exc_info]


def test_binary_is_bad_message() -> None:
    conn = welcomed()
    assert only_message(conn.receive(b"\x00", 0.0))["code"] == c.BAD_MESSAGE


# -- dispatch and access -------------------------------------------------------------------------


def test_ping_state_unsubscribe() -> None:
    conn = welcomed()
    assert only_message(send(conn, type="ping", id="p")) == {"type": "pong", "id": "p"}
    state = only_message(send(conn, type="state", id=4))
    assert list(state) == ["type", "id", "buses"]
    assert state["buses"]["bus0"] == {
        "up": True,
        "reason": "",
        "url": "",
        "epoch": 7,
        "seq": 3,
        "devices": {"1": {"addr": 1}, "2": {"addr": 2}},
    }
    (action,) = send(conn, type="unsubscribe", topics=["bus0/1"], id=5)
    assert action == Unsubscribe((c.Topic("bus0", 1),), 5)
    assert conn.unsubscribed(action, ["bus0/1"]) == {
        "type": "unsubscribed",
        "id": 5,
        "topics": ["bus0/1"],
    }


def test_limited_token_sees_its_buses_only() -> None:
    rule = TokenRule("lim", "lim", frozenset({"bus1"}))
    conn = welcomed((rule,), token="lim")
    (action,) = send(
        conn,
        type="subscribe",
        id=6,
        topics=["*"],
        since={"bus0": {"epoch": 7, "seq": 1}, "bus1": {"epoch": 7, "seq": 1}},
    )
    assert isinstance(action, Subscribe)
    assert action.topics == (c.Topic("bus1", None),)
    assert dict(action.since) == {"bus1": c.Position(7, 1)}
    answer = conn.subscribed(action, ["bus1/*"], {"bus1": True})
    assert answer == {
        "type": "subscribed",
        "id": 6,
        "topics": ["bus1/*"],
        "recovered": {"bus1": True, "bus0": False},
    }
    assert only_message(send(conn, type="subscribe", topics=["bus0/*"]))["code"] == c.BAD_VALUE
    assert set(only_message(send(conn, type="state"))["buses"]) == {"bus1"}


def test_requests_unknown_bus_forbidden_draining_and_submit() -> None:
    node = FakeNode()
    conn = welcomed((TokenRule("ro", read_only=True), "rw"), token="ro", node=node)
    req: dict[str, Any] = {"type": "request", "bus": "bus0", "addr": 1, "cmd": 3, "id": 8}
    (refused,) = send(conn, **req)
    assert refused.outcome == ("bus0", "forbidden")
    assert refused.message["error"]["code"] == "forbidden"
    (unknown,) = send(conn, **{**req, "bus": "nope"})
    assert unknown.outcome == ("", "bad_request")

    conn = welcomed((TokenRule("ro", read_only=True), "rw"), token="rw", node=node)
    (submit,) = send(conn, **req)
    assert isinstance(submit, Submit) and submit.request.id == 8
    done = conn.reply(submit.request, {"ok": True, "bus": "bus0", "rtt_ms": 1.0})
    assert list(done.message)[:3] == ["type", "id", "ok"] and done.outcome == ("bus0", "ok")
    failed = conn.reply(submit.request, {"ok": False, "error": {"code": "timeout", "message": ""}})
    assert failed.outcome == ("bus0", "timeout")
    assert conn.reply(submit.request, None).outcome == ("bus0", "bus_down")
    node.draining = True
    (busy,) = send(conn, **req)
    assert busy.outcome == ("bus0", "busy")


# -- the message rate ----------------------------------------------------------------------------


def test_rate_limit_paces_reads_after_the_burst() -> None:
    bucket = RateLimit(rate=10.0, burst=3, flood_close_s=2.0, now=0.0)
    for _ in range(3):
        assert bucket.delay(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert bucket.delay(0.1) == 0.0  # one token back
    bucket.take(0.1)
    assert not bucket.flooding(0.1)


def test_a_burst_that_pauses_is_only_slowed_down() -> None:
    conn = welcomed(limits=replace(LIMITS, message_burst=5))
    now = 0.0
    for _ in range(20):  # 4x the burst (throttled 1.5 s < flood_close_s), a pause, again
        now += conn.read_delay(now)
        assert only_message(send(conn, now, type="ping"))["type"] == "pong"
    now += 1.0
    assert conn.read_delay(now) == 0.0
    for _ in range(20):
        now += conn.read_delay(now)
        assert only_message(send(conn, now, type="ping"))["type"] == "pong"


def test_sustained_flood_closes_1008() -> None:
    """Issue 10 break 8: on main there was no per-connection rate at all."""
    conn = welcomed()
    now = 0.0
    closed: list[Any] = []
    for _ in range(200):  # reads paced by the bucket: the client always has more waiting
        now += conn.read_delay(now)
        actions = send(conn, now, type="ping")
        if actions and isinstance(actions[0], Close):
            closed = actions
            break
    assert closed == [Close(1008, "message rate", "flood")]
    assert now >= LIMITS.flood_close_s
