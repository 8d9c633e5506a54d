"""Tenants without sockets: patterns, credentials, quotas, the connection core, the scheduler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge import contract as c
from bridge.acl import parse_pattern
from bridge.config import parse_config
from bridge.connection import Close, Connection, Send, Submit, Subscribe, Unsubscribe
from bridge.errors import ConfigError
from bridge.quota import TenantPolicy
from bridge.schedule import POLL, Scheduler
from bridge.session import QueueLimits, Session
from bridge.tenants import Authenticator, hash_token
from tests.bridge.conftest import make_limits
from tests.bridge.test_connection import FakeNode

ACME, GLOBEX = "acme-token", "globex-token"


def config(**tier: Any) -> dict[str, Any]:
    return {
        "bus": [{"name": "bus0", "url": "loop://"}, {"name": "bus1", "url": "loop://"}],
        "tiers": {"small": {"connections": 2, "inflight": 2, "requests_per_s": 5.0, **tier}},
        "tenant": [
            {
                "name": "acme",
                "tier": "small",
                "token_sha256": [hash_token(ACME)],
                "read": ["bus0/*", "bus1/3"],
                "write": ["bus0/1", "bus0/2:write_reg"],
                "allowed_origins": ["https://acme.example"],
            },
            {
                "name": "globex",
                "tier": "pro",
                "token_sha256": [hash_token(GLOBEX)],
                "read": ["bus1/*"],
                "write": [],
            },
        ],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def core(
    raw: dict[str, Any] | None = None, clock: Clock | None = None, **kw: Any
) -> tuple[Connection, TenantPolicy, Clock]:
    cfg = parse_config(raw or config())
    clock = clock or Clock()
    auth = Authenticator(cfg.tenancy, cfg.server.tokens)
    policy = kw.pop("policy", None) or TenantPolicy(100, clock)
    node = FakeNode()
    session = Session("s1", QueueLimits(), clock.now)
    conn = Connection(session, node, policy, auth, make_limits(), clock.now, **kw)
    return conn, policy, clock


def hello(conn: Connection, token: str, now: float = 1000.0) -> list[Any]:
    return conn.receive(json.dumps({"type": "hello", "token": token, "id": 1}), now)


# -- patterns and principals ---------------------------------------------------------------


def test_patterns_parse_and_refuse() -> None:
    assert parse_pattern("bus0/*").covers("bus0", 5)
    assert parse_pattern("bus1/3").covers("bus1", None)  # something of bus1 is visible
    assert not parse_pattern("bus1/3").covers("bus1", 4)
    assert parse_pattern("bus0/1:write_reg").cmd == 6
    assert parse_pattern("bus0/1:6").cmd == 6
    for bad in ("bus0", "bus0/x", "bus0/1:nope", "bus0/300", "*/1", ""):
        with pytest.raises(ValueError):
            parse_pattern(bad)


def test_a_static_token_is_matched_by_its_hash_only() -> None:
    conn, _, _ = core()
    [send] = hello(conn, ACME)
    assert isinstance(send, Send)
    assert send.message["access"] == {  # type: ignore[typeddict-item]
        "read": ["bus0/*", "bus1/3"],
        "write": ["bus0/1", "bus0/2:write_reg"],
    }
    assert list(send.message["buses"]) == ["bus0", "bus1"]  # type: ignore[typeddict-item]
    other, _, _ = core()
    assert hello(other, hash_token(ACME)) == [Close(4003, "unauthorized", "unauthorized")]


def test_config_refuses_what_would_silently_widen_access() -> None:
    bad = config()
    bad["tenant"][0]["read"] = ["bus9/*"]
    with pytest.raises(ConfigError, match=r"tenant\[0\]\.read"):
        parse_config(bad)
    bad = config()
    bad["tenant"][1]["tier"] = "gold"
    with pytest.raises(ConfigError, match="no tier named 'gold'"):
        parse_config(bad)
    bad = config()
    bad["tenant"][1]["token_sha256"] = [hash_token(ACME)]
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config(bad)
    bad = config()
    bad["tenant"][0]["token_sha256"] = ["not-hex"]
    with pytest.raises(ConfigError, match="64 hex digits"):
        parse_config(bad)
    bad = config(burst=3)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(bad)


def test_subscriptions_are_narrowed_to_the_read_patterns() -> None:
    conn, _, _ = core()
    hello(conn, ACME)
    [sub] = conn.receive('{"type":"subscribe","topics":["*"]}', 1000.0)
    assert isinstance(sub, Subscribe)
    assert [str(t) for t in sub.topics] == ["bus0/*", "bus1/3"]
    [sub] = conn.receive('{"type":"subscribe","topics":["bus1/*"]}', 1000.0)
    assert isinstance(sub, Subscribe)
    assert [str(t) for t in sub.topics] == ["bus1/3"]
    # a device outside the patterns: the same answer whether it exists or not
    for topic in ("bus1/4", "bus1/200"):
        [err] = conn.receive(json.dumps({"type": "subscribe", "topics": [topic]}), 1000.0)
        assert isinstance(err, Send) and err.message["code"] == "bad_value"  # type: ignore[typeddict-item]
        assert "outside" in err.message["message"]  # type: ignore[typeddict-item]


def test_requests_follow_the_write_patterns_and_commands() -> None:
    conn, _, _ = core()
    hello(conn, ACME)

    def ask(addr: int, cmd: str) -> Any:
        msg = {"type": "request", "bus": "bus0", "addr": addr, "cmd": cmd, "args": {}}
        [action] = conn.receive(json.dumps(msg), 1000.0)
        return action

    assert isinstance(ask(1, "read_regs"), Submit)
    assert isinstance(ask(2, "write_reg"), Submit)
    refused = ask(2, "read_regs")
    assert refused.message["error"]["code"] == "forbidden"
    assert ask(3, "write_reg").message["error"]["code"] == "forbidden"
    assert ask(99, "write_reg").message["error"]["code"] == "forbidden"  # nonexistent: alike


# -- quotas ------------------------------------------------------------------------------------


def request(conn: Connection, now: float, timeout: float | None = None, rid: int = 1) -> Any:
    msg: dict[str, Any] = {"type": "request", "bus": "bus0", "addr": 1, "cmd": "read_regs"}
    msg.update(args={"start": 0, "count": 1}, id=rid)
    if timeout is not None:
        msg["timeout_s"] = timeout
    [action] = conn.receive(json.dumps(msg), now)
    return action


def test_inflight_quota_is_refused_at_once_and_freed_by_the_reply() -> None:
    conn, policy, clock = core()
    hello(conn, ACME)
    first, second = request(conn, clock.now, rid=1), request(conn, clock.now, rid=2)
    assert isinstance(first, Submit) and isinstance(second, Submit)
    third = request(conn, clock.now, rid=3)
    assert third.message["error"]["code"] == "quota" and third.outcome == ("bus0", "quota")
    conn.reply(first.request, {"ok": True})
    assert isinstance(request(conn, clock.now, rid=4), Submit)
    assert policy.usage["acme"].rejections == {"inflight": 1}


def test_rate_quota_refills_with_time() -> None:
    conn, _policy, clock = core(config(inflight=100, requests_per_s=2.0))
    hello(conn, ACME)
    actions = [request(conn, clock.now, rid=i) for i in range(4)]
    assert [isinstance(a, Submit) for a in actions] == [True, True, False, False]
    assert actions[2].message["error"]["code"] == "quota"
    clock.now += 0.5  # one token back
    assert isinstance(request(conn, clock.now), Submit)
    assert not isinstance(request(conn, clock.now), Submit)


def test_timeout_over_the_tier_cap_is_bad_request() -> None:
    conn, _, clock = core(config(max_timeout_s=1.0))
    hello(conn, ACME)
    reply = request(conn, clock.now, timeout=2.0)
    assert reply.message["error"]["code"] == "bad_request"
    assert isinstance(request(conn, clock.now, timeout=1.0), Submit)


def test_connections_per_tenant_close_1013_with_a_reason_and_come_back() -> None:
    clock = Clock()
    policy = TenantPolicy(100, clock)
    conns = [core(clock=clock, policy=policy)[0] for _ in range(3)]
    assert isinstance(hello(conns[0], ACME)[0], Send)
    assert isinstance(hello(conns[1], ACME)[0], Send)
    [close] = hello(conns[2], ACME)
    assert isinstance(close, Close) and close.code == 1013 and "2 connections" in close.reason
    other = core(clock=clock, policy=policy)[0]
    assert isinstance(hello(other, GLOBEX)[0], Send)  # another tenant is not concerned
    policy.release(conns[0].session.principal)
    again = core(clock=clock, policy=policy)[0]
    assert isinstance(hello(again, ACME)[0], Send)


def test_subscriptions_per_connection() -> None:
    conn, _, _ = core(config(subscriptions=2))
    hello(conn, ACME)
    conn.session.topics.update({c.Topic("bus0", 1), c.Topic("bus0", 2)})
    [err] = conn.receive('{"type":"subscribe","topics":["bus0/3"],"id":5}', 1000.0)
    assert isinstance(err, Send) and err.message["code"] == "quota"  # type: ignore[typeddict-item]


@pytest.mark.parametrize("count", [3, 60])  # 60 a minute: the last one is 1 s away exactly
def test_malformed_messages_close_1008_after_the_tiers_count(count: int) -> None:
    conn, _, clock = core(config(bad_messages=count))
    hello(conn, ACME)
    for _ in range(count - 1):
        [err] = conn.receive("{nope", clock.now)
        assert isinstance(err, Send)
    assert conn.receive("{nope", clock.now) == [
        Close(1008, "too many bad messages", "bad_messages")
    ]


def test_the_tier_sets_the_inbound_message_rate() -> None:
    conn, _, clock = core(config(messages_per_s=10.0, bytes_per_s=1000.0))
    hello(conn, ACME)
    for _ in range(40):
        conn.receive('{"type":"ping"}', clock.now)
    assert conn.read_delay(clock.now) > 0  # reading pauses: TCP back-pressure, nothing refused


def test_a_quota_check_is_cheap() -> None:
    """The same loop as benchmarks/quota.py, with a bound loose enough for a loaded machine."""
    import time

    conn, policy, _clock = core(config(inflight=10**9, requests_per_s=1e12))
    hello(conn, ACME)
    principal = conn.session.principal
    req = c.Request("bus0", 1, "read_regs", timeout_s=0.5)
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        policy.admit_request(principal, req)
    per = (time.perf_counter() - t0) / n
    assert per < 20e-6, per


# -- credentials in time: refresh and expiry ---------------------------------------------------


class FakeVerifier:
    """Stands for bridge.jwtauth.JwtVerifier (tested against PyJWT in test_jwt.py)."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    def verify(self, token: str, now: float) -> Any:
        claims = self.claims.get(token)
        if claims is None or (claims.expires is not None and now > claims.expires):
            return None  # as the real one: expired at ``now``
        return claims


def jwt_core(claims: dict[str, Any]) -> tuple[Connection, Clock]:
    from bridge.jwtauth import Claims

    cfg = parse_config(config())
    clock = Clock()
    verifier = FakeVerifier({k: Claims(t, "u", exp, None, None) for k, (t, exp) in claims.items()})
    auth = Authenticator(cfg.tenancy, (), verifier)
    session = Session("s1", QueueLimits(), clock.now)
    conn = Connection(session, FakeNode(), TenantPolicy(9, clock), auth, make_limits(), clock.now)
    return conn, clock


def test_expiry_closes_4010_unless_refreshed() -> None:
    conn, _clock = jwt_core(
        {"a.b.c": ("acme", 1010.0), "d.e.f": ("acme", 1100.0), "g.h.i": ("globex", 2000.0)}
    )
    hello(conn, "a.b.c")
    assert conn.next_deadline() == 1010.0
    [answer] = conn.receive('{"type":"refresh","token":"g.h.i","id":2}', 1001.0)
    assert answer.message["code"] == "unauthorized"  # another tenant's token changes nothing
    [answer] = conn.receive('{"type":"refresh","token":"d.e.f","id":3}', 1002.0)
    assert answer.message == {"type": "refreshed", "id": 3, "expires": 1100.0}
    assert conn.tick(1050.0) == [] and conn.next_deadline() == 1100.0
    assert conn.tick(1100.0) == [Close(4010, "token expired", "token_expired")]


def test_a_tenant_origin_is_checked_after_hello() -> None:
    conn, _, _ = core(origin="https://evil.example")
    assert hello(conn, ACME) == [Close(4003, "origin not allowed", "tenant_origin")]
    ok, _, _ = core(origin="https://ACME.example:443")
    assert isinstance(hello(ok, ACME)[0], Send)
    no_browser, _, _ = core()  # no Origin: not a browser
    assert isinstance(hello(no_browser, ACME)[0], Send)


# -- the scheduler groups sources by tenant ------------------------------------------------------


def test_round_robin_by_tenant_not_by_connection() -> None:
    sched = Scheduler([], 0.0)
    flood = [f"tenant:flood/s{i}" for i in range(10)]
    picks = []
    now = 0.0
    for _ in range(40):
        source = sched.pick(now, [*flood, "tenant:calm/x"])
        assert source is not None
        picks.append(source)
        now += 0.01
        sched.charge(source, 0.01, now)
    calm = picks.count("tenant:calm/x")
    assert 19 <= calm <= 21, picks  # half the wire, not one eleventh
    assert POLL not in picks


def error(msg_id: int, code: str, text: str) -> dict[str, Any]:
    """An ``error`` answer, whole: its id and text as well as its code."""
    return {"type": "error", "id": msg_id, "code": code, "message": text}


def test_an_expired_token_is_refused_at_hello_and_at_refresh() -> None:
    conn, _clock = jwt_core({"a.b.c": ("acme", 1010.0), "old.to.ken": ("acme", 999.0)})
    assert hello(conn, "old.to.ken") == [Close(4003, "unauthorized", "unauthorized")]
    conn, _clock = jwt_core({"a.b.c": ("acme", 1010.0), "old.to.ken": ("acme", 1005.0)})
    hello(conn, "a.b.c")
    [answer] = conn.receive('{"type":"refresh","token":"old.to.ken","id":2}', 1006.0)
    assert answer.message == error(2, "unauthorized", "this token is not accepted here")


def test_a_refresh_without_id_and_what_the_new_credential_sees() -> None:
    conn, _clock = jwt_core({"a.b.c": ("acme", 1010.0), "d.e.f": ("acme", 1100.0)})
    hello(conn, "a.b.c")
    [answer] = conn.receive('{"type":"refresh","token":"d.e.f"}', 1002.0)
    assert answer.message == {"type": "refreshed", "expires": 1100.0}
    [state] = conn.receive('{"type":"state","id":3}', 1003.0)
    assert list(state.message["buses"]) == ["bus0", "bus1"]  # the new credential's access


# -- what a limited token is shown and refused -------------------------------------------------


def test_a_limited_token_sees_only_its_devices_and_unsubscribes_from_them() -> None:
    conn, _, clock = core()
    conn.node.buses["bus1"].devices = {"1": {"addr": 1}, "3": {"addr": 3}}  # type: ignore[attr-defined]
    hello(conn, ACME)
    [state] = conn.receive('{"type":"state"}', clock.now)
    assert state.message["buses"]["bus1"]["devices"] == {"3": {"addr": 3}}
    [action] = conn.receive('{"type":"unsubscribe","topics":["*"],"id":4}', clock.now)
    assert action == Unsubscribe((c.Topic("bus0", None), c.Topic("bus1", 3)), 4)
    [err] = conn.receive('{"type":"subscribe","topics":["bus1/4"],"id":5}', clock.now)
    assert err.message == error(5, "bad_value", "topic bus1/4 is outside this token's read access")


def test_a_client_certificate_stands_for_the_token() -> None:
    cfg = parse_config(config())
    principal = Authenticator(cfg.tenancy, cfg.server.tokens).authenticate(ACME, 0.0)
    assert principal is not None
    conn, _, clock = core(certified=principal)
    [welcome] = conn.receive('{"type":"hello"}', clock.now)
    assert welcome.message["access"]["read"] == ["bus0/*", "bus1/3"]
    anonymous, _, _ = core()
    [err] = anonymous.receive('{"type":"hello"}', clock.now)
    assert err.message["code"] == "missing_field"


# -- the tier's inbound rates: bursts, refill, flooding ------------------------------------------


def test_the_tier_message_rate_bursts_twice_its_rate_and_at_least_one() -> None:
    conn, _, clock = core(config(messages_per_s=10.0))
    hello(conn, ACME)
    for _ in range(19):
        conn.receive('{"type":"ping"}', clock.now)
    assert conn.read_delay(clock.now) == 0.0  # one of a burst of 2 x 10 messages left
    conn.receive('{"type":"ping"}', clock.now)
    assert conn.read_delay(clock.now) == pytest.approx(0.1)
    slow, _, clock = core(config(messages_per_s=0.25))
    hello(slow, ACME)
    slow.receive('{"type":"ping"}', clock.now)
    assert slow.read_delay(clock.now) == pytest.approx(4.0)  # a burst of one message


def ping(size: int) -> str:
    """A ping of exactly ``size`` bytes."""
    head = '{"type":"ping","id":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def test_the_tier_byte_rate_bursts_twice_its_rate_or_one_largest_message() -> None:
    conn, _, clock = core(config(messages_per_s=1000.0, bytes_per_s=40_000.0))
    hello(conn, ACME)
    for _ in range(3):
        conn.receive(ping(26_000), clock.now)
    assert conn.read_delay(clock.now) == 0.0  # 78,000 of a burst of 80,000 bytes
    conn.receive(ping(26_000), clock.now)
    assert conn.read_delay(clock.now) == pytest.approx(24_001 / 40_000)
    small, _, clock = core(config(messages_per_s=1000.0, bytes_per_s=100.0))
    hello(small, ACME)
    small.receive(ping(65_000), clock.now)  # a burst of one largest message (64 KiB)
    assert small.read_delay(clock.now) == 0.0
    small.receive(ping(600), clock.now)
    assert small.read_delay(clock.now) == pytest.approx(65 / 100)


@pytest.mark.parametrize("tier", [{"messages_per_s": 10.0}, {"bytes_per_s": 1000.0}])
def test_a_tier_rate_flooded_for_flood_close_s_closes_1008(tier: dict[str, float]) -> None:
    conn, _, clock = core(config(**tier))
    hello(conn, ACME)
    start, closed = clock.now, None
    while closed is None and clock.now < start + 30.0:
        conn.read_delay(clock.now)  # the adapter asks before every read
        [action] = conn.receive(ping(500), clock.now)
        if isinstance(action, Close):
            closed = action
        clock.now += 0.01
    assert closed == Close(1008, "message rate", "flood")
    assert start + 10.0 <= clock.now <= start + 15.0  # flood_close_s (10 s) after throttling


def test_bad_messages_refill_at_the_tiers_count_per_minute() -> None:
    conn, _, clock = core(config(bad_messages=60))
    hello(conn, ACME)
    for _ in range(59):
        conn.receive("{nope", clock.now)
    clock.now += 1.0  # exactly one of the 60 a minute back
    assert isinstance(conn.receive("{nope", clock.now)[0], Send)
    assert isinstance(conn.receive("{nope", clock.now)[0], Close)


def test_a_tenant_may_allow_every_origin() -> None:
    raw = config()
    raw["tenant"][0]["allowed_origins"] = ["*"]
    conn, _, _ = core(raw, origin="https://anywhere.example")
    assert isinstance(hello(conn, ACME)[0], Send)
