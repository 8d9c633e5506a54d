"""The network edge on real loopback sockets: browser checks (issue 10 break 5), per-source
limits (break 3), HTTP methods and pipelining (break 11). The descriptor limit (break 4) needs
a process of its own: ``test_edge_fd.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bridge.config import ServerConfig, parse_config
from bridge.edge import TIGHT_HANDSHAKE_S
from bridge.errors import ConfigError

from .conftest import TIMEOUT, Harness, make_limits, recv, rejected, running_harness

# -- helpers ---------------------------------------------------------------------------------------


def _split(url: str) -> tuple[str, int]:
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    return host, int(port)


async def raw_http(h: Harness, data: bytes, *, source: str | None = None) -> bytes:
    """Send ``data`` on a fresh TCP connection and read until the bridge closes it."""
    host, port = _split(h.http)
    local = (source, 0) if source else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=local), TIMEOUT
    )
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def get(path: str, host: str = "127.0.0.1", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@contextlib.asynccontextmanager
async def edge_harness(**settings: Any) -> AsyncIterator[Harness]:
    server_keys = {"allowed_origins", "allowed_hosts"}
    server = ServerConfig(
        host="127.0.0.1",
        port=0,
        node="test",
        **{k: v for k, v in settings.items() if k in server_keys},
    )
    limits = make_limits(**{k: v for k, v in settings.items() if k not in server_keys})
    async with running_harness(server, limits) as h:
        yield h


async def ws_status(url: str, **kwargs: Any) -> int:
    """101 when the handshake succeeds (the connection is closed again), else the HTTP status."""
    try:
        ws = await connect(url, compression=None, open_timeout=TIMEOUT, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


# -- break 5: Origin and Host ----------------------------------------------------------------------


async def test_a_foreign_origin_cannot_drive_the_devices(harness: Harness) -> None:
    """Fails on the old code: the evil page's handshake was accepted and its write_reg sent."""
    evil = {"Origin": "https://evil.example"}
    assert await ws_status(harness.url, additional_headers=evil) == 403
    assert harness.bus.requests.empty()
    host, port = _split(harness.url)
    # the bridge's own page (the dashboard), by either loopback name, and a non-browser client
    for name in (host, "localhost"):
        url, origin = f"ws://{name}:{port}/ws", f"http://{name}:{port}"
        assert await ws_status(url, additional_headers={"Origin": origin}) == 101, origin
    assert await ws_status(harness.url) == 101
    # another port on the same host is another origin; so is a sandboxed page ("null")
    assert await ws_status(harness.url, additional_headers={"Origin": "http://127.0.0.1:1"}) == 403
    assert await ws_status(harness.url, additional_headers={"Origin": "null"}) == 403


async def test_dns_rebinding_host_is_refused(harness: Harness) -> None:
    """Fails on the old code: ``/api/state`` answered ``Host: evil.example`` with the state."""
    _host, port = _split(harness.http)
    answer = await raw_http(harness, get("/api/state", f"evil.example:{port}"))
    assert status_of(answer) == 403
    assert b"buses" not in answer
    # the upgrade too, even with a matching Origin (the rebound page is "same-origin")
    upgrade = get(
        "/ws",
        f"evil.example:{port}",
        extra=f"Origin: http://evil.example:{port}\r\n" + UPGRADE_HEADERS,
    )
    assert status_of(await raw_http(harness, upgrade)) == 403
    for ok_host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        assert status_of(await raw_http(harness, get("/api/state", ok_host))) == 200, ok_host
    refused = rejected(harness, "host")
    assert refused == 2


async def test_configured_origins_and_hosts_are_allowed() -> None:
    async with edge_harness(
        allowed_origins=("https://Dash.Example.com:443",), allowed_hosts=("bridge.lan",)
    ) as h:
        ok = "Origin: https://dash.example.com\r\n" + UPGRADE_HEADERS
        assert status_of(await raw_http(h, get("/ws", "bridge.lan:8765", extra=ok))) == 101
        other = "Origin: https://other.example.com\r\n" + UPGRADE_HEADERS
        assert status_of(await raw_http(h, get("/ws", "bridge.lan:8765", extra=other))) == 403
        assert status_of(await raw_http(h, get("/healthz", "bridge.lan"))) == 200
        assert status_of(await raw_http(h, get("/healthz", "evil.lan"))) == 403
    async with edge_harness(allowed_origins=("*",), allowed_hosts=("*",)) as h:
        anyone = "Origin: https://evil.example\r\n" + UPGRADE_HEADERS
        assert status_of(await raw_http(h, get("/ws", "evil.example", extra=anyone))) == 101


def test_origin_and_host_settings_are_validated() -> None:
    cfg = parse_config(
        {"server": {"allowed_origins": ["https://a.example"], "allowed_hosts": ["b.lan:80"]}}
    )
    assert cfg.server.allowed_origins == ("https://a.example",)
    assert cfg.server.allowed_hosts == ("b.lan:80",)
    with pytest.raises(ConfigError, match=r"server\.allowed_origins\[0\]"):
        parse_config({"server": {"allowed_origins": ["a.example/path"]}})
    with pytest.raises(ConfigError, match=r"server\.allowed_hosts\[1\]"):
        parse_config({"server": {"allowed_hosts": ["ok", "http://x/"]}})


def test_new_settings_are_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "bridge.md").read_text(encoding="utf-8")
    example = (root / "examples" / "bridge.toml").read_text(encoding="utf-8")
    keys = ["allowed_origins", "allowed_hosts", "max_connections_per_source"]
    keys += ["max_handshakes_per_source", "limit_loopback", "fd_reserve", "log_burst"]
    keys += ["log_interval_s"]
    for key in keys:
        assert f"`{key}`" in docs, key
        assert f"\n{key} = " in example, key


# -- break 3: per-source limits --------------------------------------------------------------------


async def _hello(url: str, source: str) -> ClientConnection:
    sock_addr: Any = (source, 0)
    ws = await connect(url, compression=None, open_timeout=TIMEOUT, local_addr=sock_addr)
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    assert (await recv(ws))["type"] == "welcome"
    return ws


async def test_one_source_cannot_take_every_connection() -> None:
    """Fails on the old code (no such limit): the fifth connection of one address was
    accepted. Another address (127.0.0.2, also loopback) still gets in."""
    async with edge_harness(max_connections_per_source=4, limit_loopback=True) as h:
        held = [await _hello(h.url, "127.0.0.1") for _ in range(4)]
        try:
            with pytest.raises(InvalidStatus) as refused:
                await _hello(h.url, "127.0.0.1")
            assert refused.value.response.status_code == 429
            other = await _hello(h.url, "127.0.0.2")
            await other.close()
            await held.pop().close()
            await h.wait_for(lambda: h.server.edge.sources.count("127.0.0.1")[0] == 3)
            again = await _hello(h.url, "127.0.0.1")  # a slot came free
            held.append(again)
        finally:
            for ws in held:
                await ws.close()
        await h.wait_for(lambda: h.server.edge.sources.count("127.0.0.1") == (0, 0))


async def test_idle_handshakes_from_one_source_are_dropped() -> None:
    """Connections that never send their HTTP request hold a handshake slot each; past
    ``max_handshakes_per_source`` they are closed at once, and other sources are unaffected."""
    async with edge_harness(max_handshakes_per_source=3, limit_loopback=True) as h:
        host, port = _split(h.url)
        idle = [
            await asyncio.open_connection(host, port, local_addr=("127.0.0.1", 0)) for _ in range(5)
        ]
        try:
            closed = 0
            for reader, _writer in idle:
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(reader.read(), 0.5)
                    closed += data == b""
            assert closed == 2  # the 4th and 5th
            ws = await _hello(h.url, "127.0.0.2")
            await ws.close()
            assert rejected(h, "per_source") == 2
        finally:
            for _reader, writer in idle:
                writer.close()


async def test_loopback_is_not_limited_by_default(harness: Harness) -> None:
    """The benchmarks open 10,000 clients from 127.0.0.1: loopback is exempt unless
    ``limit_loopback``."""
    assert harness.server.limits.max_connections_per_source == 256
    clients = await asyncio.gather(*(ws_status(harness.url) for _ in range(300)))
    assert set(clients) == {101}


# -- break 11: HTTP --------------------------------------------------------------------------------


async def test_pipelined_requests_get_an_answer_and_no_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Fails on the old code: no answer at all, and websockets logged an AssertionError."""
    caplog.set_level(logging.INFO)
    answer = await raw_http(harness, get("/healthz") + get("/metrics") + b"\x81\x05junk")
    assert status_of(answer) == 200
    assert answer.count(b"HTTP/1.1") == 1  # the first answered, then the connection closed
    assert b"Connection: close" in answer
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    # an upgrade request pipelined behind a plain one is not taken as frames either
    upgrade = get("/ws", extra=UPGRADE_HEADERS)
    answer = await raw_http(harness, get("/healthz") + upgrade)
    assert status_of(answer) == 200 and answer.count(b"HTTP/1.1") == 1
    # a frame written right behind an upgrade request is held back, then read after the 101
    host, port = _split(harness.http)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            get("/ws", extra=UPGRADE_HEADERS) + _masked_text(b'{"type":"hello","token":"t"}')
        )
        seen = b""
        while b'"welcome"' not in seen:
            chunk = await asyncio.wait_for(reader.read(4096), TIMEOUT)
            assert chunk, seen
            seen += chunk
        assert seen.startswith(b"HTTP/1.1 101 ")
    finally:
        writer.close()


def _masked_text(payload: bytes) -> bytes:
    """One client text frame (masked, as RFC 6455 requires of clients); payload < 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_get_routes_get_405(harness: Harness, method: str) -> None:
    """Fails on the old code: ``POST /healthz`` answered 200."""
    for path in ("/healthz", "/metrics", "/api/state", "/", "/static/index.html"):
        answer = await raw_http(harness, get(path, method=method, extra="Content-Length: 0\r\n"))
        assert status_of(answer) == 405, path
        assert b"\r\nAllow: GET, HEAD\r\n" in answer
    answer = await raw_http(harness, get("/ws", method=method, extra="Content-Length: 0\r\n"))
    assert status_of(answer) == 405 and b"\r\nAllow: GET\r\n" in answer
    assert status_of(await raw_http(harness, get("/nothing", method=method))) == 404


async def test_head_answers_headers_without_a_body(harness: Harness) -> None:
    answer = await raw_http(harness, get("/healthz", method="HEAD"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 200 and body == b""
    length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    assert length and int(length[0].split(b":")[1]) > 0


# -- break 4, in process: the descriptor reserve (the real limit: test_edge_fd.py) ----------------


async def test_in_the_descriptor_reserve_websockets_get_503_and_healthz_answers(
    harness: Harness,
) -> None:
    """Pretend the soft limit is just above the next descriptor numbers: WebSocket clients are
    refused with 503, ``/healthz`` still answers, and an idle connection there is closed
    within ``TIGHT_HANDSHAKE_S`` instead of ``open_timeout``."""
    probe = os.dup(0)  # the lowest free descriptor: the next sockets land at or just above it
    os.close(probe)
    edge = harness.server.edge
    edge.soft_limit = probe + edge.fd_reserve - 4  # [probe - 4, probe + 44): the reserve
    assert await ws_status(harness.url) == 503
    assert status_of(await raw_http(harness, get("/healthz"))) == 200
    host, port = _split(harness.http)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), TIGHT_HANDSHAKE_S + TIMEOUT) == b""
        assert asyncio.get_running_loop().time() - started < TIGHT_HANDSHAKE_S + 1.0
    finally:
        writer.close()
    edge.soft_limit = probe + 2  # the last quarter: closed before anything is read
    try:
        answer = await raw_http(harness, get("/healthz"))
    except ConnectionResetError:  # the request was already in the closed socket's buffer
        answer = b""
    assert answer == b""
    assert rejected(harness, "fd_limit") == 2
