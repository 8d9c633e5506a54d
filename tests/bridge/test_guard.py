"""The edge's pure decisions (:mod:`bridge.guard`) and the log rate limit
(:mod:`bridge.lograte`), as tables: no sockets, a fake clock."""

from __future__ import annotations

import logging

import pytest

from bridge.guard import (
    BrowserGuard,
    FdZone,
    SourceLimiter,
    SourceVerdict,
    fd_zone,
    normalize_origin,
    source_key,
    split_host,
)
from bridge.lograte import RateLimitFilter, install, uninstall

# -- Host ------------------------------------------------------------------------------------------

HOSTS = [  # (listen host, allowed_hosts, Host header, allowed?)
    ("127.0.0.1", (), "127.0.0.1:8765", True),
    ("127.0.0.1", (), "localhost:8765", True),
    ("127.0.0.1", (), "LOCALHOST.", True),
    ("127.0.0.1", (), "[::1]:8765", True),
    ("127.0.0.1", (), "evil.example:8765", False),
    ("127.0.0.1", (), "10.0.0.5:8765", False),  # not this listener's address
    ("localhost", (), "127.0.0.1:8765", True),
    ("0.0.0.0", (), "192.168.1.20:8765", True),  # any IP literal: cannot be rebound
    ("0.0.0.0", (), "[fe80::1]:8765", True),
    ("0.0.0.0", (), "localhost", True),
    ("0.0.0.0", (), "gateway.lan:8765", False),  # a name must be listed
    ("0.0.0.0", ("gateway.lan",), "gateway.lan:8765", True),
    ("0.0.0.0", ("gateway.lan:443",), "gateway.lan:8765", False),
    ("0.0.0.0", ("gateway.lan:443",), "gateway.lan:443", True),
    ("192.168.1.20", (), "192.168.1.20", True),
    ("192.168.1.20", (), "192.168.1.21", False),
    ("gateway.lan", (), "Gateway.LAN:8765", True),
    ("gateway.lan", (), "evil.example", False),
    ("127.0.0.1", ("*",), "evil.example", True),
    ("127.0.0.1", (), None, True),  # HTTP/1.0: no browser
    ("127.0.0.1", (), "", False),
    ("127.0.0.1", (), "a b", False),
    ("127.0.0.1", (), "127.0.0.1:99999", False),
    ("127.0.0.1", (), "user@127.0.0.1", False),
]


@pytest.mark.parametrize(("listen", "allowed", "host", "ok"), HOSTS)
def test_host_check(listen: str, allowed: tuple[str, ...], host: str | None, ok: bool) -> None:
    assert BrowserGuard.build(listen, (), allowed).host_ok(host) is ok


# -- Origin ----------------------------------------------------------------------------------------

ORIGINS = [  # (allowed_origins, Origin, Host, allowed?)
    ((), None, "127.0.0.1:8765", True),  # not a browser
    ((), "http://127.0.0.1:8765", "127.0.0.1:8765", True),  # the dashboard itself
    ((), "https://gateway.lan", "gateway.lan", True),  # behind a TLS proxy
    ((), "https://gateway.lan", "gateway.lan:443", True),
    ((), "http://127.0.0.1:9999", "127.0.0.1:8765", False),  # another origin on the host
    ((), "https://evil.example", "127.0.0.1:8765", False),
    ((), "null", "127.0.0.1:8765", False),
    ((), "not an origin", "127.0.0.1:8765", False),
    ((), "http://127.0.0.1:8765", None, False),
    (("https://dash.example:443",), "https://DASH.example", "127.0.0.1:8765", True),
    (("https://dash.example",), "http://dash.example", "127.0.0.1:8765", False),
    (("null",), "null", "127.0.0.1:8765", True),
    (("*",), "https://evil.example", "127.0.0.1:8765", True),
]


@pytest.mark.parametrize(("allowed", "origin", "host", "ok"), ORIGINS)
def test_origin_check(
    allowed: tuple[str, ...], origin: str | None, host: str | None, ok: bool
) -> None:
    assert BrowserGuard.build("127.0.0.1", allowed, ()).origin_ok(origin, host) is ok


def test_normalisation() -> None:
    assert normalize_origin("HTTP://Example.COM:80") == "http://example.com"
    assert normalize_origin("https://[::1]:8443") == "https://[::1]:8443"
    assert normalize_origin("https://x.example/") == "https://x.example"
    assert normalize_origin("https://x.example/a") is None
    assert normalize_origin("https://x.example:bad") is None
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("[::1") is None
    assert split_host("h:") is None


# -- per source ------------------------------------------------------------------------------------


def test_source_key_groups_ipv6_by_64() -> None:
    assert source_key("203.0.113.7") == "203.0.113.7"
    assert source_key("2001:db8:1:2::5") == source_key("2001:db8:1:2:ffff::9")
    assert source_key("2001:db8:1:3::5") != source_key("2001:db8:1:2::5")
    assert source_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_key("?") == "?"


def test_source_limiter_counts_from_accept_to_close() -> None:
    lim = SourceLimiter(max_connections=2, max_handshakes=3)
    peer = "203.0.113.7"
    assert lim.opened(peer) is SourceVerdict.ADMIT
    lim.handshake_done(peer)
    assert lim.opened(peer) is SourceVerdict.ADMIT
    lim.handshake_done(peer)
    assert lim.opened(peer) is SourceVerdict.TOO_MANY  # counted until it closes
    assert lim.count(peer) == (3, 1)
    lim.closed(peer, handshaking=True)
    lim.closed(peer, handshaking=False)
    assert lim.opened(peer) is SourceVerdict.ADMIT
    assert lim.opened("198.51.100.1") is SourceVerdict.ADMIT  # another source


def test_source_limiter_drops_a_handshake_flood() -> None:
    lim = SourceLimiter(max_connections=100, max_handshakes=2)
    verdicts = [lim.opened("203.0.113.7") for _ in range(4)]
    assert verdicts == [SourceVerdict.ADMIT] * 2 + [SourceVerdict.DROP] * 2
    for _ in range(4):
        lim.closed("203.0.113.7", handshaking=True)
    assert lim.count("203.0.113.7") == (0, 0)


def test_loopback_is_exempt_unless_asked() -> None:
    free = SourceLimiter(max_connections=1, max_handshakes=1)
    assert all(free.opened("127.0.0.1") is SourceVerdict.ADMIT for _ in range(5))
    assert all(free.opened("::1") is SourceVerdict.ADMIT for _ in range(5))
    strict = SourceLimiter(max_connections=1, max_handshakes=5, limit_loopback=True)
    assert [strict.opened("127.0.0.1") for _ in range(2)][-1] is SourceVerdict.TOO_MANY


# -- descriptors -----------------------------------------------------------------------------------


FD_ZONES = [  # soft limit 1024, reserve 64: tight from 960, exhausted from 1008
    (10, FdZone.OK),
    (959, FdZone.OK),
    (960, FdZone.TIGHT),
    (1007, FdZone.TIGHT),
    (1008, FdZone.EXHAUSTED),
    (1023, FdZone.EXHAUSTED),
]


@pytest.mark.parametrize(("fd", "zone"), FD_ZONES)
def test_fd_zone(fd: int, zone: FdZone) -> None:
    assert fd_zone(fd, 1024, 64) is zone


def test_fd_zone_unlimited() -> None:
    assert fd_zone(10**6, 0, 64) is FdZone.OK


# -- log rate limit --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "bridge.x") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_rate_limit_lets_a_burst_through_then_counts() -> None:
    clock = Clock()
    flt = RateLimitFilter(burst=3, interval_s=10.0, clock=clock)
    passed = [flt.filter(_record("event=x n=%d", i)) for i in range(1000)]
    assert passed.count(True) == 3
    assert flt.filter(_record("event=other")) is True  # another key has its own budget
    clock.now = 10.0
    first = _record("event=x n=%d", 5)
    assert flt.filter(first) is True
    assert first.getMessage() == "event=x n=5 suppressed=997"
    second = _record("event=x n=%d", 6)
    assert flt.filter(second) is True and "suppressed" not in second.getMessage()
    assert flt.suppressed_total == 997


def test_rate_limit_keys_by_logger_and_level() -> None:
    flt = RateLimitFilter(burst=1, interval_s=10.0, clock=Clock())
    assert flt.filter(_record("same", name="a"))
    assert flt.filter(_record("same", name="b"))
    assert not flt.filter(_record("same", name="a"))


def test_install_covers_existing_module_loggers_and_uninstalls() -> None:
    logging.getLogger("bridge.test_guard_child")
    flt = RateLimitFilter(burst=1, clock=Clock())
    names = install(flt, ("bridge",))
    assert "bridge.test_guard_child" in names
    child = logging.getLogger("bridge.test_guard_child")
    assert flt in child.filters
    uninstall(flt, names)
    assert flt not in child.filters
